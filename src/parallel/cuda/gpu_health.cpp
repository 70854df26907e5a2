#include "parallel/cuda/gpu_health.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/bf16.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/timer.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/gemm.h"
#include "parallel/nccl_comm.h"

namespace lt {

namespace {
void add_problem(GpuHealth& h, const std::string& p) { h.problems += (h.problems.empty() ? "" : "; ") + p; }
}  // namespace

double gemm_max_relative_error(int M, int N, int K) {
  Rng rng(11);
  std::vector<bf16> A(size_t(M) * K), B(size_t(K) * N);
  for (auto& x : A) x = float_to_bf16(rng.normal());
  for (auto& x : B) x = float_to_bf16(rng.normal());
  cuda::DeviceBuffer dA = cuda::upload(A), dB = cuda::upload(B), dC(size_t(M) * N * sizeof(float));
  cuda::Gemm gemm(size_t(4) << 20);
  gemm.run(dA.as<bf16>(), dB.as<bf16>(), dC.as<float>(), {M, N, K}, nullptr);
  const std::vector<float> C = cuda::download(dC.as<float>(), size_t(M) * N);
  double err = 0, scale = 0;
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      double r = 0;
      for (int k = 0; k < K; ++k) r += double(bf16_to_float(A[size_t(i) * K + k])) * bf16_to_float(B[size_t(k) * N + j]);
      err = std::max(err, std::fabs(double(C[size_t(i) * N + j]) - r));
      scale = std::max(scale, std::fabs(r));
    }
  return err / std::max(scale, 1e-30);
}

GpuHealth check_gpu(int device, const GpuHealthOptions& o) {
  GpuHealth h;
  h.device = device;
  LT_CUDA(cudaSetDevice(device));
  const cuda::DeviceInfo info = cuda::device_info(device);
  h.name = info.name;
  h.total_mb = double(info.total_bytes) / 1048576.0;
  h.free_mb = double(info.free_bytes) / 1048576.0;
  if (o.min_free_mb > 0 && h.free_mb < o.min_free_mb) {
    h.memory_ok = false;
    add_problem(h, fmt::format("memory: {:.0f} MiB free, below the floor of {:.0f} MiB", h.free_mb, o.min_free_mb));
  }
  // Correctness on an odd shape (edge tiles), fp32 accumulation of exact bf16 products.
  h.gemm_max_rel_err = gemm_max_relative_error(67, 45, 129);
  if (!(h.gemm_max_rel_err <= 1e-3)) {
    h.compute_ok = false;
    add_problem(h, fmt::format("compute: bf16 GEMM differs from the reference (max relative error {:.3g} > 1e-3)",
                               h.gemm_max_rel_err));
  }
  // Speed: n × n × n, repeated for at least 0.2 s after a warm-up; all-ones inputs give C = n.
  const int n = std::max(256, o.gemm_size);
  std::vector<bf16> ones(size_t(n) * n, float_to_bf16(1.0f));
  cuda::DeviceBuffer X = cuda::upload(ones), Z(size_t(n) * n * sizeof(float));
  cuda::Gemm gemm;
  cuda::Stream stream;
  const cuda::GemmShape shape{n, n, n};
  gemm.run(X.as<bf16>(), X.as<bf16>(), Z.as<float>(), shape, stream.get());
  stream.synchronize();
  Timer t;
  int reps = 0;
  do {
    for (int i = 0; i < 10; ++i) gemm.run(X.as<bf16>(), X.as<bf16>(), Z.as<float>(), shape, stream.get());
    stream.synchronize();
    reps += 10;
  } while (t.seconds() < 0.2);
  h.gemm_tflops = 2.0 * double(n) * n * n * reps / t.seconds() / 1e12;
  float z0 = 0;
  cuda::copy_to_host_sync(&z0, Z.data(), sizeof z0);
  if (z0 != float(n)) {
    h.compute_ok = false;
    add_problem(h, fmt::format("compute: timed GEMM gave {} instead of {}", z0, n));
  }
  if (o.min_tflops > 0 && h.gemm_tflops < o.min_tflops) {
    h.compute_ok = false;
    add_problem(h, fmt::format("compute: {:.1f} TFLOP/s is below the floor of {:.1f}", h.gemm_tflops, o.min_tflops));
  }
  return h;
}

void check_gpu_allreduce(NcclComm& comm, const GpuHealthOptions& o, GpuHealth& h) {
  const int p = comm.size(), r = comm.rank();
  const size_t n = std::max<size_t>(1024, size_t(o.comm_mb * 1048576.0 / 4));
  // Element i of rank r is (i % 7 + 1)·(r + 1): every partial sum is a small integer, exact in fp32.
  std::vector<float> x(n);
  for (size_t i = 0; i < n; ++i) x[i] = float((i % 7 + 1) * size_t(r + 1));
  cuda::DeviceBuffer d = cuda::upload(x);
  comm.all_reduce_sum(d.as<float>(), n);
  LT_CUDA(cudaStreamSynchronize(comm.stream()));
  const std::vector<float> y = cuda::download(d.as<float>(), n);
  const float ranks = float(p) * float(p + 1) / 2.0f;
  size_t bad = 0;
  for (size_t i = 0; i < n; ++i) bad += y[i] != float(i % 7 + 1) * ranks;
  if (bad) {
    h.comm_ok = false;
    add_problem(h, fmt::format("comm: NCCL all-reduce gave {} wrong elements of {}", bad, n));
  }
  if (p > 1) {
    Timer t;
    int reps = 0;
    do {
      comm.all_reduce_sum(d.as<float>(), n);
      LT_CUDA(cudaStreamSynchronize(comm.stream()));
      ++reps;
    } while (t.seconds() < 0.2 || reps < 3);
    h.allreduce_busbw_gbps = 2.0 * double(p - 1) / p * double(n) * 4 * reps / t.seconds() / 1e9;
  }
}

}  // namespace lt
