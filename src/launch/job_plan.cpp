#include "launch/job_plan.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include "core/error.h"
#include "model/config.h"

namespace lt {

JobLayout check_layout(const Placement& p, const RunConfig& cfg) {
  return derive_job_layout(job_shape(cfg, p.nodes, p.procs_per_node), resolve_model_config(cfg.model));
}

std::vector<std::string> hosts_of_ranks(const Placement& p, const std::vector<int>& bad_ranks) {
  std::vector<std::string> out;
  for (int r : bad_ranks) {
    int h = r / p.procs_per_node;
    if (h < 0 || h >= int(p.hosts.size())) continue;
    if (std::find(out.begin(), out.end(), p.hosts[h]) == out.end()) out.push_back(p.hosts[h]);
  }
  return out;
}

Placement exclude_hosts(const Placement& p, const std::vector<std::string>& bad, const RunConfig& cfg) {
  LT_CHECK(!p.hosts.empty(),
           "the health check failed on this machine and there is no hostfile with other hosts to use instead");
  Placement q = p;
  q.hosts.clear();
  for (const auto& h : p.hosts)
    if (std::find(bad.begin(), bad.end(), h) == bad.end()) q.hosts.push_back(h);
  q.spares.clear();
  std::vector<std::string> spares;
  for (const auto& h : p.spares)
    if (std::find(bad.begin(), bad.end(), h) == bad.end()) spares.push_back(h);
  // Spares first: the same layout on healthy hosts.
  while (int(q.hosts.size()) < p.nodes && !spares.empty()) {
    q.hosts.push_back(spares.front());
    spares.erase(spares.begin());
  }
  q.spares = spares;
  q.nodes = int(q.hosts.size());
  LT_CHECK(q.nodes > 0, "no healthy hosts left after leaving out {}", fmt::join(bad, ", "));
  try {
    check_layout(q, cfg);
  } catch (const Error& e) {
    fail("cannot continue without host(s) {}: {} nodes x {} procs = {} ranks do not fit the layout: {}",
         fmt::join(bad, ", "), q.nodes, q.procs_per_node, q.world(), e.what());
  }
  return q;
}

bool oversubscribes(const LaunchOptions& o, const Placement& p) {
  return !p.slurm && p.hosts.empty() && p.nodes == 1 && o.local_cores > 0 && p.procs_per_node > o.local_cores;
}

std::vector<std::string> srun_prefix(const LaunchOptions& o, const Placement& p) {
  std::vector<std::string> a = {o.srun,
                                "--nodes=" + std::to_string(p.nodes),
                                "--ntasks=" + std::to_string(p.world()),
                                "--ntasks-per-node=" + std::to_string(p.procs_per_node),
                                "--distribution=block",
                                "--kill-on-bad-exit=1",
                                "--mpi=pmix"};
  if (!p.hosts.empty()) a.push_back("--nodelist=" + fmt::format("{}", fmt::join(p.hosts, ",")));
  std::istringstream extra(o.srun_args);
  for (std::string w; extra >> w;) a.push_back(w);
  return a;
}

std::vector<std::string> launch_prefix(const LaunchOptions& o, const Placement& p, const std::string& hostfile_path) {
  return p.slurm ? srun_prefix(o, p) : mpirun_prefix(o, p, hostfile_path);
}

int count_local_cores() {
  std::ifstream f("/proc/cpuinfo");
  std::set<std::pair<int, int>> cores;
  int phys = 0;
  for (std::string line; std::getline(f, line);) {
    auto value = [&] { return std::atoi(line.c_str() + line.find(':') + 1); };
    if (line.rfind("physical id", 0) == 0) phys = value();
    if (line.rfind("core id", 0) == 0) cores.insert({phys, value()});
  }
  if (!cores.empty()) return int(cores.size());
  return std::max(1, int(sysconf(_SC_NPROCESSORS_ONLN)));
}

std::vector<std::string> mpirun_prefix(const LaunchOptions& o, const Placement& p, const std::string& hostfile_path) {
  std::vector<std::string> a = {o.mpirun};
  if (geteuid() == 0) a.push_back("--allow-run-as-root");
  a.insert(a.end(), {"-np", std::to_string(p.world())});
  const bool placed = o.mpirun_args.find("--oversubscribe") != std::string::npos ||
                      o.mpirun_args.find("--bind-to") != std::string::npos ||
                      o.mpirun_args.find("--map-by") != std::string::npos;
  if (oversubscribes(o, p) && !placed) a.insert(a.end(), {"--oversubscribe", "--bind-to", "none"});
  if (!p.hosts.empty()) a.insert(a.end(), {"--hostfile", hostfile_path});
  if (!p.hosts.empty() || p.nodes > 1) a.insert(a.end(), {"--map-by", fmt::format("ppr:{}:node", p.procs_per_node)});
  // Variables the ranks need on every host (names only: values, e.g. credentials, never
  // appear on a command line or in a log).
  static const char* kForward[] = {"LT_LAUNCH_ID", "OMP_NUM_THREADS", "OMP_WAIT_POLICY", "LT_COMM_TIMEOUT", "LT_COMM_SEGMENT_BYTES",
                                   "LT_HEALTHCHECK_FAULT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                   "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE",
                                   "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_ENDPOINT_URL",
                                   "AWS_ENDPOINT_URL_S3", "AWS_CA_BUNDLE"};
  for (const char* v : kForward)
    if (std::getenv(v)) a.insert(a.end(), {"-x", v});
  std::istringstream extra(o.mpirun_args);
  for (std::string w; extra >> w;) a.push_back(w);
  return a;
}

}  // namespace lt
