// Fault hooks inside a training rank, for tests (the supervisor's own faults, from outside the
// rank, are in launch/fault.h). Read once from the environment when the trainer starts:
//   LT_FAULT_NAN_AT_STEP=k       the gradient of step k (1-based) becomes NaN, once, as a
//                                diverging run makes it (tests of train.nan_policy)
//   LT_FAULT_SPIKE_AT_STEP=k     step k's gradient range x 1000 and its loss sum x 10, once, as a bad
//                                batch makes them (tests of train.spike_policy)
//   LT_FAULT_RANK=r              the NaN and spike hooks act on world rank r only (default: all)
//   LT_FAULT_SAVE_DELAY_S=s      every checkpoint save waits s seconds with its shards written
//                                but not yet final, so a test can kill a rank mid-save
//   LT_FAULT_EXIT_AT_STEP="5"    after step 5, rank LT_FAULT_RANK (default 0) exits with status
//                                3 on its own, without finalising MPI (as a rank that hits an
//                                error does)
// The variables are declared in core/env.cpp: a malformed value is an error naming it.
#pragma once
#include <cstdint>
#include <vector>

namespace lt {

struct FaultHooks {
  int64_t nan_at_step = -1;  // -1: off
  int64_t spike_at_step = -1;
  int rank = -1;  // -1: every rank
  double save_delay_s = 0;
  std::vector<int64_t> exit_at_steps;
  int exit_rank = 0;

  static FaultHooks from_env();
  // True once, at step `step` (1-based), when the NaN hook is set for it.
  bool take_nan(int64_t step) {
    if (nan_at_step != step) return false;
    nan_at_step = -1;
    return true;
  }
  bool take_spike(int64_t step) {
    if (spike_at_step != step) return false;
    spike_at_step = -1;
    return true;
  }
  bool on_rank(int world_rank) const { return rank < 0 || rank == world_rank; }
  // Sleeps for save_delay_s (no-op when 0).
  void delay_save() const;
  // After step `step`: exits this process with status 3 when the exit hook names it.
  void exit_after_step(int64_t step, int world_rank) const;
};

}  // namespace lt
