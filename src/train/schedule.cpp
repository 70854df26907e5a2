#include "train/schedule.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace lt {

int64_t LrSchedule::decay_start() const {
  if (kind != ScheduleKind::wsd) return warmup;
  const int64_t len = cooldown > 0 ? cooldown : int64_t(std::llround(decay_fraction * double(decay)));
  return std::clamp<int64_t>(decay - len, warmup, decay);
}

double LrSchedule::at(int64_t s) const {
  if (s < warmup) return warmup_lr + (lr - warmup_lr) * double(s + 1) / double(warmup);
  if (kind == ScheduleKind::constant) return lr;
  if (s >= decay) return min_lr;
  if (kind == ScheduleKind::wsd) {
    const int64_t start = decay_start();
    if (s < start) return lr;
    const double p = double(s - start) / double(decay - start);
    const double f = shape == DecayShape::linear   ? 1.0 - p
                     : shape == DecayShape::cosine ? 0.5 * (1.0 + std::cos(M_PI * p))
                                                   : 1.0 - std::sqrt(p);
    return min_lr + (lr - min_lr) * f;
  }
  const double p = double(s - warmup) / double(decay - warmup);
  if (kind == ScheduleKind::linear) return lr - (lr - min_lr) * p;
  return min_lr + 0.5 * (lr - min_lr) * (1.0 + std::cos(M_PI * p));
}

std::string LrSchedule::describe(int64_t steps) const {
  int64_t peak_step = 0;
  double peak = -1;
  for (int64_t s = 0; s < std::min(steps, std::max<int64_t>(warmup, 1)); ++s)
    if (at(s) > peak) peak = at(s), peak_step = s;
  std::string out = fmt::format("{}", enum_name(kind));
  if (kind == ScheduleKind::wsd) out += fmt::format(" ({} decay)", enum_name(shape));
  if (warmup > 0) out += fmt::format(", warm-up {} steps {:.3g} -> {:.3g}", warmup, warmup_lr, lr);
  const int64_t ds = decay_start();
  if (kind == ScheduleKind::wsd) out += fmt::format(", stable {:.3g} to step {}", lr, ds);
  if (kind != ScheduleKind::constant)
    out += fmt::format(", decay from step {} to {} ({:.3g} -> {:.3g})", ds + 1, decay, lr, min_lr);
  out += fmt::format("; first {:.4g} (step 1), peak {:.4g} (step {}), last {:.4g} (step {})", at(0), peak,
                     peak_step + 1, at(steps - 1), steps);
  if (kind != ScheduleKind::constant && ds >= steps) out += fmt::format(" - the run ends before the decay starts");
  return out;
}

nlohmann::json LrSchedule::to_json() const {
  nlohmann::json j = {{"kind", enum_name(kind)}, {"lr", lr}, {"min_lr", min_lr}, {"warmup", warmup}, {"decay", decay}};
  if (warmup_lr != 0) j["warmup_lr"] = warmup_lr;
  if (kind == ScheduleKind::wsd) {
    j["decay_start"] = decay_start();
    j["shape"] = enum_name(shape);
  }
  return j;
}

LrSchedule LrSchedule::from_json(const nlohmann::json& j) {
  LrSchedule s;
  try {
    auto kind = parse_enum<ScheduleKind>(j.at("kind").get<std::string>());
    LT_CHECK(kind, "unknown schedule kind '{}'", j.at("kind").get<std::string>());
    s.kind = *kind;
    s.lr = j.at("lr").get<double>();
    s.min_lr = j.at("min_lr").get<double>();
    s.warmup = j.at("warmup").get<int64_t>();
    s.decay = j.at("decay").get<int64_t>();
    s.warmup_lr = j.value("warmup_lr", 0.0);
    if (s.kind == ScheduleKind::wsd) {
      s.cooldown = s.decay - j.at("decay_start").get<int64_t>();
      auto shape = parse_enum<DecayShape>(j.at("shape").get<std::string>());
      LT_CHECK(shape, "unknown decay shape '{}'", j.at("shape").get<std::string>());
      s.shape = *shape;
    }
  } catch (const nlohmann::json::exception& e) {
    fail("checkpoint scheduler state is malformed: {}", e.what());
  }
  return s;
}

std::string schedule_change(const nlohmann::json& saved, const LrSchedule& now, int64_t step) {
  nlohmann::json a = saved, b = now.to_json();
  a.erase("step");
  if (a == b) return {};
  const LrSchedule was = LrSchedule::from_json(saved);
  return fmt::format("the learning-rate schedule differs from the checkpoint's: now {}; was {}. At step {} the lr is "
                     "{:.4g} (it was going to be {:.4g})",
                     now.describe(now.decay), was.describe(was.decay), step + 1, now.at(step), was.at(step));
}

}  // namespace lt
