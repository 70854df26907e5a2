#include "launch/fault.h"

#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdlib>
#include <sstream>

#include "ckpt/checkpoint.h"
#include "core/env.h"
#include "core/error.h"
#include "launch/process.h"

namespace lt {

namespace {
bool is_dir(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}
}  // namespace

FaultInjector::FaultInjector(LaunchLog& log, std::string checkpoint_dir) : log_(log), ckpt_dir_(std::move(checkpoint_dir)) {
  for (auto s : env_int_list("LT_FAULT_KILL_AT_STEP")) faults_.push_back({"kill", s});
  for (auto s : env_int_list("LT_FAULT_STOP_AT_STEP")) faults_.push_back({"stop", s});
  for (auto s : env_int_list("LT_FAULT_KILL_IN_SAVE")) faults_.push_back({"save", s});
  for (auto s : env_int_list("LT_FAULT_KILL_IN_PRUNE")) faults_.push_back({"prune", s});
  rank_ = int(env_int("LT_FAULT_RANK", -1));
  rng_.seed(unsigned(env_int("LT_FAULT_SEED", std::chrono::steady_clock::now().time_since_epoch().count() & 0xffffffff)));
  if (armed())
    log_.event("fault_injection_armed", fmt::format("fault injection armed: {} fault(s)", faults_.size()),
               {{"rank", rank_}});
}

bool FaultInjector::half_deleted_step() const {
  for (const StepDir& s : list_step_dirs(ckpt_dir_))
    if (!s.done) return true;
  return false;
}

bool FaultInjector::armed() const { return !faults_.empty(); }

void FaultInjector::attempt_started() {
  if (env_text("LT_FAULT_EXIT_AT_STEP")) unsetenv("LT_FAULT_EXIT_AT_STEP");
}

bool FaultInjector::wants_fast_poll(int64_t step) const {
  for (const Fault& f : faults_)
    if (!f.fired && step >= f.step - (f.kind == "save" ? 1 : 2)) return true;
  return false;
}

int FaultInjector::hit(int signal, const std::string& why, int only_rank) {
  auto ranks = local_ranks();
  if (ranks.empty()) return -1;
  if (only_rank >= 0 && !ranks.count(only_rank)) return -1;
  int rank = only_rank >= 0 ? only_rank : rank_;
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
    } else if (f.kind == "prune") {
      if (step < f.step || !half_deleted_step()) continue;
      f.fired = hit(SIGKILL, fmt::format("while old checkpoints are deleted (after step {})", step), 0) >= 0;
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
