// What one attempt of a launched job looks like: which hosts, how many ranks, the tp/pp/dp
// layout and the mpirun command lines for the health check and the training ranks. Pure
// functions of the options and the hosts left, so leaving out a bad host is testable alone.
#pragma once
#include <string>
#include <vector>

#include "launch/hostfile.h"
#include "parallel/job_layout.h"
#include "train/run_config.h"

namespace lt {

struct LaunchOptions {
  std::string config;                  // --config
  std::vector<std::string> overrides;  // key=value for the trainer
  int procs_per_node = 0;
  int nodes = 0;                       // 0: every hostfile host, or 1 without a hostfile
  std::string hostfile;
  bool probe_hosts = true;             // TCP port 22 check of remote hostfile hosts
  int max_retries = 3;
  double max_run_s = 0;                // 0: no wall-clock limit
  double hang_timeout_s = 1800;        // no new step for this long (after the first) = hung
  double startup_timeout_s = 3600;     // no first step for this long after start = hung
  double stop_grace_s = 300;           // SIGTERM -> checkpoint -> exit; then SIGKILL
  double kill_grace_s = 30;            // hung/failed job: SIGTERM, this long, then SIGKILL
  double backoff_s = 10, backoff_max_s = 600;  // before retry k: backoff * 2^(k-1), capped
  bool healthcheck = true;
  std::string healthcheck_args;        // extra `llamatrain healthcheck` options
  double healthcheck_timeout_s = 600;
  std::string mpirun = "mpirun";
  std::string mpirun_args;             // split on spaces, inserted before the program
  std::string launcher = "auto";       // auto (srun inside a Slurm allocation, else mpirun) | mpirun | srun
  std::string srun = "srun";
  std::string srun_args;               // split on spaces, inserted before the program
  double stop_before_s = 600;          // Slurm: stop (checkpoint and exit) this long before the allocation ends
  std::string self_exe;                // the llamatrain binary the ranks run (same path on every host)
  int local_cores = 0;                 // cores of this machine, as mpirun counts slots (0: unknown)
  bool json = false, dry_run = false;
};

// The hosts of one attempt: the first `nodes` usable hostfile (or Slurm allocation) hosts; the
// rest are spares.
struct Placement {
  std::vector<std::string> hosts;  // empty: no hostfile (this machine)
  bool slurm = false;              // hosts are Slurm nodes: ranks start with srun
  std::vector<std::string> spares;
  int nodes = 1, procs_per_node = 1;
  int world() const { return nodes * procs_per_node; }
};

// Checks the layout for `p` against the run config and model; throws lt::Error naming the
// numbers (tp x pp must divide the world, the global batch the replicas x micro-batch).
JobLayout check_layout(const Placement& p, const RunConfig& cfg);

// Hosts of `p` that hold one of `bad_ranks` (ranks fill hosts in order, procs_per_node each).
std::vector<std::string> hosts_of_ranks(const Placement& p, const std::vector<int>& bad_ranks);

// `p` without `bad` hosts: spares replace them first; without enough spares the job shrinks
// to fewer nodes (fewer data-parallel replicas, same global batch through more accumulation)
// when the layout still fits. Throws lt::Error saying why not otherwise.
Placement exclude_hosts(const Placement& p, const std::vector<std::string>& bad, const RunConfig& cfg);

// True when the job runs on this machine alone (no hostfile) with more ranks than o.local_cores:
// mpirun would refuse it ("not enough slots"), so the launcher oversubscribes instead.
bool oversubscribes(const LaunchOptions& o, const Placement& p);

// mpirun argv (without the program) for `p`; `hostfile_path` is where the caller wrote p.hosts.
// When oversubscribes(): --oversubscribe --bind-to none (each rank may use any core), unless
// --mpirun-args already says how to place ranks.
std::vector<std::string> mpirun_prefix(const LaunchOptions& o, const Placement& p, const std::string& hostfile_path);

// srun argv (without the program) for `p`: one task per rank on exactly p.hosts (--nodelist, so
// a node left out is not used again), block distribution (ranks fill nodes in order, as
// hosts_of_ranks assumes), PMIx for MPI, the whole step killed when a task fails.
std::vector<std::string> srun_prefix(const LaunchOptions& o, const Placement& p);
// srun_prefix for a Slurm placement, else mpirun_prefix.
std::vector<std::string> launch_prefix(const LaunchOptions& o, const Placement& p, const std::string& hostfile_path);

// Cores of this machine as OpenMPI counts slots: distinct (physical id, core id) pairs of
// /proc/cpuinfo, else the online CPUs.
int count_local_cores();

}  // namespace lt
