#include "train/pipeline.h"

#include <algorithm>

#include "core/timer.h"

namespace lt {

namespace {
constexpr int kTagForward = 101, kTagBackward = 102;
}

int PipelineSchedule::slots_needed(int pp_size, int pp_rank, int micro_batches) {
  return std::max(1, std::min(micro_batches, pp_size - pp_rank));
}

PipelineSchedule::PipelineSchedule(LlamaStage& stage, Comm* pp, int micro_batches)
    : stage_(stage), pp_(pp), M_(micro_batches) {
  rank_ = pp ? pp->rank() : 0;
  size_ = pp ? pp->size() : 1;
  slots_ = slots_needed(size_, rank_, M_);
  // Activations and their gradients: the rows of the residual stream this rank holds.
  n_ = int64_t(stage.rows()) * stage.layout().config().dim;
  if (size_ > 1) {
    act_in_ = Buffer(size_t(n_) * sizeof(float));
    grad_in_ = Buffer(size_t(n_) * sizeof(float));
  }
}

void PipelineSchedule::recv_forward() {
  if (rank_ == 0) return;
  Timer t;
  pp_->recv(act_in_.data(), size_t(n_) * 4, rank_ - 1, kTagForward);
  wait_s_ += t.seconds();
}
void PipelineSchedule::send_forward(int slot) {
  if (rank_ == size_ - 1) return;
  Timer t;
  pp_->send(stage_.output(slot), size_t(n_) * 4, rank_ + 1, kTagForward);
  wait_s_ += t.seconds();
}
void PipelineSchedule::recv_backward() {
  if (rank_ == size_ - 1) return;
  Timer t;
  pp_->recv(grad_in_.data(), size_t(n_) * 4, rank_ + 1, kTagBackward);
  wait_s_ += t.seconds();
}
void PipelineSchedule::send_backward() {
  if (rank_ == 0) return;
  Timer t;
  pp_->send(stage_.input_grad(), size_t(n_) * 4, rank_ - 1, kTagBackward);
  wait_s_ += t.seconds();
}
void PipelineSchedule::send_forward_recv_backward(int slot) {
  if (rank_ == size_ - 1) return;
  Timer t;
  Request r = pp_->irecv(grad_in_.data(), size_t(n_) * 4, rank_ + 1, kTagBackward);
  Request s = pp_->isend(stage_.output(slot), size_t(n_) * 4, rank_ + 1, kTagForward);
  s->wait();
  r->wait();
  wait_s_ += t.seconds();
}
void PipelineSchedule::send_backward_recv_forward() {
  if (rank_ == 0) return;
  Timer t;
  Request r = pp_->irecv(act_in_.data(), size_t(n_) * 4, rank_ - 1, kTagForward);
  Request s = pp_->isend(stage_.input_grad(), size_t(n_) * 4, rank_ - 1, kTagBackward);
  s->wait();
  r->wait();
  wait_s_ += t.seconds();
}

double PipelineSchedule::forward(int mb, const int32_t* inputs, const int32_t* targets, float scale, bool need_grad) {
  const int64_t N = stage_.tokens_per_micro_batch();
  return stage_.forward(mb % slots_, inputs + mb * N, rank_ > 0 ? act_in_.as<float>() : nullptr, targets + mb * N,
                        scale, need_grad);
}

double PipelineSchedule::train(const int32_t* inputs, const int32_t* targets, float loss_scale) {
  wait_s_ = 0;
  const int warmup = std::min(size_ - rank_ - 1, M_);
  const int steady = M_ - warmup;
  double loss = 0;
  for (int i = 0; i < warmup; ++i) {
    recv_forward();
    loss += forward(i, inputs, targets, loss_scale, true);
    send_forward(i % slots_);
  }
  if (steady > 0) recv_forward();
  for (int k = 0; k < steady; ++k) {
    const int f = warmup + k;
    loss += forward(f, inputs, targets, loss_scale, true);
    send_forward_recv_backward(f % slots_);
    stage_.backward(k % slots_, grad_in_.empty() ? nullptr : grad_in_.as<float>());
    if (k + 1 < steady)
      send_backward_recv_forward();
    else
      send_backward();
  }
  for (int i = 0; i < warmup; ++i) {
    const int b = steady + i;
    recv_backward();
    stage_.backward(b % slots_, grad_in_.empty() ? nullptr : grad_in_.as<float>());
    send_backward();
  }
  return loss;
}

double PipelineSchedule::evaluate(const int32_t* inputs, const int32_t* targets, int micro_batches) {
  wait_s_ = 0;
  double loss = 0;
  for (int i = 0; i < micro_batches; ++i) {
    recv_forward();
    const int64_t N = stage_.tokens_per_micro_batch();
    loss += stage_.forward(0, inputs + i * N, rank_ > 0 ? act_in_.as<float>() : nullptr, targets + i * N, 0.0f, false);
    send_forward(0);
  }
  return loss;
}

}  // namespace lt
