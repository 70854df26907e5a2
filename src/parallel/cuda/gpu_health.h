// Health checks of a GPU rank for `llamatrain healthcheck --gpu` (the CPU checks are in
// parallel/health.h): compute (a bf16 GEMM through the training path's cuBLASLt wrapper against
// a double-precision host reference from the same bf16 inputs, and its speed), memory (free
// and total, a floor on free memory) and the collectives (an NCCL all-reduce of a known integer
// pattern, exact in fp32, and its bus bandwidth).
#pragma once
#include <cstddef>
#include <string>

namespace lt {

class NcclComm;

struct GpuHealthOptions {
  int gemm_size = 4096;       // n of the timed n × n × n bf16 GEMM
  double min_tflops = 0;      // fail below this GEMM rate (0: no floor)
  double min_free_mb = 0;     // fail with less free device memory (0: no floor)
  double comm_mb = 64;        // all-reduce message for the bandwidth figure
};

struct GpuHealth {
  int device = 0;
  std::string name;
  double total_mb = 0, free_mb = 0;
  bool compute_ok = true, memory_ok = true, comm_ok = true;
  double gemm_max_rel_err = 0, gemm_tflops = 0;
  double allreduce_busbw_gbps = 0;  // 2(p−1)/p · bytes / time; 0 with one rank
  std::string problems;             // "" when healthy
  bool ok() const { return compute_ok && memory_ok && comm_ok; }
};

// Compute and memory checks of `device` (made current).
GpuHealth check_gpu(int device, const GpuHealthOptions& o);
// The all-reduce check over `comm` (every rank of it calls this); adds to h.
void check_gpu_allreduce(NcclComm& comm, const GpuHealthOptions& o, GpuHealth& h);

// The bf16 GEMM check alone, on shape M×N×K, against the host reference (tests use it).
double gemm_max_relative_error(int M, int N, int K);

}  // namespace lt
