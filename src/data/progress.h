// Progress: a one-line progress bar on stderr with throughput and ETA. On a terminal it redraws
// in place (at most 4 times a second); otherwise it logs a line every 10 seconds.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace lt::data {

class Progress {
 public:
  Progress(std::string what, uint64_t total_bytes, bool enabled);
  void update(uint64_t bytes_done, uint64_t tokens_done);
  void finish(uint64_t bytes_done, uint64_t tokens_done);

 private:
  std::string line(uint64_t bytes, uint64_t tokens) const;
  std::string what_;
  uint64_t total_;
  bool enabled_, tty_;
  std::chrono::steady_clock::time_point start_, last_;
};

}  // namespace lt::data
