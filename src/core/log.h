// Logging: one line per event on stderr, "[time] [rank] level: message".
// The rank prefix is set once by the parallel layer; rank -1 means single process.
#pragma once
#include <fmt/format.h>

#include <string_view>

namespace lt::log {

enum class Level { debug, info, warn, error };

void set_rank(int rank);
void set_level(Level level);
bool enabled(Level level);
void write(Level level, std::string_view message);

template <typename... A> void debug(fmt::format_string<A...> f, A&&... a) {
  if (enabled(Level::debug)) write(Level::debug, fmt::format(f, std::forward<A>(a)...));
}
template <typename... A> void info(fmt::format_string<A...> f, A&&... a) {
  if (enabled(Level::info)) write(Level::info, fmt::format(f, std::forward<A>(a)...));
}
template <typename... A> void warn(fmt::format_string<A...> f, A&&... a) {
  if (enabled(Level::warn)) write(Level::warn, fmt::format(f, std::forward<A>(a)...));
}
template <typename... A> void error(fmt::format_string<A...> f, A&&... a) {
  write(Level::error, fmt::format(f, std::forward<A>(a)...));
}

}  // namespace lt::log
