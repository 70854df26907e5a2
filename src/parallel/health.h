// Health check of every rank before a job trusts it (the seed's cluster check, step 4):
// compute (the backend's GEMM against a plain reference, and its speed: oneDNN on CPU, cuBLASLt
// in bf16 on each rank's GPU with --device cuda, plus an NCCL all-reduce over the GPUs), memory (allocate,
// touch, write and read back a pattern) and the collectives of the rank's groups (all-gather
// and all-reduce results checked element by element, all-reduce bus bandwidth). Collective:
// every rank calls run_health_check; every rank gets every rank's report.
//
// Fault injection for tests: LT_HEALTHCHECK_FAULT="compute:2,memory:0,comm:3" makes those
// ranks corrupt their GEMM result / memory pattern / collective contribution, so the check
// (not the injection) has to find and name them.
#pragma once
#include <string>
#include <vector>

#include "model/device.h"
#include "parallel/runtime.h"

namespace lt {

struct HealthOptions {
  int tp = 1, pp = 1;          // groups to check besides the world
  int gemm_size = 512;         // n of the timed n x n x n GEMM
  double memory_mb = 256;      // per rank
  double comm_mb = 8;          // all-reduce message for the bandwidth figure
  double min_gflops = 0;       // fail a rank whose GEMM is slower (0: no floor)
  double min_bus_gbps = 0;     // fail a group whose all-reduce is slower (0: no floor)
  Device device = Device::cpu; // the backend whose compute is checked
  int threads = 1;             // cpu: threads of the timed GEMM
};

struct RankHealth {
  int rank = 0;
  std::string host;
  bool compute_ok = true, memory_ok = true, comm_ok = true;
  double gemm_max_rel_err = 0, gflops = 0;
  double memory_gbps = 0;
  // All-reduce bus bandwidth, 2(p-1)/p x bytes / time (GB/s), per group; 0 when size 1.
  double busbw_world = 0, busbw_tp = 0, busbw_pp = 0, busbw_dp = 0;
  double busbw_gpu = 0;  // --device cuda: NCCL all-reduce over every rank's GPU
  std::string problems;  // "" when healthy
  bool ok() const { return compute_ok && memory_ok && comm_ok; }
};

struct HealthReport {
  std::vector<RankHealth> ranks;  // by world rank
  std::vector<int> bad_ranks;
  std::vector<std::string> bad_hosts;
  bool ok() const { return bad_ranks.empty(); }
};

HealthReport run_health_check(Runtime& rt, const HealthOptions& o);

}  // namespace lt
