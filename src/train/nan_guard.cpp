#include "train/nan_guard.h"

#include "core/error.h"
#include "core/log.h"

namespace lt {

bool NanGuard::on_nonfinite(int64_t step, double loss, double grad_norm) {
  ++skipped_;
  if (log_rank_)
    log::warn("step {}: non-finite loss {} or gradient norm {} (policy {}; {} so far)", step, loss, grad_norm,
              enum_name(policy_), skipped_);
  LT_CHECK(policy_ != NanPolicy::fail, "step {}: non-finite loss or gradient norm (train.nan_policy = fail)", step);
  return policy_ == NanPolicy::rollback;
}

}  // namespace lt
