#include "train/pipeline.h"

#include <algorithm>

#include "core/error.h"
#include "core/timer.h"

namespace lt {

namespace {
constexpr int kTagForward = 101, kTagBackward = 102;
}

int PipelineSchedule::slots_needed(int pp_size, int pp_rank, int micro_batches) {
  return std::max(1, std::min(micro_batches, pp_size - pp_rank));
}

PipelineSchedule::PipelineSchedule(Stage& stage, Comm* pp, int micro_batches)
    : stage_(stage), pp_(pp), M_(micro_batches) {
  rank_ = pp ? pp->rank() : 0;
  size_ = pp ? pp->size() : 1;
  slots_ = slots_needed(size_, rank_, M_);
  LT_CHECK(stage.options().slots >= slots_, "pipeline: the stage keeps {} micro-batches, the schedule needs {}",
           stage.options().slots, slots_);
}

void PipelineSchedule::recv_forward(int slot) {
  if (rank_ == 0) return;
  Timer t;
  StageMessage m = stage_.input_message(slot);
  pp_->recv(m.data, m.bytes, rank_ - 1, kTagForward);
  wait_s_ += t.seconds();
}
void PipelineSchedule::send_forward(int slot) {
  if (rank_ == size_ - 1) return;
  Timer t;
  StageMessage m = stage_.output_message(slot);
  pp_->send(m.data, m.bytes, rank_ + 1, kTagForward);
  wait_s_ += t.seconds();
}
void PipelineSchedule::recv_backward() {
  if (rank_ == size_ - 1) return;
  Timer t;
  StageMessage m = stage_.output_grad_message();
  pp_->recv(m.data, m.bytes, rank_ + 1, kTagBackward);
  wait_s_ += t.seconds();
}
void PipelineSchedule::send_backward() {
  if (rank_ == 0) return;
  Timer t;
  StageMessage m = stage_.input_grad_message();
  pp_->send(m.data, m.bytes, rank_ - 1, kTagBackward);
  wait_s_ += t.seconds();
}
void PipelineSchedule::send_forward_recv_backward(int slot) {
  if (rank_ == size_ - 1) return;
  Timer t;
  StageMessage out = stage_.output_message(slot), grad = stage_.output_grad_message();
  Request r = pp_->irecv(grad.data, grad.bytes, rank_ + 1, kTagBackward);
  Request s = pp_->isend(out.data, out.bytes, rank_ + 1, kTagForward);
  s->wait();
  r->wait();
  wait_s_ += t.seconds();
}
// The next forward's slot is the one whose backward just finished (1F1B's steady state), so
// receiving into it cannot overwrite activations still needed.
void PipelineSchedule::send_backward_recv_forward(int next_slot) {
  if (rank_ == 0) return;
  Timer t;
  StageMessage in = stage_.input_message(next_slot), grad = stage_.input_grad_message();
  Request r = pp_->irecv(in.data, in.bytes, rank_ - 1, kTagForward);
  Request s = pp_->isend(grad.data, grad.bytes, rank_ - 1, kTagBackward);
  s->wait();
  r->wait();
  wait_s_ += t.seconds();
}

void PipelineSchedule::forward(int mb, const int32_t* inputs, const int32_t* targets, float scale, bool need_grad) {
  const int64_t N = stage_.tokens_per_micro_batch();
  if (doc_start_) stage_.set_inputs(mb % slots_, {doc_start_ + mb * N, restart_positions_});
  stage_.forward(mb % slots_, inputs + mb * N, targets + mb * N, scale, need_grad);
}

double PipelineSchedule::train(const int32_t* inputs, const int32_t* targets, float loss_scale) {
  wait_s_ = 0;
  const int warmup = std::min(size_ - rank_ - 1, M_);
  const int steady = M_ - warmup;
  for (int i = 0; i < warmup; ++i) {
    recv_forward(i % slots_);
    forward(i, inputs, targets, loss_scale, true);
    send_forward(i % slots_);
  }
  if (steady > 0) recv_forward(warmup % slots_);
  for (int k = 0; k < steady; ++k) {
    const int f = warmup + k;
    forward(f, inputs, targets, loss_scale, true);
    send_forward_recv_backward(f % slots_);
    stage_.backward(k % slots_);
    if (k + 1 < steady)
      send_backward_recv_forward((f + 1) % slots_);
    else
      send_backward();
  }
  for (int i = 0; i < warmup; ++i) {
    const int b = steady + i;
    recv_backward();
    stage_.backward(b % slots_);
    send_backward();
  }
  return stage_.take_loss();
}

double PipelineSchedule::evaluate(const int32_t* inputs, const int32_t* targets, int micro_batches) {
  wait_s_ = 0;
  const int64_t N = stage_.tokens_per_micro_batch();
  for (int i = 0; i < micro_batches; ++i) {
    recv_forward(0);
    if (doc_start_) stage_.set_inputs(0, {doc_start_ + i * N, restart_positions_});
    stage_.forward(0, inputs + i * N, targets + i * N, 0.0f, false);
    send_forward(0);
  }
  return stage_.take_loss();
}

}  // namespace lt
