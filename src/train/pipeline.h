// The pipeline schedule that drives one Stage through a step of M micro-batches.
//
// 1F1B (PipeDream-flush, Megatron's default): stage p of P first runs min(P−p−1, M) forward
// passes (warm-up), then alternates one forward and one backward (steady state), then runs the
// remaining backward passes (cool-down). At most P−p micro-batches are in flight on stage p,
// so activations are kept for that many (the stage's slots). Activations go forward and their
// gradients back by point-to-point messages on the pp communicator, received straight into the
// stage's own buffers (Stage::input_message, output_grad_message); a send is always paired
// with the receive the peer is waiting for (isend + irecv), which cannot deadlock.
// With P = 1 this is plain gradient accumulation: forward, backward, forward, backward, ...
#pragma once
#include <cstdint>

#include "model/stage.h"
#include "parallel/comm.h"

namespace lt {

class PipelineSchedule {
 public:
  // `pp` is nullptr when there is one stage; it must reach the stage's memory (MPI for host
  // memory, NCCL for device memory).
  PipelineSchedule(Stage& stage, Comm* pp, int micro_batches);

  static int slots_needed(int pp_size, int pp_rank, int micro_batches);

  // One training step: inputs/targets are [M][tokens per micro-batch] on the host (only the
  // first stage reads inputs, only the last reads targets). Returns Σ loss over this rank's
  // micro-batches (last stage; 0 elsewhere). Gradients accumulate into the stage's gradients.
  double train(const int32_t* inputs, const int32_t* targets, float loss_scale);
  // Forward only (evaluation): Σ loss over the micro-batches (last stage).
  double evaluate(const int32_t* inputs, const int32_t* targets, int micro_batches);

  // Document masking for the following train/evaluate calls: `doc_start` [M][tokens per
  // micro-batch] (Stage::MicroBatchInputs::doc_start per micro-batch), every stage reads it;
  // nullptr turns it off.
  void set_documents(const int32_t* doc_start, bool restart_positions) {
    doc_start_ = doc_start;
    restart_positions_ = restart_positions;
  }

  // Seconds this rank spent waiting for pipeline messages in the last call.
  double wait_seconds() const { return wait_s_; }

 private:
  void recv_forward(int slot);
  void send_forward(int slot);
  void recv_backward();
  void send_backward();
  void send_forward_recv_backward(int slot);
  void send_backward_recv_forward(int next_slot);
  void forward(int mb, const int32_t* inputs, const int32_t* targets, float scale, bool need_grad);

  Stage& stage_;
  Comm* pp_;
  int M_, slots_, rank_, size_;
  double wait_s_ = 0;
  const int32_t* doc_start_ = nullptr;
  bool restart_positions_ = false;
};

}  // namespace lt
