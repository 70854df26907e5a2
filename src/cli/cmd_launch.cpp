// `llamatrain launch [--config run.yaml] [key=value ...] --procs-per-node N [--nodes M]
// [--hostfile F] [--max-retries N] [--max-run 2d] [--hang-timeout S] [--no-healthcheck]
// [--mpirun-args "..."] [--launcher auto|mpirun|srun] [--stop-before 10m] [--json]`: health
// check, start the ranks under mpirun (or srun inside a Slurm allocation), watch them, retry
// and resume, stop cleanly at the wall-clock limit (launch/supervisor.h).
#include <unistd.h>

#include <climits>
#include <cstdlib>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "launch/duration.h"
#include "launch/supervisor.h"

namespace lt::cli {

namespace {
std::string self_exe() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  LT_CHECK(n > 0, "cannot find the llamatrain binary (/proc/self/exe)");
  return std::string(buf, size_t(n));
}
}  // namespace

void register_launch(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "launch", "Run a training job under mpirun with health checks, automatic retry/resume and a wall-clock limit");
  struct Opts {
    LaunchOptions l;
    std::string max_run, hang, startup, stop_grace, kill_grace, backoff, hc_timeout, stop_before;
    bool no_healthcheck = false, no_host_probe = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("--config", o->l.config, "YAML run config (as for `llamatrain train`)");
  cmd->add_option("overrides", o->l.overrides, "dotted key=value settings for the trainer, e.g. train.steps=100");
  in_range(cmd->add_option("--procs-per-node", o->l.procs_per_node,
                           "ranks per host (required, except inside a Slurm allocation: its tasks per node)"),
           1, 1 << 16);
  in_range(cmd->add_option("--nodes", o->l.nodes, "hosts to use (default: every hostfile host, or 1); further hostfile "
                                                  "hosts are spares that replace hosts failing the health check"),
           1, 1 << 20);
  cmd->add_option("--hostfile", o->l.hostfile, "OpenMPI hostfile: 'hostname [slots=N]' per line");
  cmd->add_flag("--no-host-probe", o->no_host_probe, "do not check that remote hostfile hosts answer on ssh port 22");
  in_range(cmd->add_option("--max-retries", o->l.max_retries, "restarts after a failure before giving up")
               ->capture_default_str(),
           0, 1000);
  constexpr double kDay = 86400;
  duration_range(cmd->add_option("--max-run", o->max_run,
                                 "wall-clock limit of the whole launch: 2d, 36h, 90m, 3600s (default: none)"),
                 1, 365 * kDay);
  duration_range(cmd->add_option("--hang-timeout", o->hang, "no new step for this long after the first = hung (default "
                                                            "1800s)"),
                 1, 30 * kDay);
  duration_range(cmd->add_option("--startup-timeout", o->startup,
                                 "no first step for this long after a start = hung (default 3600s)"),
                 1, 30 * kDay);
  duration_range(cmd->add_option("--stop-grace", o->stop_grace,
                                 "time for the ranks to save and exit after SIGTERM (default 300s); with "
                                 "checkpoint.remote, half of it is the most the ranks wait for uploads"),
                 1, kDay);
  duration_range(cmd->add_option("--kill-grace", o->kill_grace,
                                 "failed/hung job: SIGTERM to mpirun, then SIGKILL after (default 30s)"),
                 1, 3600);
  duration_range(cmd->add_option("--backoff", o->backoff,
                                 "wait before the first retry, doubled each retry up to 600s (default 10s; 0: none)"),
                 0, kDay);
  cmd->add_flag("--no-healthcheck", o->no_healthcheck, "skip the health check before each attempt");
  cmd->add_option("--healthcheck-args", o->l.healthcheck_args, "extra options for `llamatrain healthcheck`, e.g. "
                                                               "\"--memory-mb 1024 --min-gflops 50\"");
  duration_range(cmd->add_option("--healthcheck-timeout", o->hc_timeout,
                                 "a health check without a verdict by then fails (default 600s)"),
                 1, kDay);
  cmd->add_option("--mpirun", o->l.mpirun, "mpirun binary")->capture_default_str();
  cmd->add_option("--mpirun-args", o->l.mpirun_args, "extra mpirun options, e.g. \"--oversubscribe --bind-to none\"");
  cmd->add_option("--launcher", o->l.launcher,
                  "how ranks start: auto (srun inside a Slurm allocation, else mpirun), mpirun, srun")
      ->check(CLI::IsMember({"auto", "mpirun", "srun"}))
      ->capture_default_str();
  cmd->add_option("--srun", o->l.srun, "srun binary")->capture_default_str();
  cmd->add_option("--srun-args", o->l.srun_args, "extra srun options, e.g. \"--overcommit\"");
  duration_range(cmd->add_option("--stop-before", o->stop_before,
                                 "Slurm: stop the ranks (checkpoint, exit) this long before the allocation ends "
                                 "(default 10m)"),
                 0, kDay);
  cmd->add_flag("--dry-run", o->l.dry_run, "validate and print the layout and the mpirun command, start nothing");
  cmd->add_flag("--json", o->l.json, "print a JSON summary on stdout at the end");
  cmd->footer(
      "Exit status: 0 training finished; 1 bad input (config, layout, hostfile, options); 2 the job failed and could "
      "not be recovered (retries exhausted, no healthy layout left); 85 stopped by SIGTERM/SIGINT after the ranks saved "
      "a checkpoint; 86 the --max-run wall-clock limit was reached and the ranks saved a checkpoint (run the same "
      "command again to continue); 87 training finished but some checkpoints have no complete copy at "
      "checkpoint.remote (the summary names them; the same command again uploads them). Decisions are logged to <run.dir>/launch.log (JSON lines).");
  cmd->callback([o] {
    check_config_file(o->l.config);
    LaunchOptions l = o->l;
    auto dur = [](const std::string& v, const char* what, double def) { return v.empty() ? def : parse_duration(v, what); };
    l.max_run_s = dur(o->max_run, "--max-run", 0);
    l.hang_timeout_s = dur(o->hang, "--hang-timeout", l.hang_timeout_s);
    l.startup_timeout_s = dur(o->startup, "--startup-timeout", l.startup_timeout_s);
    l.stop_grace_s = dur(o->stop_grace, "--stop-grace", l.stop_grace_s);
    l.kill_grace_s = dur(o->kill_grace, "--kill-grace", l.kill_grace_s);
    l.healthcheck_timeout_s = dur(o->hc_timeout, "--healthcheck-timeout", l.healthcheck_timeout_s);
    const bool zero_stop = o->stop_before == "0" || o->stop_before == "0s";  // use the whole allocation
    l.stop_before_s = zero_stop ? 0 : dur(o->stop_before, "--stop-before", l.stop_before_s);
    if (o->backoff == "0" || o->backoff == "0s")
      l.backoff_s = 0;
    else
      l.backoff_s = dur(o->backoff, "--backoff", l.backoff_s);
    l.healthcheck = !o->no_healthcheck;
    l.probe_hosts = !o->no_host_probe;
    l.self_exe = self_exe();
    l.local_cores = count_local_cores();
    int rc = run_launch(l);
    if (rc != 0) std::exit(rc);
  });
}

}  // namespace lt::cli
