// `llamatrain healthcheck [--tp T --pp P] [--memory-mb M] [--gemm-size N] [--comm-mb C]
// [--min-gflops G] [--min-bus-gbps B] [--json]`, under mpirun/srun (or alone): checks every
// rank's compute, memory and collectives (parallel/health.h), prints one row per rank and a
// summary per host from rank 0, and exits 1 naming the bad ranks and hosts.
#include <omp.h>

#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "model/device.h"
#include "cli/options.h"
#include "core/error.h"
#include "parallel/health.h"

namespace lt::cli {

namespace {
std::string join(const std::vector<int>& v) {
  std::string s;
  for (int x : v) s += (s.empty() ? "" : ", ") + std::to_string(x);
  return s;
}
std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}
std::string bw(double v) { return v > 0 ? fmt::format("{:.2f}", v) : "-"; }

nlohmann::json to_json(const HealthReport& r) {
  nlohmann::json ranks = nlohmann::json::array();
  for (const RankHealth& h : r.ranks)
    ranks.push_back({{"rank", h.rank}, {"host", h.host}, {"ok", h.ok()}, {"compute_ok", h.compute_ok},
                     {"memory_ok", h.memory_ok}, {"comm_ok", h.comm_ok}, {"gemm_max_rel_err", h.gemm_max_rel_err},
                     {"gemm_gflops", h.gflops}, {"memory_write_gbps", h.memory_gbps},
                     {"allreduce_busbw_gbps", {{"world", h.busbw_world}, {"tp", h.busbw_tp}, {"pp", h.busbw_pp},
                                               {"dp", h.busbw_dp}, {"gpu_nccl", h.busbw_gpu}}},
                     {"problems", h.problems}});
  return {{"ok", r.ok()}, {"ranks", ranks}, {"bad_ranks", r.bad_ranks}, {"bad_hosts", r.bad_hosts}};
}

void print_table(const HealthReport& r) {
  std::printf("%5s  %-20s %-8s %12s %10s  %-29s  %s\n", "rank", "host", "status", "GEMM GFLOP/s", "mem GB/s",
              "all-reduce GB/s world/tp/pp/dp", "problems");
  for (const RankHealth& h : r.ranks)
    std::printf("%5d  %-20s %-8s %12.1f %10.2f  %-29s  %s\n", h.rank, h.host.c_str(), h.ok() ? "ok" : "BAD", h.gflops,
                h.memory_gbps,
                fmt::format("{}/{}/{}/{}", bw(h.busbw_world), bw(h.busbw_tp), bw(h.busbw_pp), bw(h.busbw_dp)).c_str(),
                h.problems.c_str());
  std::map<std::string, std::vector<const RankHealth*>> by_host;
  for (const RankHealth& h : r.ranks) by_host[h.host].push_back(&h);
  std::printf("\n%-20s %6s %6s %16s\n", "host", "ranks", "bad", "min GEMM GFLOP/s");
  for (const auto& [host, hs] : by_host) {
    int bad = 0;
    double min_gf = 1e300;
    for (const RankHealth* h : hs) {
      bad += !h->ok();
      min_gf = std::min(min_gf, h->gflops);
    }
    std::printf("%-20s %6zu %6d %16.1f\n", host.c_str(), hs.size(), bad, min_gf);
  }
}
}  // namespace

void register_healthcheck(CLI::App& app) {
  auto* cmd = app.add_subcommand("healthcheck", "Check every rank's compute, memory and collectives (run under mpirun)");
  struct Opts {
    HealthOptions h;
    double comm_timeout_s = 120;
    std::string device = "cpu";
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  in_range(cmd->add_option("--tp", o->h.tp, "Tensor-parallel degree whose groups to check")->capture_default_str(), 1,
           4096);
  in_range(cmd->add_option("--pp", o->h.pp, "Pipeline-parallel degree whose groups to check")->capture_default_str(), 1,
           4096);
  in_range(cmd->add_option("--gemm-size", o->h.gemm_size, "n of the timed n x n x n GEMM")->capture_default_str(), 16,
           16384);
  in_range(cmd->add_option("--memory-mb", o->h.memory_mb, "MiB each rank allocates and checks")->capture_default_str(),
           0.0, 1 << 24, "(]");
  in_range(cmd->add_option("--comm-mb", o->h.comm_mb, "MiB per all-reduce for the bandwidth figure")->capture_default_str(),
           0.0, 1 << 16, "(]");
  in_range(cmd->add_option("--min-gflops", o->h.min_gflops, "Fail ranks whose GEMM is slower (0: no floor)"), 0.0, 1e9,
           "[]");
  in_range(cmd->add_option("--min-bus-gbps", o->h.min_bus_gbps, "Fail ranks whose all-reduce is slower (0: no floor)"),
           0.0, 1e6, "[]");
  in_range(cmd->add_option("--comm-timeout", o->comm_timeout_s,
                           "Seconds a rank may wait in one collective before it exits (a stopped peer must not hang "
                           "the check; 0: wait forever)")
               ->capture_default_str(),
           0.0, 7 * 86400.0, "[]");
  cmd->add_option("--device", o->device, "Backend whose compute to check: " + enum_choices<Device>())
      ->capture_default_str();
  cmd->add_flag("--json", o->json, "Print JSON");
  cmd->callback([o] {
    auto device = parse_enum<Device>(o->device);
    LT_CHECK(device, "healthcheck --device: expected {}, got '{}'", enum_choices<Device>(), o->device);
    o->h.device = *device;
    o->h.threads = omp_get_max_threads();
    HealthReport rep;
    int rank = 0;
    {
      RuntimeOptions ro;
      ro.comm_timeout_s = o->comm_timeout_s;
      Runtime rt(ro);
      rank = rt.world().rank();
      rep = run_health_check(rt, o->h);
      rt.finalize();  // every rank got the report; end MPI cleanly before a non-zero exit
    }
    if (rank == 0) {
      if (o->json)
        std::printf("%s\n", to_json(rep).dump(2).c_str());
      else
        print_table(rep);
      std::fflush(stdout);
    }
    if (rep.ok()) {
      if (rank == 0 && !o->json) std::printf("\nhealthcheck: all %zu ranks healthy\n", rep.ranks.size());
      return;
    }
    std::string detail;
    for (int b : rep.bad_ranks)
      detail += fmt::format("\n  rank {} on {}: {}", b, rep.ranks[b].host, rep.ranks[b].problems);
    // Rank 0 alone reports the failure and exits 1 (mpirun then exits 1). Other ranks exit 0:
    // one exiting non-zero first would make mpirun kill rank 0 before it printed the verdict.
    if (rank != 0) return;
    fail("healthcheck failed: bad ranks {} on hosts {}{}", join(rep.bad_ranks), join(rep.bad_hosts), detail);
  });
}

}  // namespace lt::cli
