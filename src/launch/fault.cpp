#include "launch/fault.h"

#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdlib>
#include <sstream>

#include "ckpt/checkpoint.h"
#include "core/error.h"
#include "launch/process.h"

namespace lt {

namespace {
std::vector<int64_t> steps_from_env(const char* name) {
  std::vector<int64_t> out;
  const char* v = std::getenv(name);
  if (!v || !*v) return out;
  std::stringstream ss(v);
  for (std::string item; std::getline(ss, item, ',');) {
    char* end = nullptr;
    long long s = std::strtoll(item.c_str(), &end, 10);
    LT_CHECK(!item.empty() && !*end && s >= 0, "{}='{}': expected comma-separated step numbers, e.g. 3,7", name, v);
    out.push_back(s);
  }
  return out;
}
bool is_dir(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}
}  // namespace

FaultInjector::FaultInjector(LaunchLog& log, std::string checkpoint_dir) : log_(log), ckpt_dir_(std::move(checkpoint_dir)) {
  for (auto s : steps_from_env("LT_FAULT_KILL_AT_STEP")) faults_.push_back({"kill", s});
  for (auto s : steps_from_env("LT_FAULT_STOP_AT_STEP")) faults_.push_back({"stop", s});
  for (auto s : steps_from_env("LT_FAULT_KILL_IN_SAVE")) faults_.push_back({"save", s});
  if (const char* r = std::getenv("LT_FAULT_RANK")) rank_ = std::atoi(r);
  const char* seed = std::getenv("LT_FAULT_SEED");
  rng_.seed(seed ? unsigned(std::atol(seed)) : unsigned(std::chrono::steady_clock::now().time_since_epoch().count()));
  if (armed())
    log_.event("fault_injection_armed", fmt::format("fault injection armed: {} fault(s)", faults_.size()),
               {{"rank", rank_}});
}

bool FaultInjector::armed() const { return !faults_.empty(); }

bool FaultInjector::wants_fast_poll(int64_t step) const {
  for (const Fault& f : faults_)
    if (!f.fired && step >= f.step - (f.kind == "save" ? 1 : 2)) return true;
  return false;
}

int FaultInjector::hit(int signal, const std::string& why) {
  auto ranks = local_ranks();
  if (ranks.empty()) return -1;
  int rank = rank_;
  if (rank < 0 || !ranks.count(rank)) {
    auto it = ranks.begin();
    std::advance(it, std::uniform_int_distribution<size_t>(0, ranks.size() - 1)(rng_));
    rank = it->first;
  }
  kill(ranks[rank], signal);
  log_.event("fault_injected", fmt::format("fault injection: {} rank {} (pid {}) {}", strsignal(signal), rank,
                                           ranks[rank], why),
             {{"signal", signal}, {"rank", rank}, {"pid", ranks[rank]}}, true);
  return rank;
}

void FaultInjector::poll(int64_t step) {
  if (fired_this_attempt_) return;
  for (Fault& f : faults_) {
    if (f.fired) continue;
    if (f.kind == "kill" || f.kind == "stop") {
      if (step < f.step) continue;
      f.fired = hit(f.kind == "kill" ? SIGKILL : SIGSTOP, fmt::format("at step {}", step)) >= 0;
    } else {  // save
      if (step < f.step - 1) continue;
      std::string tmp = checkpoint_tmp_dir(ckpt_dir_, f.step);
      std::string done = ckpt_dir_ + "/" + step_dir_name(f.step);
      if (!is_dir(tmp) || is_dir(done)) continue;
      f.fired = hit(SIGKILL, fmt::format("while checkpoint step {} is being saved", f.step)) >= 0;
      if (f.fired) {  // evidence for the test that the save was really cut short
        bool mid = is_dir(tmp) && !is_dir(done);
        log_.event("fault_mid_save",
                   fmt::format("after the kill: {} {}, {} {}", tmp, is_dir(tmp) ? "exists" : "absent", done,
                               is_dir(done) ? "exists" : "absent"),
                   {{"mid_save", mid}, {"step", f.step}});
      }
    }
    if (f.fired) {
      fired_this_attempt_ = true;
      return;
    }
  }
}

}  // namespace lt
