// The CPU backend: host memory (core/buffer.h), kernels/cpu, OpenMP threads.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <vector>

#include "core/buffer.h"
#include "core/env.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/timer.h"
#include "kernels/cpu/adamw.h"
#include "kernels/cpu/gemm.h"
#include "model/backend.h"
#include "model/cpu/cpu_stage.h"

namespace lt {

namespace {

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(const BackendOptions& o) : threads_(std::max(1, o.threads)) {}
  Device device() const override { return Device::cpu; }
  std::string describe() const override { return fmt::format("cpu ({} threads)", threads_); }

  std::unique_ptr<Stage> make_stage(const ParamLayout& layout, const StageGeometry& g,
                                    TensorParallelOps* tp) override {
    return std::make_unique<CpuStage>(layout, g, tp);
  }

  BackendArray alloc(size_t n) override {
    auto* b = new Buffer(n * sizeof(float));
    return BackendArray(b->as<float>(), n, [b](float*) { delete b; });
  }

  std::unique_ptr<FlatAccess> access(float* data, size_t n) override { return std::make_unique<HostFlat>(data, n); }

  double sum_squares(const float* g, std::span<const OptimSegment> segments) override {
    double total = 0;
    for (const auto& s : segments)
      if (s.count_in_norm) total += cpu::sum_squares(g + s.begin, int64_t(s.end - s.begin));
    return total;
  }

  void adamw(float* p, const float* g, float* m, float* v, std::span<const OptimSegment> segments,
             const AdamWHyper& h) override {
    for (const auto& s : segments) {
      cpu::AdamWParams a{h.lr, h.beta1, h.beta2, h.eps, s.decay ? h.weight_decay : 0.0, h.step, h.grad_scale};
      cpu::adamw_update(p + s.begin, g + s.begin, m + s.begin, v + s.begin, int64_t(s.end - s.begin), a);
    }
  }

  // oneDNN GEMM on 2 Zen 5 cores: fp32 ≈ 345 GFLOP/s, bf16 ≈ 700 GFLOP/s; this machine's own
  // ceiling can be set with LT_PEAK_GFLOPS_PER_CORE (bench/peak_bench measures it).
  double peak_flops(Precision precision) const override {
    double per_core = precision == Precision::bf16 ? 350e9 : 172.5e9;
    if (double g = env_number("LT_PEAK_GFLOPS_PER_CORE", 0); g > 0) per_core = g * 1e9;
    return per_core * threads_;
  }

  ComputeCheck check_compute(int gemm_size, bool inject_fault) override {
    ComputeCheck r;
    r.device = describe();
    // Correctness on an odd shape (edge handling), against the plain triple loop.
    const int64_t M = 67, N = 45, K = 129;
    Rng rng(7);
    std::vector<float> A(M * K), B(K * N), C(M * N), R(M * N);
    for (auto& x : A) x = rng.normal();
    for (auto& x : B) x = rng.normal();
    cpu::matmul(A.data(), B.data(), C.data(), M, N, K, false, false, false);
    if (inject_fault) C[5] += 1.0f;
    cpu::matmul_ref(A.data(), B.data(), R.data(), M, N, K, false, false, false);
    double err = 0, scale = 0;
    for (int64_t i = 0; i < M * N; ++i) {
      err = std::max(err, double(std::fabs(C[i] - R[i])));
      scale = std::max(scale, double(std::fabs(R[i])));
    }
    r.max_rel_err = err / std::max(scale, 1e-30);
    // Speed: an n x n x n GEMM, repeated for at least 0.2 s after one warm-up; its exact result
    // (0.5 · 0.25 · n) is checked too.
    const int64_t n = std::max(16, gemm_size);
    std::vector<float> X(n * n, 0.5f), Y(n * n, 0.25f), Z(n * n);
    cpu::matmul(X.data(), Y.data(), Z.data(), n, n, n, false, false, false);
    Timer t;
    int reps = 0;
    do {
      cpu::matmul(X.data(), Y.data(), Z.data(), n, n, n, false, false, false);
      ++reps;
    } while (t.seconds() < 0.2 || reps < 2);
    r.gflops = 2.0 * double(n) * n * n * reps / t.seconds() / 1e9;
    if (Z[0] != 0.125f * float(n)) r.max_rel_err = std::max(r.max_rel_err, std::fabs(Z[0] / (0.125 * n) - 1.0));
    return r;
  }

 private:
  int threads_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(const BackendOptions& o) { return std::make_unique<CpuBackend>(o); }

}  // namespace lt
