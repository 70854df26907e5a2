#include "launch/fault_hooks.h"

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <string>
#include <thread>

#include "core/error.h"

namespace lt {

namespace {
double env_number(const char* name, double lo, double hi) {
  const char* v = std::getenv(name);
  if (!v) return std::nan("");
  try {
    size_t pos = 0;
    double d = std::stod(v, &pos);
    if (pos == std::string(v).size() && d >= lo && d <= hi) return d;
  } catch (...) {
  }
  fail("environment variable {}='{}': expected a number in [{}, {}]", name, v, lo, hi);
}
}  // namespace

FaultHooks FaultHooks::from_env() {
  FaultHooks h;
  if (double k = env_number("LT_FAULT_NAN_AT_STEP", 0, 1e15); !std::isnan(k)) h.nan_at_step = int64_t(k);
  if (double k = env_number("LT_FAULT_SPIKE_AT_STEP", 0, 1e15); !std::isnan(k)) h.spike_at_step = int64_t(k);
  if (double r = env_number("LT_FAULT_RANK", 0, 1e6); !std::isnan(r)) h.rank = int(r);
  if (double s = env_number("LT_FAULT_SAVE_DELAY_S", 0, 3600); !std::isnan(s)) h.save_delay_s = s;
  return h;
}

void FaultHooks::delay_save() const {
  if (save_delay_s > 0) std::this_thread::sleep_for(std::chrono::duration<double>(save_delay_s));
}

}  // namespace lt
