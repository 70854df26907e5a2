#include "core/log.h"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace lt::log {
namespace {
int g_rank = -1;
Level g_level = Level::info;
std::mutex g_mutex;
const char* level_name(Level l) {
  switch (l) {
    case Level::debug: return "debug";
    case Level::info: return "info";
    case Level::warn: return "warning";
    case Level::error: return "error";
  }
  return "?";
}
}  // namespace

void set_rank(int rank) { g_rank = rank; }
void set_level(Level level) { g_level = level; }
bool enabled(Level level) { return level >= g_level; }

void write(Level level, std::string_view message) {
  auto now = std::chrono::system_clock::now();
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  localtime_r(&t, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%H:%M:%S", &tm);
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_rank >= 0)
    std::fprintf(stderr, "[%s] [rank %d] %s: %.*s\n", stamp, g_rank, level_name(level), (int)message.size(), message.data());
  else
    std::fprintf(stderr, "[%s] %s: %.*s\n", stamp, level_name(level), (int)message.size(), message.data());
  std::fflush(stderr);
}

}  // namespace lt::log
