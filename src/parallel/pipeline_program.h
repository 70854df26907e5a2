// The interleaved 1F1B schedule (Megatron's virtual pipeline, parallel.virtual_stages = v) as
// a program per rank: a list of steps, each running at most one forward and one backward of a
// (model chunk, micro-batch) and then one batched exchange with the neighbouring ranks.
//
// The model is cut into v·P chunks ("virtual stages"); rank r holds chunks r, r + P, ...,
// r + (v−1)·P, its local chunk c being virtual stage c·P + r. Activations flow rank r → r+1
// within a chunk, and from rank P−1's chunk c to rank 0's chunk c+1; gradients the other way.
// Forward order on every rank: micro-batches in groups of P, each group through chunk 0, then
// chunk 1, ..., chunk v−1 (k-th forward: chunk (k mod vP) / P, micro-batch (k / vP)·P + k mod P);
// backwards in the mirrored chunk order. Rank r warms up with 2(P−r−1) + (v−1)·P forwards, then
// alternates one forward and one backward, then drains the backwards; which neighbour messages
// each step receives follows Megatron-LM's forward_backward_pipelining_with_interleaving.
// Each chunk handles its micro-batches in order, so the n-th message a chunk receives in
// either direction is for micro-batch n.
//
// Bubble: (P−1) / (v·M + P−1) of the step, against (P−1) / (M + P−1) without interleaving;
// the price is v times the pipeline messages and more micro-batches in flight (slots).
// M must be a multiple of P (Megatron's condition); M == P runs every forward first.
#pragma once
#include <vector>

namespace lt {

struct ChunkMb {
  int chunk = -1, mb = -1;  // chunk < 0: none
  explicit operator bool() const { return chunk >= 0; }
  bool operator==(const ChunkMb&) const = default;
};

struct PipeStep {
  ChunkMb forward, backward;      // computed in this order
  ChunkMb send_forward;           // its output to the next rank (the forward just run)
  ChunkMb send_backward;          // its input gradient to the previous rank (the backward just run)
  ChunkMb recv_forward;           // a chunk's input from the previous rank (local chunk)
  ChunkMb recv_backward;          // a chunk's output gradient from the next rank (local chunk)
  // Activation slot of recv_forward's micro-batch (taken at the receive), of recv_backward's,
  // of the forward and of the backward (freed after it), in their chunk's stage.
  int recv_slot = -1, recv_grad_slot = -1, forward_slot = -1, backward_slot = -1;
};

struct PipeProgram {
  std::vector<PipeStep> steps;
  std::vector<int> slots;  // activation slots each local chunk needs
};

// The program of every rank (receives are filled from the senders' programs). Throws when
// v < 1, P < 2 with v > 1, or M not a multiple of P with v > 1.
std::vector<PipeProgram> interleaved_programs(int P, int v, int M);

// Simulates all ranks' programs with rendezvous sends (a send completes only once its receive
// is posted, and a step waits for all of its messages): throws naming the step when a forward
// or backward runs before its input arrived, when the senders' and receivers' messages
// disagree, or when the ranks deadlock. Returns the number of rounds the simulation took.
int check_programs(const std::vector<PipeProgram>& programs, int P, int v, int M);

}  // namespace lt
