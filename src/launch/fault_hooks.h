// Fault hooks inside a training rank, for tests (the supervisor's own faults, from outside the
// rank, are in launch/fault.h). Read once from the environment when the trainer starts:
//   LT_FAULT_NAN_AT_STEP=k       the gradient of step k (1-based) becomes NaN, once, as a
//                                diverging run makes it (tests of train.nan_policy)
//   LT_FAULT_SAVE_DELAY_S=s      every checkpoint save waits s seconds with its shards written
//                                but not yet final, so a test can kill a rank mid-save
// A malformed value is an error naming the variable.
#pragma once
#include <cstdint>

namespace lt {

struct FaultHooks {
  int64_t nan_at_step = -1;  // -1: off
  double save_delay_s = 0;

  static FaultHooks from_env();
  // True once, at step `step` (1-based), when the NaN hook is set for it.
  bool take_nan(int64_t step) {
    if (nan_at_step != step) return false;
    nan_at_step = -1;
    return true;
  }
  // Sleeps for save_delay_s (no-op when 0).
  void delay_save() const;
};

}  // namespace lt
