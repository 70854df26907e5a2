#include "data/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "core/log.h"

namespace lt::data {

Progress::Progress(std::string what, uint64_t total_bytes, bool enabled)
    : what_(std::move(what)), total_(total_bytes), enabled_(enabled), tty_(isatty(STDERR_FILENO) == 1) {
  start_ = last_ = std::chrono::steady_clock::now();
}

std::string Progress::line(uint64_t bytes, uint64_t tokens) const {
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  double frac = total_ ? double(bytes) / double(total_) : 1.0;
  int width = 24, filled = int(frac * width + 0.5);
  std::string bar = std::string(size_t(std::min(filled, width)), '#') + std::string(size_t(width - std::min(filled, width)), '.');
  double mbps = s > 0 ? double(bytes) / 1e6 / s : 0, tps = s > 0 ? double(tokens) / s : 0;
  std::string eta = "--:--";
  if (frac > 0 && frac < 1 && s > 0.5) {
    int r = int(s * (1 - frac) / frac);
    eta = fmt::format("{}:{:02d}:{:02d}", r / 3600, r / 60 % 60, r % 60);
  } else if (frac >= 1) {
    eta = "0:00:00";
  }
  return fmt::format("{} [{}] {:5.1f}%  {:.1f}/{:.1f} MB  {:.2f} MB/s  {:.0f}k tok/s  ETA {}", what_, bar, frac * 100,
                     double(bytes) / 1e6, double(total_) / 1e6, mbps, tps / 1e3, eta);
}

void Progress::update(uint64_t bytes, uint64_t tokens) {
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  double since = std::chrono::duration<double>(now - last_).count();
  if (since < (tty_ ? 0.25 : 10.0)) return;
  last_ = now;
  if (tty_) std::fprintf(stderr, "\r%s\x1b[K", line(bytes, tokens).c_str());
  else log::info("{}", line(bytes, tokens));
}

void Progress::finish(uint64_t bytes, uint64_t tokens) {
  if (!enabled_) return;
  if (tty_) std::fprintf(stderr, "\r%s\x1b[K\n", line(bytes, tokens).c_str());
  else log::info("{}", line(bytes, tokens));
}

}  // namespace lt::data
