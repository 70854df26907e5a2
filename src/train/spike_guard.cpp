#include "train/spike_guard.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace lt {

namespace {
// mean and σ (population) of a window, σ floored at 0.1% of |mean|.
std::pair<double, double> mean_sigma(const std::deque<double>& x) {
  double m = 0, v = 0;
  for (double a : x) m += a;
  m /= double(x.size());
  for (double a : x) v += (a - m) * (a - m);
  return {m, std::max(std::sqrt(v / double(x.size())), 1e-3 * std::abs(m))};
}
}  // namespace

bool SpikeGuard::is_spike(double loss, double grad_norm, std::string* why) const {
  if (!enabled() || int(loss_.size()) < window_) return false;
  const struct {
    const char* what;
    double x;
    const std::deque<double>& w;
  } checks[] = {{"loss", loss, loss_}, {"gradient norm", grad_norm, norm_}};
  for (const auto& c : checks) {
    const auto [m, s] = mean_sigma(c.w);
    if (c.x > m + sigma_ * s) {
      if (why)
        *why = fmt::format("{} {:.4g} is {:.1f} sigma above its running mean {:.4g} (sigma {:.3g}, last {} steps)",
                           c.what, c.x, (c.x - m) / s, m, s, window_);
      return true;
    }
  }
  return false;
}

void SpikeGuard::accept(double loss, double grad_norm) {
  if (!enabled()) return;
  loss_.push_back(loss);
  norm_.push_back(grad_norm);
  if (int(loss_.size()) > window_) loss_.pop_front(), norm_.pop_front();
}

nlohmann::json SpikeGuard::state() const {
  return {{"loss", loss_}, {"grad_norm", norm_}, {"low_lr_until", low_lr_until_}, {"spikes", spikes_}};
}

void SpikeGuard::restore(const nlohmann::json& st) {
  loss_.clear();
  norm_.clear();
  if (st.is_null()) return;
  try {
    for (double x : st.at("loss")) loss_.push_back(x);
    for (double x : st.at("grad_norm")) norm_.push_back(x);
    low_lr_until_ = st.at("low_lr_until").get<int64_t>();
    spikes_ = st.at("spikes").get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    fail("checkpoint spike-guard state is malformed: {}", e.what());
  }
  LT_CHECK(loss_.size() == norm_.size(), "checkpoint spike-guard state is malformed: window lengths differ");
  while (int(loss_.size()) > window_) loss_.pop_front(), norm_.pop_front();
}

}  // namespace lt
