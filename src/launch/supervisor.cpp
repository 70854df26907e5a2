#include "launch/supervisor.h"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <sstream>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <optional>
#include <thread>

#include "ckpt/checkpoint.h"
#include "ckpt/checkpoint_sync.h"
#include "core/env.h"
#include "core/error.h"
#include "core/file.h"
#include "core/log.h"
#include "launch/duration.h"
#include "launch/fault.h"
#include "launch/launch_log.h"
#include "launch/process.h"
#include "launch/slurm.h"
#include "train/metrics.h"  // format_duration

namespace lt {

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

std::atomic<int> g_signal{0};
extern "C" void on_launcher_signal(int sig) { g_signal.store(sig); }

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
void nap(double s) { std::this_thread::sleep_for(std::chrono::duration<double>(s)); }

struct Heartbeat {
  int64_t step = -1;
  int pid = 0;
};
// The trainer's <run.dir>/heartbeat.json (written by rank 0 after every step, atomically).
std::optional<Heartbeat> read_heartbeat(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "r");
  if (!f) return std::nullopt;
  char buf[512];
  size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = 0;
  json j = json::parse(buf, nullptr, false);
  if (j.is_discarded() || !j.contains("step")) return std::nullopt;
  return Heartbeat{j["step"].get<int64_t>(), j.value("pid", 0)};
}

// The trainer's <run.dir>/exit.json (rank 0, at exit): status, step and, with checkpoint.remote,
// the state of the remote copies.
json read_exit_json(const std::string& path) {
  std::string text;
  try {
    text = read_file(path);
  } catch (const std::exception&) {
    return json();
  }
  json j = json::parse(text, nullptr, false);
  return j.is_object() ? j : json();
}

int64_t newest_checkpoint_step(const std::string& dir) {
  try {
    if (auto ref = find_latest_checkpoint(dir, Verify::sizes)) return ref->meta.step;
  } catch (const std::exception&) {
  }
  return -1;
}

std::string checkpoint_text(int64_t step) {
  return step >= 0 ? fmt::format("newest checkpoint step {}", step) : "no checkpoint written yet";
}

enum class Outcome { completed, failed, hung, stopped, stop_failed };
const char* outcome_name(Outcome o) {
  switch (o) {
    case Outcome::completed: return "completed";
    case Outcome::failed: return "failed";
    case Outcome::hung: return "hung";
    case Outcome::stopped: return "stopped";
    case Outcome::stop_failed: return "stop_failed";
  }
  return "?";
}

// Why the launcher is stopping the job on purpose (not a failure).
enum class StopReason { none, time_limit, signal };

struct HealthResult {
  bool ok = false;
  bool named = false;           // the check ran to the end and named bad ranks
  std::vector<int> bad_ranks;
  std::vector<std::string> bad_hosts;  // as the ranks reported them
  std::string detail;
};

class Supervisor {
 public:
  Supervisor(const LaunchOptions& o, RunConfig cfg, Placement p)
      : o_(o), cfg_(std::move(cfg)), place_(std::move(p)), faults_(log_, cfg_.checkpoint_dir) {}
  int run();

 private:
  HealthResult health_check();
  json run_attempt(int attempt, Outcome& outcome);
  void begin_stop(StopReason why, int64_t step);
  int end_job(pid_t pid, double grace);
  bool wait_or_interrupted(double seconds);  // false when a stop reason arrived
  StopReason stop_due() const;
  std::vector<std::string> train_argv(int attempt) const;
  int finish(int status, const std::string& status_name, const std::string& message);

  const LaunchOptions& o_;
  RunConfig cfg_;
  Placement place_;
  LaunchLog log_;
  FaultInjector faults_;
  Clock::time_point start_ = Clock::now();
  StopReason stop_ = StopReason::none;
  json attempts_ = json::array();
  std::vector<std::string> excluded_;
  int retries_ = 0;
  int jobs_started_ = 0;  // training attempts started (health checks not counted)
  std::string hostfile_path_;
  std::optional<Clock::time_point> failed_at_;
  json remote_;  // exit.json's "remote" of the latest attempt that wrote one
};

StopReason Supervisor::stop_due() const {
  if (g_signal.load()) return StopReason::signal;
  if (o_.max_run_s > 0 && since(start_) >= o_.max_run_s) return StopReason::time_limit;
  return StopReason::none;
}

bool Supervisor::wait_or_interrupted(double seconds) {
  auto t = Clock::now();
  while (since(t) < seconds) {
    if (stop_due() != StopReason::none) return false;
    nap(std::min(0.2, seconds));
  }
  return stop_due() == StopReason::none;
}

std::vector<std::string> Supervisor::train_argv(int attempt) const {
  std::vector<std::string> a = launch_prefix(o_, place_, hostfile_path_);
  a.insert(a.end(), {o_.self_exe, "train"});
  if (!o_.config.empty()) a.insert(a.end(), {"--config", o_.config});
  a.insert(a.end(), o_.overrides.begin(), o_.overrides.end());
  // A restart continues from the newest complete checkpoint, whatever the first attempt
  // was told to start from (later overrides win).
  if (attempt > 1 && cfg_.resume != "auto" && newest_checkpoint_step(cfg_.checkpoint_dir) >= 0)
    a.push_back("checkpoint.resume=auto");
  // Rank 0's wait for remote copies at exit must leave time for the save inside --stop-grace,
  // and end before the hang watchdog or the ranks' comm watchdog (peers wait in the final
  // barrier meanwhile) would take it for a hang.
  double wait_limit = std::min(o_.stop_grace_s, o_.hang_timeout_s) / 2;
  if (double comm = env_number("LT_COMM_TIMEOUT", 0); comm > 0) wait_limit = std::min(wait_limit, comm / 2);
  if (!cfg_.remote.empty() && cfg_.remote_wait_s > wait_limit)
    a.push_back(fmt::format("checkpoint.remote_wait_s={}", wait_limit));
  return a;
}

HealthResult Supervisor::health_check() {
  HealthResult r;
  if (!place_.hosts.empty() && !place_.slurm) write_hostfile(hostfile_path_, place_.hosts, place_.procs_per_node);
  std::vector<std::string> a = launch_prefix(o_, place_, hostfile_path_);
  a.insert(a.end(), {o_.self_exe, "healthcheck", "--json", "--tp", std::to_string(cfg_.tp), "--pp",
                     std::to_string(cfg_.pp)});
  std::istringstream extra(o_.healthcheck_args);
  for (std::string w; extra >> w;) a.push_back(w);
  std::string out = cfg_.run_dir + "/healthcheck.json";
  log_.event("healthcheck_start", fmt::format("health check of {} ranks: {}", place_.world(), join_command(a)),
             {{"command", a}, {"world", place_.world()}, {"hosts", place_.hosts}});
  auto t0 = Clock::now();
  ChildOptions co{out, {}};
  // Test hook: a host that turns bad during the job (health checks after the first attempt).
  if (const char* later = std::getenv("LT_FAULT_HEALTHCHECK_LATER"); later && jobs_started_ > 0)
    co.env.push_back(std::string("LT_HEALTHCHECK_FAULT=") + later);
  if (!co.env.empty() && !place_.slurm && std::find(a.begin(), a.end(), "LT_HEALTHCHECK_FAULT") == a.end())
    a.insert(a.begin() + 1, {"-x", "LT_HEALTHCHECK_FAULT"});
  pid_t pid = spawn(a, co);
  int status = -1;
  while (!reap(pid, status)) {
    if (since(t0) > o_.healthcheck_timeout_s || stop_due() != StopReason::none) {
      end_job(pid, 2);
      r.detail = stop_due() != StopReason::none
                     ? "interrupted"
                     : fmt::format("no verdict within {} s (--healthcheck-timeout)", o_.healthcheck_timeout_s);
      return r;
    }
    nap(0.1);
  }
  kill_all_descendants();
  std::string text;
  try {
    text = read_file(out);
  } catch (const std::exception&) {
  }
  size_t a0 = text.find('{'), a1 = text.rfind('}');
  json j = a0 == std::string::npos || a1 == std::string::npos ? json()
                                                               : json::parse(text.substr(a0, a1 - a0 + 1), nullptr, false);
  if (j.is_object() && j.contains("ok")) {
    r.ok = j["ok"].get<bool>() && status == 0;
    r.bad_ranks = j.value("bad_ranks", std::vector<int>{});
    r.bad_hosts = j.value("bad_hosts", std::vector<std::string>{});
    r.named = !r.bad_ranks.empty();
    for (const auto& rk : j.value("ranks", json::array()))
      if (!rk.value("ok", true))
        r.detail += fmt::format("{}rank {} on {}: {}", r.detail.empty() ? "" : "; ", rk.value("rank", -1),
                                rk.value("host", "?"), rk.value("problems", ""));
  }
  if (!r.ok && r.detail.empty()) r.detail = fmt::format("healthcheck exited with status {} (see {})", status, out);
  log_.event(r.ok ? "healthcheck_ok" : "healthcheck_failed",
             r.ok ? fmt::format("health check passed ({:.1f} s)", since(t0))
                  : fmt::format("health check FAILED: {}", r.detail),
             {{"exit_status", status}, {"bad_ranks", r.bad_ranks}, {"bad_hosts", r.bad_hosts}, {"seconds", since(t0)}},
             !r.ok);
  return r;
}

// Clean stop: SIGTERM to the ranks on this machine (one is enough: the trainer agrees on
// stopping across ranks each step), else to mpirun, which forwards it. The trainer finishes
// its step, saves a checkpoint and exits 85.
void Supervisor::begin_stop(StopReason why, int64_t step) {
  stop_ = why;
  auto ranks = local_ranks();
  log_.event(why == StopReason::time_limit ? "time_limit" : "stop_signal",
             why == StopReason::time_limit
                 ? fmt::format("wall-clock limit {} reached at step {}: asking the ranks to save and stop",
                               format_duration(o_.max_run_s), step)
                 : fmt::format("launcher got signal {}: asking the ranks to save and stop (step {})", g_signal.load(),
                               step),
             {{"step", step}, {"local_ranks", ranks.size()}});
  for (auto& [rank, pid] : ranks) kill(pid, SIGTERM);
  if (ranks.empty()) {
    for (pid_t p : descendants()) kill(p, SIGTERM);  // mpirun and its helpers forward it
  }
}

// Failed or hung job: SIGKILL to the ranks on this machine (a hung job has nothing to save,
// and mpirun's own teardown sends SIGCONT first, which would wake a stopped rank and let the
// "dead" job run on), SIGTERM to mpirun (it takes the remote ranks down), then after `grace`
// seconds SIGKILL to everything left below the launcher. Returns mpirun's exit status
// (128 + 9 when it had to be killed).
int Supervisor::end_job(pid_t pid, double grace) {
  for (auto& [rank, p] : local_ranks()) kill(p, SIGKILL);
  kill(pid, SIGTERM);
  auto t = Clock::now();
  int status = 128 + SIGKILL;
  bool ended = false;
  while (since(t) < grace && !(ended = reap(pid, status))) nap(0.1);
  if (!ended) kill(pid, SIGKILL);
  kill_all_descendants();
  if (!ended) reap(pid, status);
  return ended ? status : 128 + SIGKILL;
}

json Supervisor::run_attempt(int attempt, Outcome& outcome) {
  const std::string hb_path = cfg_.run_dir + "/heartbeat.json", exit_path = cfg_.run_dir + "/exit.json";
  std::remove(hb_path.c_str());  // progress is judged on this attempt's heartbeats only
  std::remove(exit_path.c_str());
  if (!place_.hosts.empty() && !place_.slurm) write_hostfile(hostfile_path_, place_.hosts, place_.procs_per_node);
  int64_t resume_step = newest_checkpoint_step(cfg_.checkpoint_dir);
  std::vector<std::string> argv = train_argv(attempt);
  json rec = {{"attempt", attempt}, {"world", place_.world()}, {"hosts", place_.hosts}, {"resume_step", resume_step}};
  log_.event("attempt_start",
             fmt::format("attempt {}: {} ranks{}, {}: {}", attempt, place_.world(),
                         place_.hosts.empty() ? "" : fmt::format(" on {}", fmt::join(place_.hosts, ",")),
                         resume_step >= 0 ? fmt::format("resuming from checkpoint step {}", resume_step)
                                          : std::string("no checkpoint yet"),
                         join_command(argv)),
             {{"attempt", attempt}, {"command", argv}, {"world", place_.world()}, {"resume_step", resume_step}});
  faults_.new_attempt();
  ++jobs_started_;
  auto t0 = Clock::now();
  pid_t pid = spawn(argv);
  faults_.attempt_started();
  int64_t step = -1, first_step = -1;
  auto last_progress = t0;
  Clock::time_point stop_began;
  int status = -1;
  outcome = Outcome::failed;
  for (;;) {
    bool ended = reap(pid, status);
    if (auto hb = read_heartbeat(hb_path); hb && hb->step != step) {
      if (first_step < 0) {
        first_step = hb->step;
        rec["startup_s"] = since(t0);
        if (failed_at_) rec["recovery_s"] = std::chrono::duration<double>(Clock::now() - *failed_at_).count();
        log_.event("first_step", fmt::format("attempt {}: first step {} after {:.1f} s", attempt, hb->step, since(t0)),
                   {{"attempt", attempt}, {"step", hb->step}, {"startup_s", since(t0)}});
      }
      step = hb->step;
      last_progress = Clock::now();
    }
    if (ended) break;
    if (stop_ == StopReason::none) {
      faults_.poll(step);
      if (StopReason why = stop_due(); why != StopReason::none) {
        begin_stop(why, step);
        stop_began = Clock::now();
      } else if (step < 0 && since(t0) > o_.startup_timeout_s) {
        log_.event("hang", fmt::format("attempt {}: no first step within {} s (--startup-timeout): stopping the job",
                                       attempt, o_.startup_timeout_s),
                   {{"attempt", attempt}}, true);
        outcome = Outcome::hung;
      } else if (step >= 0 && since(last_progress) > o_.hang_timeout_s) {
        log_.event("hang", fmt::format("attempt {}: no progress past step {} for {:.0f} s (--hang-timeout): stopping "
                                       "the job",
                                       attempt, step, since(last_progress)),
                   {{"attempt", attempt}, {"step", step}}, true);
        outcome = Outcome::hung;
      }
      if (outcome == Outcome::hung) {
        status = end_job(pid, o_.kill_grace_s);
        break;
      }
    } else if (since(stop_began) > o_.stop_grace_s) {
      log_.event("stop_timeout", fmt::format("ranks did not stop within {} s (--stop-grace): killing them",
                                             o_.stop_grace_s), {}, true);
      kill_all_descendants();
      reap(pid, status);
      outcome = Outcome::stop_failed;
      break;
    }
    nap(faults_.wants_fast_poll(step) ? 0.002 : 0.1);
  }
  kill_all_descendants();  // ranks orphaned by mpirun, if any
  int64_t ckpt = newest_checkpoint_step(cfg_.checkpoint_dir);
  json exit_info = read_exit_json(exit_path);
  if (exit_info.contains("remote")) remote_ = rec["remote"] = exit_info["remote"];
  if (outcome != Outcome::hung && outcome != Outcome::stop_failed) {
    // The trainer exits 0 only at train.steps (also when resumed there: no heartbeat), and 87
    // when it got there but some remote copies are missing.
    if (status == 0 || (status == kExitRemoteIncomplete && exit_info.value("status", -1) == kExitRemoteIncomplete))
      outcome = Outcome::completed;
    else if (stop_ != StopReason::none)
      // Clean when the ranks said so (85) or when nothing after the newest checkpoint was lost.
      outcome = status == 0 ? Outcome::completed
                : (status == 85 || (step >= 0 && ckpt >= step) || step < 0) ? Outcome::stopped
                                                                             : Outcome::stop_failed;
    else
      outcome = Outcome::failed;
  }
  rec.update({{"exit_status", status}, {"outcome", outcome_name(outcome)}, {"first_step", first_step},
              {"last_step", step}, {"checkpoint_step", ckpt}, {"seconds", since(t0)}});
  log_.event("attempt_end",
             fmt::format("attempt {} {}: {} exit status {}, last step {}, newest checkpoint step {}, {:.1f} s",
                         attempt, outcome_name(outcome), place_.slurm ? "srun" : "mpirun", status, step, ckpt,
                         since(t0)),
             rec, outcome != Outcome::completed && outcome != Outcome::stopped);
  return rec;
}

int Supervisor::finish(int status, const std::string& status_name, const std::string& message) {
  int64_t final_step = newest_checkpoint_step(cfg_.checkpoint_dir);
  json s = {{"status", status_name}, {"exit_status", status}, {"attempts", attempts_},
            {"retries", retries_}, {"hosts_excluded", excluded_}, {"final_step", final_step},
            {"target_steps", cfg_.steps}, {"wall_s", since(start_)}, {"message", message}};
  if (!remote_.is_null()) s["remote"] = remote_;
  log_.event("summary", message, s, status != kLaunchDone);
  if (o_.json) std::printf("%s\n", s.dump(2).c_str());
  std::fflush(stdout);
  return status;
}

int Supervisor::run() {
  ensure_writable_dir(cfg_.run_dir, "run.dir");
  log_.open(cfg_.run_dir + "/launch.log");
  hostfile_path_ = cfg_.run_dir + "/launch_hostfile";
  become_subreaper();
  std::signal(SIGTERM, on_launcher_signal);
  std::signal(SIGINT, on_launcher_signal);
  log_.event("launch_start",
             fmt::format("{} nodes x {} procs = {} ranks, tp{} pp{} dp{}, {} retries max{}", place_.nodes,
                         place_.procs_per_node, place_.world(), cfg_.tp, cfg_.pp,
                         place_.world() / (cfg_.tp * cfg_.pp), o_.max_retries,
                         o_.max_run_s > 0 ? ", wall-clock limit " + format_duration(o_.max_run_s) : ""),
             {{"nodes", place_.nodes}, {"procs_per_node", place_.procs_per_node}, {"hosts", place_.hosts},
              {"spares", place_.spares}, {"max_retries", o_.max_retries}, {"max_run_s", o_.max_run_s},
              {"hang_timeout_s", o_.hang_timeout_s}, {"run_dir", cfg_.run_dir}});
  auto stopped = [&](const char* where) {
    StopReason why = stop_due();
    int64_t ck = newest_checkpoint_step(cfg_.checkpoint_dir);
    std::string msg = fmt::format("{} {}; {}",
                                  why == StopReason::time_limit ? "wall-clock limit reached" : "stopped by a signal",
                                  where, checkpoint_text(ck));
    if (!remote_.is_null() && !remote_.value("complete", true))
      msg += fmt::format("; remote copies missing at {}: {} (the next run uploads them)", remote_.value("url", "?"),
                         remote_.value("missing", json::array()).dump());
    return why == StopReason::time_limit ? finish(kLaunchTimeLimit, "time_limit", msg)
                                         : finish(kLaunchStopped, "stopped", msg);
  };
  for (int attempt = 1;; ++attempt) {
    if (stop_due() != StopReason::none) return stopped("before starting the job");
    if (o_.healthcheck) {
      // Leave out bad hosts until the check passes (bounded: each round removes a host).
      for (;;) {
        HealthResult h = health_check();
        if (h.ok) break;
        if (stop_due() != StopReason::none) return stopped("during the health check");
        if (!h.named) {
          failed_at_ = Clock::now();
          attempts_.push_back({{"attempt", attempt}, {"outcome", "healthcheck_failed"}, {"detail", h.detail}});
          goto retry;
        }
        std::vector<std::string> bad = place_.hosts.empty() ? h.bad_hosts : hosts_of_ranks(place_, h.bad_ranks);
        std::vector<std::string> before = place_.hosts;
        try {
          place_ = exclude_hosts(place_, bad, cfg_);
        } catch (const Error& e) {
          return finish(kLaunchFailed, "failed", fmt::format("health check failed ({}); {}", h.detail, e.what()));
        }
        excluded_.insert(excluded_.end(), bad.begin(), bad.end());
        std::vector<std::string> added;
        for (const auto& h : place_.hosts)
          if (std::find(before.begin(), before.end(), h) == before.end()) added.push_back(h);
        log_.event("hosts_excluded",
                   fmt::format("leaving out {}{}: continuing on {} nodes x {} procs = {} ranks (dp {})",
                               fmt::join(bad, ","),
                               added.empty() ? "" : fmt::format(" (spare {} takes its place)", fmt::join(added, ",")),
                               place_.nodes, place_.procs_per_node, place_.world(), place_.world() / (cfg_.tp * cfg_.pp)),
                   {{"excluded", bad}, {"spares_used", added}, {"hosts", place_.hosts}, {"world", place_.world()}},
                   true);
      }
    }
    {
      Outcome outcome;
      attempts_.push_back(run_attempt(attempt, outcome));
      if (outcome == Outcome::completed && !remote_.is_null() && !remote_.value("complete", true))
        return finish(kLaunchRemoteIncomplete, "completed_remote_incomplete",
                      fmt::format("training complete: step {} after {} attempt(s), but remote copies are missing at "
                                  "{}: {} ({}); run the same command again to upload them",
                                  cfg_.steps, attempt, remote_.value("url", "?"), remote_.value("missing", json::array()).dump(),
                                  remote_.value("error", "")));
      if (outcome == Outcome::completed)
        return finish(kLaunchDone, "completed",
                      fmt::format("training complete: step {} after {} attempt(s)", cfg_.steps, attempt));
      if (outcome == Outcome::stopped) return stopped("(the ranks saved a checkpoint and stopped)");
      if (outcome == Outcome::stop_failed)
        return finish(kLaunchFailed, "failed",
                      "asked to stop, but the ranks did not save a checkpoint and exit cleanly (see the log above)");
      failed_at_ = Clock::now();
    }
  retry:
    if (retries_ >= o_.max_retries)
      return finish(kLaunchFailed, "failed",
                    fmt::format("giving up: the job failed {} time(s) and --max-retries {} is exhausted; {}", attempt,
                                o_.max_retries, checkpoint_text(newest_checkpoint_step(cfg_.checkpoint_dir))));
    ++retries_;
    double wait = std::min(o_.backoff_max_s, o_.backoff_s * std::pow(2.0, retries_ - 1));
    log_.event("retry", fmt::format("retry {} of {} in {:.0f} s", retries_, o_.max_retries, wait),
               {{"retry", retries_}, {"backoff_s", wait}});
    if (!wait_or_interrupted(wait)) return stopped("while waiting to retry");
  }
}

// True when `prog` (a path, or a name searched on PATH) is an executable file.
bool on_path(const std::string& prog) {
  if (prog.find('/') != std::string::npos) return access(prog.c_str(), X_OK) == 0;
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "");
  for (std::string d; std::getline(dirs, d, ':');)
    if (!d.empty() && access((d + "/" + prog).c_str(), X_OK) == 0) return true;
  return false;
}

}  // namespace

int run_slurm_launch(LaunchOptions& o, RunConfig cfg, const SlurmAllocation& a);
int start_launch(const LaunchOptions& o, RunConfig cfg, Placement p);

int run_launch(const LaunchOptions& o) {
  RunConfig cfg = load_run_config(o.config, o.overrides);
  LT_CHECK(o.procs_per_node >= 0, "--procs-per-node: the number of ranks per host must be a positive integer, got {}",
           o.procs_per_node);
  LT_CHECK(o.nodes >= 0, "--nodes: must be positive, got {}", o.nodes);
  LT_CHECK(o.max_retries >= 0, "--max-retries: must be >= 0");
  LT_CHECK(o.hang_timeout_s > 0 && o.startup_timeout_s > 0, "--hang-timeout / --startup-timeout: must be positive");
  LT_CHECK(o.launcher == "auto" || o.launcher == "mpirun" || o.launcher == "srun",
           "--launcher: expected auto, mpirun or srun, got '{}'", o.launcher);
  std::optional<SlurmAllocation> slurm = o.launcher == "mpirun" ? std::nullopt : detect_slurm();
  LT_CHECK(o.launcher != "srun" || slurm, "--launcher srun: not inside a Slurm allocation (SLURM_JOB_ID and "
           "SLURM_JOB_NODELIST are not set; run under sbatch or salloc)");
  if (slurm && o.launcher == "auto" && !on_path(o.srun)) slurm.reset();  // an allocation without srun here
  LaunchOptions lo = o;
  if (slurm) return run_slurm_launch(lo, std::move(cfg), *slurm);
  LT_CHECK(o.procs_per_node > 0, "--procs-per-node is required: the number of ranks per host (a positive integer)");
  LT_CHECK(on_path(o.mpirun), "--mpirun: '{}' not found or not executable (install OpenMPI: apt-get install "
           "openmpi-bin, or give its path with --mpirun)", o.mpirun);
  Placement p;
  p.procs_per_node = o.procs_per_node;
  if (!o.hostfile.empty()) {
    std::vector<HostEntry> hosts = parse_hostfile(o.hostfile);
    check_hosts(hosts, o.hostfile, o.procs_per_node, o.probe_hosts);
    int nodes = o.nodes > 0 ? o.nodes : int(hosts.size());
    LT_CHECK(nodes <= int(hosts.size()), "--nodes {}: the hostfile {} lists only {} host(s)", nodes, o.hostfile,
             hosts.size());
    for (int i = 0; i < int(hosts.size()); ++i) (i < nodes ? p.hosts : p.spares).push_back(hosts[i].name);
    p.nodes = nodes;
  } else {
    p.nodes = o.nodes > 0 ? o.nodes : 1;
  }
  return start_launch(o, std::move(cfg), std::move(p));
}

// Inside a Slurm allocation: its nodes (the first --nodes of them; the rest are spares that
// replace nodes failing the health check) and tasks per node, srun for every step, and a
// wall-clock stop --stop-before the allocation's end.
int run_slurm_launch(LaunchOptions& o, RunConfig cfg, const SlurmAllocation& a) {
  LT_CHECK(o.hostfile.empty(), "--hostfile: not used inside a Slurm allocation (job {} has nodes {}); leave it out, "
           "or give --launcher mpirun", a.job_id, fmt::join(a.nodes, ","));
  LT_CHECK(on_path(o.srun), "--srun: '{}' not found or not executable inside Slurm job {}", o.srun, a.job_id);
  Placement p;
  p.slurm = true;
  p.procs_per_node = o.procs_per_node > 0 ? o.procs_per_node : a.tasks_per_node;
  LT_CHECK(p.procs_per_node > 0, "Slurm job {} does not say its tasks per node (SLURM_NTASKS_PER_NODE): give "
           "--procs-per-node or sbatch --ntasks-per-node", a.job_id);
  p.nodes = o.nodes > 0 ? o.nodes : int(a.nodes.size());
  LT_CHECK(p.nodes <= int(a.nodes.size()), "--nodes {}: Slurm job {} has only {} node(s) ({})", p.nodes, a.job_id,
           a.nodes.size(), fmt::join(a.nodes, ","));
  for (int i = 0; i < int(a.nodes.size()); ++i) (i < p.nodes ? p.hosts : p.spares).push_back(a.nodes[size_t(i)]);
  if (a.seconds_left > 0) {
    const double until = a.seconds_left - o.stop_before_s;
    LT_CHECK(until > 0, "Slurm job {} ends in {:.0f} s, within --stop-before {:.0f} s: no time to train", a.job_id,
             a.seconds_left, o.stop_before_s);
    if (o.max_run_s <= 0 || until < o.max_run_s) o.max_run_s = until;
  }
  log::info("launch: Slurm job {}: {} node(s) x {} task(s) ({}{}), srun starts the ranks{}", a.job_id, p.nodes,
            p.procs_per_node, fmt::join(p.hosts, ","), p.spares.empty() ? "" : fmt::format("; spares {}", fmt::join(p.spares, ",")),
            a.seconds_left > 0 ? fmt::format("; the allocation ends in {}, the ranks stop {} before", format_duration(a.seconds_left),
                                             format_duration(o.stop_before_s))
                               : "");
  return start_launch(o, std::move(cfg), std::move(p));
}

int start_launch(const LaunchOptions& o, RunConfig cfg, Placement p) {
  // Ranks carry the launch's id in their environment, so the launcher finds its ranks on this
  // machine wherever they were started from (mpirun's children, or slurmstepd's under srun).
  setenv("LT_LAUNCH_ID", fmt::format("{}-{}", getpid(), std::chrono::steady_clock::now().time_since_epoch().count()).c_str(), 1);
  JobLayout layout = check_layout(p, cfg);
  for (const auto& w : layout.warnings) log::warn("launch: layout: {}", w);
  if (oversubscribes(o, p))
    log::info("launch: {} ranks on this machine's {} cores: oversubscribing (mpirun --oversubscribe --bind-to none; "
              "each rank gets {} OpenMP thread(s))",
              p.procs_per_node, o.local_cores, std::max(1, o.local_cores / p.procs_per_node));
  if (o.dry_run) {
    std::vector<std::string> a = launch_prefix(o, p, cfg.run_dir + "/launch_hostfile");
    a.insert(a.end(), {o.self_exe, "train"});
    if (!o.config.empty()) a.insert(a.end(), {"--config", o.config});
    a.insert(a.end(), o.overrides.begin(), o.overrides.end());
    json j = {{"world", p.world()}, {"nodes", p.nodes}, {"procs_per_node", p.procs_per_node}, {"tp", layout.tp},
              {"pp", layout.pp}, {"dp", layout.dp}, {"micro_batches", layout.micro_batches}, {"hosts", p.hosts},
              {"spares", p.spares}, {"launcher", p.slurm ? "srun" : "mpirun"}, {"max_run_s", o.max_run_s},
              {"command", join_command(a)}};
    std::printf("%s\n", o.json ? j.dump(2).c_str()
                               : fmt::format("{} ranks: tp{} pp{} dp{}, {} micro-batches per replica\n{}", p.world(),
                                             layout.tp, layout.pp, layout.dp, layout.micro_batches, join_command(a))
                                     .c_str());
    return kLaunchDone;
  }
  Supervisor s(o, std::move(cfg), std::move(p));
  return s.run();
}

}  // namespace lt
