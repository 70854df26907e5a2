// Learning-rate schedule. Update s (0-based; the console's step s+1) uses, with W = warmup,
// E = decay (the end of the decay; optim.decay_steps, train.steps when 0) and lr0 = warmup_lr:
//   s <  W:            lr0 + (lr − lr0) · (s+1) / W                 (linear warm-up)
//   cosine, linear:    p = (s − W) / (E − W) for W <= s < E
//                        cosine:   min_lr + ½(lr − min_lr)(1 + cos πp)
//                        linear:   lr − (lr − min_lr)·p
//   constant:          lr
//   wsd (warm-up, stable, decay; Hägele et al. 2024): the decay starts at S = E − cooldown
//                      steps (optim.cooldown_steps, or round(decay_fraction · E)):
//                        W <= s < S:   lr                             (stable)
//                        S <= s < E:   p = (s − S) / (E − S),  min_lr + (lr − min_lr) · f(p)
//                        f = linear 1 − p | cosine ½(1 + cos πp) | 1-sqrt 1 − √p
//   s >= E:            min_lr (constant: lr)
// The state is the step alone, so a resumed run continues the same curve, a run resumed with a
// longer horizon or a cooldown (a wsd decay started at any step of a stable phase) continues
// from the same point, and re-warming a pretrained model is a warm-up from warmup_lr at step 0.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <span>
#include <string>

#include "core/enum_names.h"

namespace lt {

enum class ScheduleKind { cosine, linear, constant, wsd };
constexpr EnumName<ScheduleKind> kScheduleNames[] = {{ScheduleKind::cosine, "cosine"},
                                                     {ScheduleKind::linear, "linear"},
                                                     {ScheduleKind::constant, "constant"},
                                                     {ScheduleKind::wsd, "wsd"}};
constexpr std::span<const EnumName<ScheduleKind>> enum_names(ScheduleKind) { return kScheduleNames; }

// The shape of a wsd decay.
enum class DecayShape { linear, cosine, one_minus_sqrt };
constexpr EnumName<DecayShape> kDecayShapeNames[] = {
    {DecayShape::linear, "linear"}, {DecayShape::cosine, "cosine"}, {DecayShape::one_minus_sqrt, "1-sqrt"}};
constexpr std::span<const EnumName<DecayShape>> enum_names(DecayShape) { return kDecayShapeNames; }

struct LrSchedule {
  ScheduleKind kind = ScheduleKind::cosine;
  double lr = 3e-4, min_lr = 3e-5;
  int64_t warmup = 0, decay = 1;
  // wsd: the decay's length (cooldown > 0) or its share of [0, decay); its shape.
  int64_t cooldown = 0;
  double decay_fraction = 0.2;
  DecayShape shape = DecayShape::one_minus_sqrt;
  double warmup_lr = 0;  // where the warm-up starts (re-warming: the previous run's final lr)

  double at(int64_t step) const;
  // First update of the decay (wsd: the end of the stable phase; cosine/linear: warmup).
  int64_t decay_start() const;
  // One line for the start-up log and `plan`: shape, phases, first / peak / last lr over
  // updates [0, steps) and where the decay starts (console steps, 1-based).
  std::string describe(int64_t steps) const;
  nlohmann::json to_json() const;  // what a checkpoint's meta.json stores as "scheduler"
  // Back from to_json() (older checkpoints: kind, lr, min_lr, warmup, decay). Throws when malformed.
  static LrSchedule from_json(const nlohmann::json& j);
};

// Continuing at `step` from a checkpoint whose schedule was `saved` (its "scheduler"): empty
// when `now` is the same schedule, else one line naming both and the learning rate at `step`
// under each, so a changed schedule is never silent.
std::string schedule_change(const nlohmann::json& saved, const LrSchedule& now, int64_t step);

}  // namespace lt
