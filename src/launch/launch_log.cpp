#include "launch/launch_log.h"

#include <chrono>

#include "core/error.h"
#include "core/log.h"

namespace lt {

LaunchLog::~LaunchLog() {
  if (file_) std::fclose(file_);
}

void LaunchLog::open(const std::string& path) {
  file_ = std::fopen(path.c_str(), "a");
  LT_CHECK(file_, "cannot open {} for appending", path);
}

void LaunchLog::event(const std::string& event, const std::string& message, nlohmann::json fields, bool warning) {
  if (warning)
    log::warn("launch: {}", message);
  else
    log::info("launch: {}", message);
  if (!file_) return;
  nlohmann::json rec = {
      {"time", std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count()},
      {"event", event},
      {"message", message}};
  for (auto& [k, v] : fields.items()) rec[k] = v;
  std::fprintf(file_, "%s\n", rec.dump().c_str());
  std::fflush(file_);
}

}  // namespace lt
