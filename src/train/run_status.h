// What a training rank tells the outside world about its progress, in <run.dir>:
//   heartbeat.json     {"step", "time", "pid", "phase"}: the launcher's hang watchdog reads it;
//                      "phase" is "start" once the weights are loaded, then "train" per step
//   exit.json          {"status", "step", "steps"[, "remote"]}: how the process ended (0 done,
//                      85 stopped after saving, 87 remote copies missing), for a launcher
//                      that only sees mpirun's status
//   ranks/rank_<r>.json  what this rank spent and sent over the timed steps (all but the
//                      first), for the parallel benchmark (bench/parallel_bench.sh)
// Every file is replaced atomically.
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "parallel/comm.h"
#include "parallel/topology.h"
#include "train/rank_model.h"

namespace lt {

void write_heartbeat(const std::string& run_dir, int64_t step, const char* phase);
// `remote`: the checkpoint.remote report (exit.json's "remote"), or null without one.
void write_exit_status(const std::string& run_dir, int status, int64_t step, int64_t steps,
                       const nlohmann::json& remote = nullptr);
void clear_exit_status(const std::string& run_dir);
void write_rank_stats(const std::string& run_dir, int world_rank, const nlohmann::json& stats);

// rank_<r>.json's content over `steps` timed steps: coordinates, seconds per step, pipeline
// wait, the gradient reduction, activation bytes, peak RSS, and each group's calls, payload,
// bytes sent and seconds (`dev`: the groups that carry stage memory).
struct RankTimes {
  int64_t steps = 0;
  double step_s = 0, pipeline_wait_s = 0;  // totals over the timed steps
};
nlohmann::json rank_stats(const RankModel& model, ProcessGroups& dev, Comm& world, int micro_batches,
                          const RankTimes& t);

}  // namespace lt
