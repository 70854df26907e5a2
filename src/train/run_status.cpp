#include "train/run_status.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "core/buffer.h"
#include "core/file.h"

namespace lt {

using json = nlohmann::json;

// Written every step: renamed into place but not fsynced (a lost heartbeat after a machine
// crash costs nothing), and a failed write is ignored (the watchdog then sees an old step).
void write_heartbeat(const std::string& run_dir, int64_t step, const char* phase) {
  const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  const std::string path = run_dir + "/heartbeat.json", tmp = path + ".tmp";
  if (std::FILE* f = std::fopen(tmp.c_str(), "w")) {
    std::fprintf(f, "{\"step\": %lld, \"time\": %.3f, \"pid\": %d, \"phase\": \"%s\"}\n", (long long)step, now,
                 int(getpid()), phase);
    std::fclose(f);
    std::rename(tmp.c_str(), path.c_str());
  }
}

void write_exit_status(const std::string& run_dir, int status, int64_t step, int64_t steps,
                       const nlohmann::json& remote) {
  nlohmann::json j = {{"status", status}, {"step", step}, {"steps", steps}};
  if (!remote.is_null()) j["remote"] = remote;
  write_file_atomic(run_dir + "/exit.json", j.dump() + "\n");
}

void clear_exit_status(const std::string& run_dir) {
  std::error_code ec;
  std::filesystem::remove(run_dir + "/exit.json", ec);
}

void write_rank_stats(const std::string& run_dir, int world_rank, const nlohmann::json& stats) {
  const std::string dir = run_dir + "/ranks";
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  write_file_atomic(dir + "/rank_" + std::to_string(world_rank) + ".json", stats.dump(2) + "\n");
}

json rank_stats(const RankModel& model, ProcessGroups& dev, Comm& world, int micro_batches, const RankTimes& t) {
  const RankCoords& rc = dev.coords();
  const double n = double(t.steps);
  auto comm = [&](Comm& c) {
    const CommStats& s = c.stats();
    return json{{"size", c.size()}, {"calls_per_step", double(s.calls) / n},
                {"payload_bytes_per_step", double(s.payload_bytes) / n}, {"sent_bytes_per_step", double(s.sent_bytes) / n},
                {"seconds_per_step", s.seconds / n}};
  };
  return {{"rank", world.rank()}, {"tp_rank", rc.tp_rank}, {"pp_rank", rc.pp_rank}, {"dp_rank", rc.dp_rank},
          {"steps", t.steps}, {"step_s", t.step_s / n}, {"pipeline_wait_s_per_step", t.pipeline_wait_s / n},
          {"micro_batches", micro_batches}, {"grad_reduce", model.reduce_stats(t.steps)},
          {"virtual_stages", model.chunks()}, {"sequence_parallel", model.chunk(0).stage->sequence_parallel()},
          {"activation_bytes", model.activation_bytes()}, {"peak_rss_bytes", peak_rss_bytes()},
          {"comm", {{"tp", comm(dev.tp())}, {"pp", comm(dev.pp())}, {"dp", comm(dev.dp())}, {"world", comm(world)}}}};
}

}  // namespace lt
