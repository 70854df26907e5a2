// NanGuard: train.nan_policy for a step whose loss or gradient norm is not finite (its update
// was already skipped): `skip` warns and goes on, `rollback` also asks for the newest
// checkpoint's weights and optimizer state (the data position keeps moving forward, so the
// batches that diverged are not replayed), `fail` stops the run with an error.
#pragma once
#include <cstdint>

#include "train/run_config.h"

namespace lt {

class NanGuard {
 public:
  NanGuard(NanPolicy policy, bool log_rank) : policy_(policy), log_rank_(log_rank) {}
  // After non-finite step `step` (1-based): true when the caller must roll back.
  bool on_nonfinite(int64_t step, double loss, double grad_norm);
  void rolled_back() { ++rollbacks_; }
  int64_t skipped() const { return skipped_; }
  int64_t rollbacks() const { return rollbacks_; }

 private:
  NanPolicy policy_;
  bool log_rank_;
  int64_t skipped_ = 0, rollbacks_ = 0;
};

}  // namespace lt
