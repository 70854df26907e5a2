// Fault injection for tests, done by the supervisor on the ranks of this machine (no trainer
// change needed; each fault fires once per launch, whatever the attempt):
//   LT_FAULT_KILL_AT_STEP="3,7"  SIGKILL a rank once the heartbeat shows step >= 3, then >= 7
//   LT_FAULT_STOP_AT_STEP="5"    SIGSTOP a rank at step 5 (a hang: the watchdog must act)
//   LT_FAULT_KILL_IN_SAVE="4"    SIGKILL a rank while checkpoint step 4 is being written
//                                (its step_00000004.tmp/ exists and step_00000004/ does not)
//   LT_FAULT_KILL_IN_PRUNE="6"   SIGKILL rank 0 (which deletes old checkpoints) once the heartbeat
//                                shows step >= 6 and a step directory is half-deleted (it has
//                                lost DONE; LT_FAULT_PRUNE_DELAY_S holds deletions open)
//   LT_FAULT_EXIT_AT_STEP="5"    read by the trainer (train/rank_faults.h); passed to the first
//                                attempt's ranks only, so the restart does not exit again
//   LT_FAULT_RANK=r              the world rank to hit (default: a random local rank,
//                                LT_FAULT_SEED seeds the choice)
//   LT_FAULT_HEALTHCHECK_LATER="compute:2"  passed as LT_HEALTHCHECK_FAULT to the health
//                                checks after the first attempt (a host that turns bad)
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "launch/launch_log.h"

namespace lt {

class FaultInjector {
 public:
  FaultInjector(LaunchLog& log, std::string checkpoint_dir);
  bool armed() const;
  // True while a fault is close: poll fast, so that it hits at its step (a small model's step
  // or checkpoint takes milliseconds).
  bool wants_fast_poll(int64_t heartbeat_step) const;
  // Called by the watch loop with the newest heartbeat step (-1: none yet). At most one
  // fault per attempt: the job it hits is dying, the next fault waits for the restart.
  void poll(int64_t heartbeat_step);
  void new_attempt() { fired_this_attempt_ = false; }
  // After the first attempt started: later attempts do not inherit LT_FAULT_EXIT_AT_STEP.
  void attempt_started();

 private:
  struct Fault {
    std::string kind;  // kill | stop | save | prune
    int64_t step;
    bool fired = false;
  };
  // Signals `only_rank` (or the configured / a random local rank); the rank hit, -1 if none.
  int hit(int signal, const std::string& why, int only_rank = -1);
  bool half_deleted_step() const;  // a step directory that lost DONE: retention is deleting it
  LaunchLog& log_;
  std::string ckpt_dir_;
  std::vector<Fault> faults_;
  int rank_ = -1;
  bool fired_this_attempt_ = false;
  std::mt19937 rng_;
};

}  // namespace lt
