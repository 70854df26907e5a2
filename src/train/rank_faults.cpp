#include "train/rank_faults.h"

#include <unistd.h>

#include <algorithm>

#include "core/env.h"
#include "core/log.h"

namespace lt {

void fault_exit_after_step(int64_t step, int world_rank) {
  static const std::vector<int64_t> steps = env_int_list("LT_FAULT_EXIT_AT_STEP");
  if (steps.empty() || std::find(steps.begin(), steps.end(), step) == steps.end()) return;
  if (world_rank != int(env_int("LT_FAULT_RANK", 0))) return;
  log::error("fault injection: rank {} exits with status 3 after step {} (LT_FAULT_EXIT_AT_STEP)", world_rank, step);
  std::fflush(nullptr);
  ::_exit(3);
}

}  // namespace lt
