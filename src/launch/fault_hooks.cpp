#include "launch/fault_hooks.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>

#include "core/env.h"
#include "core/log.h"

namespace lt {

FaultHooks FaultHooks::from_env() {
  FaultHooks h;
  h.nan_at_step = env_int("LT_FAULT_NAN_AT_STEP", -1);
  h.spike_at_step = env_int("LT_FAULT_SPIKE_AT_STEP", -1);
  h.rank = int(env_int("LT_FAULT_RANK", -1));
  h.save_delay_s = env_number("LT_FAULT_SAVE_DELAY_S", 0);
  h.exit_at_steps = env_int_list("LT_FAULT_EXIT_AT_STEP");
  h.exit_rank = h.rank < 0 ? 0 : h.rank;
  return h;
}

void FaultHooks::delay_save() const {
  if (save_delay_s > 0) std::this_thread::sleep_for(std::chrono::duration<double>(save_delay_s));
}

void FaultHooks::exit_after_step(int64_t step, int world_rank) const {
  if (world_rank != exit_rank || std::find(exit_at_steps.begin(), exit_at_steps.end(), step) == exit_at_steps.end())
    return;
  log::error("fault injection: rank {} exits with status 3 after step {} (LT_FAULT_EXIT_AT_STEP)", world_rank, step);
  std::fflush(nullptr);
  ::_exit(3);
}

}  // namespace lt
