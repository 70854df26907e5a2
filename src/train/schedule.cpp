#include "train/schedule.h"

#include <cmath>

namespace lt {

double LrSchedule::at(int64_t s) const {
  if (s < warmup) return lr * double(s + 1) / double(warmup);
  if (kind == ScheduleKind::constant) return lr;
  if (s >= decay) return min_lr;
  double p = double(s - warmup) / double(decay - warmup);
  if (kind == ScheduleKind::linear) return lr - (lr - min_lr) * p;
  return min_lr + 0.5 * (lr - min_lr) * (1.0 + std::cos(M_PI * p));
}

}  // namespace lt
