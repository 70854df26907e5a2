// Learning-rate schedule. Update s (0-based) uses:
//   s <  warmup:           lr · (s+1) / warmup                     (linear warm-up)
//   warmup <= s < decay:   p = (s − warmup) / (decay − warmup)
//                          cosine:   min_lr + ½(lr − min_lr)(1 + cos πp)
//                          linear:   lr − (lr − min_lr)·p
//                          constant: lr
//   s >= decay:            min_lr (constant: lr)
// The state is the step alone, so a resumed run continues the same curve.
#pragma once
#include <cstdint>
#include <span>

#include "core/enum_names.h"

namespace lt {

enum class ScheduleKind { cosine, linear, constant };
constexpr EnumName<ScheduleKind> kScheduleNames[] = {
    {ScheduleKind::cosine, "cosine"}, {ScheduleKind::linear, "linear"}, {ScheduleKind::constant, "constant"}};
constexpr std::span<const EnumName<ScheduleKind>> enum_names(ScheduleKind) { return kScheduleNames; }

struct LrSchedule {
  ScheduleKind kind = ScheduleKind::cosine;
  double lr = 3e-4, min_lr = 3e-5;
  int64_t warmup = 0, decay = 1;
  double at(int64_t step) const;
};

}  // namespace lt
