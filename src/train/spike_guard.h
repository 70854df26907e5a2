// SpikeGuard: train.spike_policy for steps whose loss or gradient norm is finite but far above
// its recent level (llm-foundry's loss-spike killer, PaLM's skip-and-rewind). A step is a spike
// when its loss or its gradient norm exceeds mean + spike_sigma · σ of the last spike_window
// accepted steps (σ floored at 0.1% of the mean, so a flat plateau's rounding noise is not a
// spike); the guard is armed once the window is full. The caller skips a spike's update
// (`skip`), or also rolls back to the newest checkpoint (`rollback`; the data keeps moving
// forward, so the samples since that checkpoint — the spike's among them — are not replayed),
// optionally with the learning rate × spike_lr_scale for spike_lr_steps steps.
// Every rank sees the same all-reduced loss and norm, so every rank decides the same; the
// window travels in checkpoints, so a resumed run decides as an uninterrupted one would.
#pragma once
#include <cstdint>
#include <deque>
#include <nlohmann/json.hpp>
#include <string>

#include "train/run_config.h"

namespace lt {

class SpikeGuard {
 public:
  SpikeGuard(SpikePolicy policy, double sigma, int window, double lr_scale, int64_t lr_steps)
      : policy_(policy), sigma_(sigma), window_(window), lr_scale_(lr_scale), lr_steps_(lr_steps) {}
  bool enabled() const { return policy_ != SpikePolicy::off; }
  bool rolls_back() const { return policy_ == SpikePolicy::rollback; }
  // Whether a step with these finite values is a spike; `why` says which value, by how much.
  bool is_spike(double loss, double grad_norm, std::string* why) const;
  // A step whose update was applied joins the window.
  void accept(double loss, double grad_norm);
  void spiked() { ++spikes_; }
  // After a rollback to step `at`: the lowered learning rate lasts for the next spike_lr_steps.
  void rolled_back(int64_t at) { low_lr_until_ = at + lr_steps_; }
  // The learning-rate factor for update `step` (0-based): spike_lr_scale while lowered, else 1.
  double lr_factor(int64_t step) const { return step < low_lr_until_ ? lr_scale_ : 1.0; }
  int64_t spikes() const { return spikes_; }
  nlohmann::json state() const;
  void restore(const nlohmann::json& state);  // null: a fresh window

 private:
  SpikePolicy policy_;
  double sigma_;
  int window_;
  double lr_scale_;
  int64_t lr_steps_;
  std::deque<double> loss_, norm_;
  int64_t low_lr_until_ = 0, spikes_ = 0;
};

}  // namespace lt
