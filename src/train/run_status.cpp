#include "train/run_status.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "core/file.h"

namespace lt {

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

}  // namespace lt
