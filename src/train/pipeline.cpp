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

std::vector<int> PipelineSchedule::chunk_slots(int pp_size, int pp_rank, int micro_batches, int v) {
  if (v == 1) return {slots_needed(pp_size, pp_rank, micro_batches)};
  return interleaved_programs(pp_size, v, micro_batches)[size_t(pp_rank)].slots;
}

PipelineSchedule::PipelineSchedule(std::vector<Stage*> chunks, Comm* pp, int micro_batches)
    : chunks_(std::move(chunks)), stage_(*chunks_.at(0)), pp_(pp), M_(micro_batches), hooks_(chunks_.size()) {
  rank_ = pp ? pp->rank() : 0;
  size_ = pp ? pp->size() : 1;
  const int v = int(chunks_.size());
  slots_ = slots_needed(size_, rank_, M_);
  std::vector<int> need = {slots_};
  if (v > 1) {
    program_ = std::move(interleaved_programs(size_, v, M_)[size_t(rank_)]);
    need = program_.slots;
  }
  for (int c = 0; c < v; ++c) {
    Stage& s = *chunks_[size_t(c)];
    LT_CHECK(s.options().slots >= need[size_t(c)], "pipeline: chunk {} keeps {} micro-batches, the schedule needs {}",
             c, s.options().slots, need[size_t(c)]);
    LT_CHECK(v == 1 || s.slot_grad_message(0).data != s.input_grad_message().data,
             "parallel.virtual_stages = {}: this backend's stage has no per-slot gradient buffers "
             "(StageOptions::slot_grads), which interleaved pipelines need",
             v);
  }
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
  stage_.set_grad_ready_hook(need_grad && mb == M_ - 1 ? hooks_[0] : nullptr);
  stage_.forward(mb % slots_, inputs + mb * N, targets + mb * N, scale, need_grad);
  stage_.set_grad_ready_hook(nullptr);
}

void PipelineSchedule::backward(int mb) {
  stage_.set_grad_ready_hook(mb == M_ - 1 ? hooks_[0] : nullptr);
  stage_.backward(mb % slots_);
  stage_.set_grad_ready_hook(nullptr);
}

double PipelineSchedule::train(const int32_t* inputs, const int32_t* targets, float loss_scale) {
  wait_s_ = 0;
  if (chunks_.size() > 1) return train_interleaved(inputs, targets, loss_scale);
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
    backward(k);
    if (k + 1 < steady)
      send_backward_recv_forward((f + 1) % slots_);
    else
      send_backward();
  }
  for (int i = 0; i < warmup; ++i) {
    const int b = steady + i;
    recv_backward();
    backward(b);
    send_backward();
  }
  return stage_.take_loss();
}

double PipelineSchedule::evaluate(const int32_t* inputs, const int32_t* targets, int micro_batches) {
  wait_s_ = 0;
  if (chunks_.size() > 1) return evaluate_interleaved(inputs, targets, micro_batches);
  const int64_t N = stage_.tokens_per_micro_batch();
  for (int i = 0; i < micro_batches; ++i) {
    recv_forward(0);
    if (doc_start_) stage_.set_inputs(0, {doc_start_ + i * N, restart_positions_});
    stage_.forward(0, inputs + i * N, targets + i * N, 0.0f, false);
    send_forward(0);
  }
  return stage_.take_loss();
}

void PipelineSchedule::run_forward(int chunk, int slot, int mb, const int32_t* inputs, const int32_t* targets,
                                   float scale) {
  Stage& s = *chunks_[size_t(chunk)];
  const int64_t N = s.tokens_per_micro_batch();
  if (doc_start_) s.set_inputs(slot, {doc_start_ + mb * N, restart_positions_});
  s.set_grad_ready_hook(mb == M_ - 1 ? hooks_[size_t(chunk)] : nullptr);
  s.forward(slot, inputs + mb * N, targets + mb * N, scale, true);
  s.set_grad_ready_hook(nullptr);
}

void PipelineSchedule::run_backward(int chunk, int slot, int mb) {
  Stage& s = *chunks_[size_t(chunk)];
  s.set_grad_ready_hook(mb == M_ - 1 ? hooks_[size_t(chunk)] : nullptr);
  s.backward(slot);
  s.set_grad_ready_hook(nullptr);
}

double PipelineSchedule::train_interleaved(const int32_t* inputs, const int32_t* targets, float loss_scale) {
  const int next = (rank_ + 1) % size_, prev = (rank_ + size_ - 1) % size_;
  std::vector<Request> reqs;
  for (const PipeStep& st : program_.steps) {
    if (st.forward) run_forward(st.forward.chunk, st.forward_slot, st.forward.mb, inputs, targets, loss_scale);
    if (st.backward) run_backward(st.backward.chunk, st.backward_slot, st.backward.mb);
    Timer t;
    reqs.clear();
    auto chunk = [&](ChunkMb x) -> Stage& { return *chunks_[size_t(x.chunk)]; };
    if (st.recv_forward) {
      StageMessage m = chunk(st.recv_forward).input_message(st.recv_slot);
      reqs.push_back(pp_->irecv(m.data, m.bytes, prev, kTagForward));
    }
    if (st.recv_backward) {
      StageMessage m = chunk(st.recv_backward).slot_grad_message(st.recv_grad_slot);
      reqs.push_back(pp_->irecv(m.data, m.bytes, next, kTagBackward));
    }
    if (st.send_forward) {
      StageMessage m = chunk(st.send_forward).output_message(st.forward_slot);
      reqs.push_back(pp_->isend(m.data, m.bytes, next, kTagForward));
    }
    if (st.send_backward) {
      StageMessage m = chunk(st.send_backward).input_grad_message();
      reqs.push_back(pp_->isend(m.data, m.bytes, prev, kTagBackward));
    }
    for (Request& r : reqs) r->wait();
    wait_s_ += t.seconds();
  }
  double loss = 0;
  for (Stage* s : chunks_) loss += s->take_loss();
  return loss;
}

double PipelineSchedule::evaluate_interleaved(const int32_t* inputs, const int32_t* targets, int micro_batches) {
  const int v = int(chunks_.size()), next = (rank_ + 1) % size_, prev = (rank_ + size_ - 1) % size_;
  const int64_t N = stage_.tokens_per_micro_batch();
  for (int i = 0; i < micro_batches; ++i)
    for (int c = 0; c < v; ++c) {
      Stage& s = *chunks_[size_t(c)];
      const int virt = c * size_ + rank_;
      Timer t;
      if (virt > 0) {
        StageMessage m = s.input_message(0);
        pp_->recv(m.data, m.bytes, prev, kTagForward);
      }
      wait_s_ += t.seconds();
      if (doc_start_) s.set_inputs(0, {doc_start_ + i * N, restart_positions_});
      s.forward(0, inputs + i * N, targets + i * N, 0.0f, false);
      if (virt < v * size_ - 1) {
        Timer ts;
        StageMessage m = s.output_message(0);
        pp_->send(m.data, m.bytes, next, kTagForward);
        wait_s_ += ts.seconds();
      }
    }
  double loss = 0;
  for (Stage* s : chunks_) loss += s->take_loss();
  return loss;
}

}  // namespace lt
