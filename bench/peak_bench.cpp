// The compute ceilings of this machine, measured: the peak rate of the FMA units (fp32
// vfmadd, bf16 vdpbf16ps; register-only loops with enough independent chains to hide the
// latency) per core and on all threads, and what oneDNN's GEMM reaches on a large square
// problem (fp32 and bf16 inputs, fp32 accumulation). MFU figures in docs/PERFORMANCE.md
// are quoted against these.
//
//   OMP_NUM_THREADS=2 OMP_PROC_BIND=close OMP_PLACES=cores build/bench/peak_bench [--size 2048]
#include <immintrin.h>
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/bf16.h"
#include "kernels/cpu/gemm.h"

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

constexpr int kChains = 12;  // FMA latency 4 cycles x 2 pipes, with margin

__attribute__((target("avx512f"))) double fma_loop(long iters) {
  __m512 acc[kChains];
  const __m512 b = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(float(i));
  for (long k = 0; k < iters; ++k)
#pragma GCC unroll 12
    for (int i = 0; i < kChains; ++i) acc[i] = _mm512_fmadd_ps(acc[i], b, c);
  alignas(64) float out[16];
  __m512 s = acc[0];
  for (int i = 1; i < kChains; ++i) s = _mm512_add_ps(s, acc[i]);
  _mm512_store_ps(out, s);
  return out[0];
}

__attribute__((target("avx512f,avx512bf16"))) double dpbf16_loop(long iters) {
  __m512 acc[kChains];
  const __m512bh x = (__m512bh)_mm512_set1_epi16(0x3f80), y = (__m512bh)_mm512_set1_epi16(0x3c00);
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_setzero_ps();
  for (long k = 0; k < iters; ++k)
#pragma GCC unroll 12
    for (int i = 0; i < kChains; ++i) acc[i] = _mm512_dpbf16_ps(acc[i], x, y);
  alignas(64) float out[16];
  __m512 s = acc[0];
  for (int i = 1; i < kChains; ++i) s = _mm512_add_ps(s, acc[i]);
  _mm512_store_ps(out, s);
  return out[0];
}

// GFLOP/s of `loop` run by `threads` threads at once (flop_per_iter per thread and iteration).
template <typename F>
double unit_rate(F loop, double flop_per_iter, int threads) {
  const long iters = 50'000'000;
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    double sink = 0, t0 = now();
#pragma omp parallel num_threads(threads) reduction(+ : sink)
    sink += loop(iters);
    double t = now() - t0;
    if (sink == 12345.678) std::printf(" ");
    best = std::max(best, flop_per_iter * double(iters) * threads / t / 1e9);
  }
  return best;
}

double gemm_rate(int64_t n, bool bf) {
  std::vector<float> A(size_t(n * n), 0.5f), B(size_t(n * n), 0.25f), C(size_t(n * n));
  std::vector<lt::bf16> Ah(A.size(), lt::float_to_bf16(0.5f)), Bh(B.size(), lt::float_to_bf16(0.25f));
  auto run = [&] {
    if (bf)
      lt::cpu::matmul_bf16(Ah.data(), Bh.data(), C.data(), n, n, n, false, true, false);
    else
      lt::cpu::matmul(A.data(), B.data(), C.data(), n, n, n, false, true, false);
  };
  run();
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    double t0 = now();
    run();
    best = std::max(best, 2.0 * double(n) * n * n / (now() - t0) / 1e9);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t size = 2048;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--size") && i + 1 < argc) {
      size = std::atoll(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: peak_bench [--size N]\n");
      return 2;
    }
  }
  const int threads = omp_get_max_threads();
  __builtin_cpu_init();
  const bool has_bf16 = __builtin_cpu_supports("avx512bf16");
  if (!__builtin_cpu_supports("avx512f")) {
    std::fprintf(stderr, "peak_bench: this CPU has no AVX-512\n");
    return 1;
  }
  const double f1 = unit_rate(fma_loop, kChains * 32.0, 1), fn = unit_rate(fma_loop, kChains * 32.0, threads);
  const double b1 = has_bf16 ? unit_rate(dpbf16_loop, kChains * 64.0, 1) : 0;
  const double bn = has_bf16 ? unit_rate(dpbf16_loop, kChains * 64.0, threads) : 0;
  const double g32 = gemm_rate(size, false), g16 = has_bf16 ? gemm_rate(size, true) : 0;
  std::printf(
      "{\"threads\": %d, \"fma_fp32_gflops_1t\": %.1f, \"fma_fp32_gflops\": %.1f, \"dpbf16_gflops_1t\": %.1f, "
      "\"dpbf16_gflops\": %.1f, \"gemm_size\": %lld, \"onednn_fp32_gflops\": %.1f, \"onednn_bf16_gflops\": %.1f}\n",
      threads, f1, fn, b1, bn, static_cast<long long>(size), g32, g16);
  return 0;
}
