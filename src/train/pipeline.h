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
//
// Interleaved 1F1B (parallel.virtual_stages = v > 1): the rank holds v stages, its model chunks,
// and runs the program of parallel/pipeline_program.h — after each forward/backward one batched
// exchange (isend + irecv of everything the step moves, then wait), gradients received into
// each slot's own buffer (Stage::slot_grad_message). Evaluation runs micro-batch by
// micro-batch through the chunks with blocking messages, which cannot deadlock: every message
// goes forward along the virtual stages.
#pragma once
#include <cstdint>
#include <vector>

#include "model/stage.h"
#include "parallel/comm.h"
#include "parallel/pipeline_program.h"

namespace lt {

class PipelineSchedule {
 public:
  // `pp` is nullptr when there is one stage; it must reach the stage's memory (MPI for host
  // memory, NCCL for device memory).
  PipelineSchedule(Stage& stage, Comm* pp, int micro_batches) : PipelineSchedule(std::vector<Stage*>{&stage}, pp, micro_batches) {}
  // The rank's model chunks in order (local chunk c = virtual stage c·P + rank); one: plain 1F1B.
  PipelineSchedule(std::vector<Stage*> chunks, Comm* pp, int micro_batches);

  static int slots_needed(int pp_size, int pp_rank, int micro_batches);
  // Activation slots of each of the v local chunks (v == 1: {slots_needed}).
  static std::vector<int> chunk_slots(int pp_size, int pp_rank, int micro_batches, int v);

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
  // Armed on the stage for the last micro-batch of each train() (its forward and backward), so
  // that gradients are reported as they become final (overlapped data-parallel reduction).
  void set_grad_ready_hook(GradReadyHook* hook) { set_grad_ready_hook(0, hook); }
  void set_grad_ready_hook(int chunk, GradReadyHook* hook) { hooks_[size_t(chunk)] = hook; }

 private:
  void recv_forward(int slot);
  void send_forward(int slot);
  void recv_backward();
  void send_backward();
  void send_forward_recv_backward(int slot);
  void send_backward_recv_forward(int next_slot);
  void forward(int mb, const int32_t* inputs, const int32_t* targets, float scale, bool need_grad);
  void backward(int mb);
  // A chunk's forward / backward with its hook armed when it is micro-batch M−1.
  void run_forward(int chunk, int slot, int mb, const int32_t* inputs, const int32_t* targets, float scale);
  void run_backward(int chunk, int slot, int mb);
  double train_interleaved(const int32_t* inputs, const int32_t* targets, float loss_scale);
  double evaluate_interleaved(const int32_t* inputs, const int32_t* targets, int micro_batches);

  std::vector<Stage*> chunks_;
  Stage& stage_;  // chunks_[0]
  Comm* pp_;
  int M_, slots_, rank_, size_;
  double wait_s_ = 0;
  const int32_t* doc_start_ = nullptr;
  bool restart_positions_ = false;
  std::vector<GradReadyHook*> hooks_;
  PipeProgram program_;  // interleaved only
};

}  // namespace lt
