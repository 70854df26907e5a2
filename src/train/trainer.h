// Trainer: `llamatrain train` on one rank of a tp × pp × dp job (or alone).
//
// One step, from the top:  load this rank's slice of the global batch (data/loader.h)
//   → PipelineSchedule::train (1F1B over the micro-batches; LlamaStage forward/backward)
//   → gradient reductions (replicated KV heads over tp, tied embedding across stages,
//     reduce-scatter or all-reduce over dp) → global gradient norm and clipping
//   → ShardedAdamW update of this rank's range → all-gather (ZeRO-1)
//   → metrics (console, metrics.jsonl, TensorBoard), checkpoint every N steps.
#pragma once
#include <cstdint>

#include "train/run_config.h"

namespace lt {

// Exit status of a run stopped by SIGTERM/SIGINT after saving a checkpoint (the launcher
// restarts or ends the job; distinct from errors (1) and the comm watchdog (75)).
constexpr int kExitStopped = 85;

struct TrainOptions {
  bool json = false;  // print a JSON summary on stdout at the end
};

// Runs the whole training job described by `cfg` on this process; returns the exit status.
int run_training(const RunConfig& cfg, const TrainOptions& opts);

}  // namespace lt
