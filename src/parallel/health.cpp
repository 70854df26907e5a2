#include "parallel/health.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>

#include "core/buffer.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/timer.h"
#include "model/backend.h"
#ifdef LLAMATRAIN_HAVE_CUDA
#include "parallel/cuda/gpu_health.h"
#include "parallel/nccl_comm.h"
#endif
#include "parallel/topology.h"

namespace lt {

namespace {

// LT_HEALTHCHECK_FAULT="compute:2,comm:3": does `kind` apply to `rank`?
bool fault_injected(const char* kind, int rank) {
  const char* v = std::getenv("LT_HEALTHCHECK_FAULT");
  if (!v) return false;
  std::string s = v, want = std::string(kind) + ":" + std::to_string(rank);
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t end = s.find(',', pos);
    if (s.substr(pos, end == std::string::npos ? std::string::npos : end - pos) == want) return true;
    if (end == std::string::npos) break;
    pos = end + 1;
  }
  return false;
}

void add_problem(RankHealth& h, const std::string& p) { h.problems += (h.problems.empty() ? "" : "; ") + p; }

void check_compute(RankHealth& h, const HealthOptions& o, int rank, int local_rank) {
  auto backend = make_backend(o.device, {o.threads, local_rank});
  const ComputeCheck c = backend->check_compute(o.gemm_size, fault_injected("compute", rank));
  h.gemm_max_rel_err = c.max_rel_err;
  h.gflops = c.gflops;
  if (!(h.gemm_max_rel_err <= 1e-4)) {
    h.compute_ok = false;
    add_problem(h, fmt::format("compute: GEMM differs from the reference (max relative error {:.3g} > 1e-4)",
                               h.gemm_max_rel_err));
  }
  if (o.min_gflops > 0 && h.gflops < o.min_gflops) {
    h.compute_ok = false;
    add_problem(h, fmt::format("compute: {:.1f} GFLOP/s is below the floor of {:.1f}", h.gflops, o.min_gflops));
  }
}

void check_memory(RankHealth& h, const HealthOptions& o, int rank) {
  const size_t words = size_t(std::max(1.0, o.memory_mb) * 1024 * 1024 / 8);
  try {
    Buffer buf(words * 8);
    auto* p = buf.as<uint64_t>();
    Timer t;
    for (size_t i = 0; i < words; ++i) p[i] = (i + 1) * 0x9e3779b97f4a7c15ull;
    h.memory_gbps = double(words * 8) / std::max(t.seconds(), 1e-9) / 1e9;
    if (fault_injected("memory", rank)) p[words / 2] ^= 1;
    size_t bad = 0;
    for (size_t i = 0; i < words; ++i) bad += p[i] != (i + 1) * 0x9e3779b97f4a7c15ull;
    if (bad) {
      h.memory_ok = false;
      add_problem(h, fmt::format("memory: {} of {} words read back wrong", bad, words));
    }
  } catch (const std::exception& e) {
    h.memory_ok = false;
    add_problem(h, fmt::format("memory: cannot allocate {:.0f} MiB: {}", o.memory_mb, e.what()));
  }
}

float pattern(int world_rank, size_t i) { return float((world_rank * 131 + int(i % 977) * 7) % 1024); }

struct GroupResult {
  std::vector<int64_t> blamed;  // world ranks whose gathered block arrived corrupt
  bool sum_wrong = false;
  double busbw = 0;
};

// Checks one group: all-gather (names a corrupt sender), all-reduce results, bandwidth.
GroupResult check_group(Comm& g, int world_rank, const HealthOptions& o, bool corrupt) {
  GroupResult r;
  const int p = g.size();
  const size_t n = 4099;
  std::vector<int64_t> members(p);
  int64_t me = world_rank;
  g.all_gather_bytes(&me, members.data(), sizeof(me));
  std::vector<float> mine(n), all(n * p);
  for (size_t i = 0; i < n; ++i) mine[i] = pattern(world_rank, i);
  if (corrupt) mine[1] += 0.5f;
  g.all_gather(mine.data(), all.data(), n);
  for (int q = 0; q < p; ++q)
    for (size_t i = 0; i < n; ++i)
      if (all[q * n + i] != pattern(int(members[q]), i)) {
        r.blamed.push_back(members[q]);
        break;
      }
  g.all_reduce_sum(mine.data(), n);
  for (size_t i = 0; i < n && !r.sum_wrong; ++i) {
    float want = 0;
    for (int q = 0; q < p; ++q) want += pattern(int(members[q]), i);
    r.sum_wrong = mine[i] != want;
  }
  if (p == 1) return r;
  const size_t m = std::max<size_t>(1, size_t(o.comm_mb * 1024 * 1024 / 4));
  std::vector<float> big(m, 1.0f);
  g.all_reduce_sum(big.data(), m);  // warm-up (connections, buffers)
  if (big[m - 1] != float(p)) r.sum_wrong = true;
  g.barrier();
  const int reps = 3;
  Timer t;
  for (int k = 0; k < reps; ++k) g.all_reduce_sum(big.data(), m);
  double s = t.seconds() / reps;
  r.busbw = 2.0 * (p - 1) / p * double(m) * 4 / s / 1e9;
  return r;
}

// Fixed-size record for gathering reports.
// GPUs: an NCCL all-reduce of a known pattern over every rank's GPU (exact in fp32), and its
// bus bandwidth; the memory of each GPU is in the compute check's device line.
void check_gpu_comm(RankHealth& h, const HealthOptions& o, Comm& world, int local_rank) {
#ifdef LLAMATRAIN_HAVE_CUDA
  auto backend = make_backend(Device::cuda, {1, local_rank});
  auto nccl = NcclComm::create(world, backend->device_index(), static_cast<cudaStream_t>(backend->native_stream()));
  GpuHealthOptions go;
  go.comm_mb = o.comm_mb;
  GpuHealth g;
  check_gpu_allreduce(*nccl, go, g);
  h.busbw_gpu = g.allreduce_busbw_gbps;
  if (!g.comm_ok) {
    h.comm_ok = false;
    add_problem(h, g.problems);
  }
#else
  (void)h, (void)o, (void)world, (void)local_rank;
  fail("healthcheck --device cuda: this build has no CUDA backend (build with -DLLAMATRAIN_CUDA=ON)");
#endif
}

struct Wire {
  int32_t rank, compute_ok, memory_ok, comm_ok;
  double err, gflops, mem_gbps, bw[4], bw_gpu;
  char host[64];
  char problems[448];
};

}  // namespace

HealthReport run_health_check(Runtime& rt, const HealthOptions& o) {
  Comm& world = rt.world();
  const int rank = world.rank();
  RankHealth h;
  h.rank = rank;
  h.host = rt.host();
  check_compute(h, o, rank, rt.launch().local_rank);
  check_memory(h, o, rank);
  if (o.device == Device::cuda) check_gpu_comm(h, o, world, rt.launch().local_rank);

  ProcessGroups groups(world, o.tp, o.pp);
  const bool corrupt = fault_injected("comm", rank);
  Comm* comms[4] = {&world, &groups.tp(), &groups.pp(), &groups.dp()};
  const char* names[4] = {"world", "tp", "pp", "dp"};
  double* bws[4] = {&h.busbw_world, &h.busbw_tp, &h.busbw_pp, &h.busbw_dp};
  std::vector<int64_t> blame(world.size(), 0);
  std::vector<std::string> wrong_sums;
  for (int k = 0; k < 4; ++k) {
    if (k > 0 && comms[k]->size() == world.size() && o.tp * o.pp == 1) continue;  // dp == world: done
    GroupResult r = check_group(*comms[k], rank, o, corrupt);
    for (int64_t b : r.blamed) blame[b]++;
    if (r.sum_wrong) wrong_sums.push_back(names[k]);
    *bws[k] = r.busbw;
    if (o.min_bus_gbps > 0 && comms[k]->size() > 1 && r.busbw < o.min_bus_gbps) {
      h.comm_ok = false;
      add_problem(h, fmt::format("comm: {} all-reduce {:.2f} GB/s is below the floor of {:.2f}", names[k], r.busbw,
                                 o.min_bus_gbps));
    }
  }
  if (o.tp * o.pp == 1) h.busbw_dp = h.busbw_world;
  world.all_reduce_sum(blame.data(), blame.size());
  if (blame[rank] > 0) {
    h.comm_ok = false;
    add_problem(h, fmt::format("comm: {} gathered copies of this rank's data arrived corrupt", blame[rank]));
  }
  int64_t any_blamed = 0;
  for (int64_t b : blame) any_blamed += b > 0;
  // A wrong sum with no identified sender: this rank's own collectives are broken.
  if (!wrong_sums.empty() && any_blamed == 0) {
    h.comm_ok = false;
    std::string g;
    for (auto& s : wrong_sums) g += (g.empty() ? "" : ", ") + s;
    add_problem(h, "comm: all-reduce returned wrong sums over " + g);
  }

  Wire w{};
  w.rank = rank;
  w.compute_ok = h.compute_ok;
  w.memory_ok = h.memory_ok;
  w.comm_ok = h.comm_ok;
  w.err = h.gemm_max_rel_err;
  w.gflops = h.gflops;
  w.mem_gbps = h.memory_gbps;
  w.bw[0] = h.busbw_world;
  w.bw[1] = h.busbw_tp;
  w.bw[2] = h.busbw_pp;
  w.bw[3] = h.busbw_dp;
  w.bw_gpu = h.busbw_gpu;
  std::snprintf(w.host, sizeof(w.host), "%s", h.host.c_str());
  std::snprintf(w.problems, sizeof(w.problems), "%s", h.problems.c_str());
  std::vector<Wire> all(world.size());
  world.all_gather_bytes(&w, all.data(), sizeof(Wire));

  HealthReport rep;
  std::set<std::string> bad_hosts;
  for (const Wire& x : all) {
    RankHealth r;
    r.rank = x.rank;
    r.host = x.host;
    r.compute_ok = x.compute_ok;
    r.memory_ok = x.memory_ok;
    r.comm_ok = x.comm_ok;
    r.gemm_max_rel_err = x.err;
    r.gflops = x.gflops;
    r.memory_gbps = x.mem_gbps;
    r.busbw_world = x.bw[0];
    r.busbw_tp = x.bw[1];
    r.busbw_pp = x.bw[2];
    r.busbw_dp = x.bw[3];
    r.busbw_gpu = x.bw_gpu;
    r.problems = x.problems;
    if (!r.ok()) {
      rep.bad_ranks.push_back(r.rank);
      bad_hosts.insert(r.host);
    }
    rep.ranks.push_back(std::move(r));
  }
  rep.bad_hosts.assign(bad_hosts.begin(), bad_hosts.end());
  return rep;
}

}  // namespace lt
