// Every decision of the launcher, twice: a readable line on stderr and one JSON object per
// line in <run.dir>/launch.log (appended across launches: {"time": unix s, "event": ..., ...}).
#pragma once
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

namespace lt {

class LaunchLog {
 public:
  LaunchLog() = default;
  ~LaunchLog();
  // Opens <path> for appending; until then events go to stderr only.
  void open(const std::string& path);
  // `event` names the decision ("attempt_start", "rank_failed", "hang", ...); `message` is
  // the human line; `fields` go into the JSON record as they are.
  void event(const std::string& event, const std::string& message, nlohmann::json fields = nlohmann::json::object(),
             bool warning = false);

 private:
  std::FILE* file_ = nullptr;
};

}  // namespace lt
