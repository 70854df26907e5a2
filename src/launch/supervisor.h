// `llamatrain launch`: the supervisor around a training job (the seed's step 4, what
// SageMaker adds around the training script).
//
//   validate config, layout, hostfile ─▶ health check (mpirun llamatrain healthcheck)
//     ─▶ bad hosts? leave them out (spares first, else fewer DP replicas) or stop
//     ─▶ start the ranks (mpirun llamatrain train ... checkpoint.resume=auto)
//     ─▶ watch: mpirun's exit, <run.dir>/heartbeat.json (hang watchdog), the wall clock
//     ─▶ done | failed/hung: stop everything, back off, health check again, restart
//                         | wall-clock limit or SIGTERM/SIGINT: ranks save and exit
// Every decision goes to stderr and <run.dir>/launch.log (JSON lines).
#pragma once

#include "launch/job_plan.h"

namespace lt {

// Exit statuses of `llamatrain launch`.
constexpr int kLaunchDone = 0;       // training finished (train.steps reached)
constexpr int kLaunchError = 1;      // bad input: config, layout, hostfile, options
constexpr int kLaunchFailed = 2;     // the job failed and could not be recovered (retries
                                     // exhausted, no healthy layout left, stop without a checkpoint)
constexpr int kLaunchStopped = 85;   // SIGTERM/SIGINT to the launcher: ranks saved a checkpoint
constexpr int kLaunchTimeLimit = 86;  // --max-run reached: ranks saved a checkpoint; run the same
                                      // command again to continue
constexpr int kLaunchRemoteIncomplete = 87;  // training finished, but some of the newest checkpoints
                                             // have no complete remote copy (kExitRemoteIncomplete);
                                             // run the same command again to upload them

// Runs the whole launch; returns the exit status. Throws lt::Error for bad input.
int run_launch(const LaunchOptions& o);

}  // namespace lt
