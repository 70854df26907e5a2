#include "kernels/cpu/adamw.h"

#include <algorithm>
#include <cmath>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace lt::cpu {

void adamw_update(float* p, const float* g, float* m, float* v, int64_t n, const AdamWParams& a) {
  const float decay = float(1.0 - a.lr * a.weight_decay);
  const float b1 = float(a.beta1), b2 = float(a.beta2);
  const float one_m_b1 = float(1.0 - a.beta1), one_m_b2 = float(1.0 - a.beta2);
  const double bc1 = 1.0 - std::pow(a.beta1, double(a.step));
  const double bc2 = 1.0 - std::pow(a.beta2, double(a.step));
  const float step_size = float(a.lr / bc1);
  const float bc2_sqrt = float(std::sqrt(bc2));
  const float eps = float(a.eps);
  const float gs = a.grad_scale;
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    float gi = g[i] * gs;
    float pi = p[i] * decay;
    float mi = m[i] * b1 + gi * one_m_b1;
    float vi = v[i] * b2 + gi * gi * one_m_b2;
    m[i] = mi;
    v[i] = vi;
    float denom = std::sqrt(vi) / bc2_sqrt + eps;
    p[i] = pi - step_size * (mi / denom);
  }
}

namespace {
// Σ x² in double, lanes fixed by the position in the chunk (not by the address): 16 lanes
// (two vectors of 8 doubles), then the tail, then the lanes in order.
double chunk_sum_squares(const float* x, int64_t n) {
  int64_t i = 0;
  double total = 0.0;
#if defined(__AVX512F__)
  __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd();
  for (; i + 16 <= n; i += 16) {
    const __m512d lo = _mm512_cvtps_pd(_mm256_loadu_ps(x + i)), hi = _mm512_cvtps_pd(_mm256_loadu_ps(x + i + 8));
    a0 = _mm512_fmadd_pd(lo, lo, a0);
    a1 = _mm512_fmadd_pd(hi, hi, a1);
  }
  alignas(64) double lanes[16];
  _mm512_store_pd(lanes, a0);
  _mm512_store_pd(lanes + 8, a1);
  double tail = 0.0;
  for (int64_t j = i; j < n; ++j) tail += double(x[j]) * double(x[j]);
  for (int l = 0; l < 16; ++l) total += lanes[l];
  return total + tail;
#else
  for (; i < n; ++i) total += double(x[i]) * double(x[i]);
  return total;
#endif
}
}  // namespace

double sum_squares(const float* g, int64_t n) {
  // Fixed-size chunks, each summed in a fixed (vectorised) order, then the chunk sums in chunk
  // order: the result does not depend on the thread count.
  constexpr int64_t kChunk = 1 << 14;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  constexpr int64_t kSlots = 4096;  // chunk sums per pass (on the stack)
  double part[kSlots];
  double total = 0.0;
  for (int64_t c0 = 0; c0 < chunks; c0 += kSlots) {
    const int64_t nc = std::min(kSlots, chunks - c0);
#pragma omp parallel for schedule(static) if (nc > 1)
    for (int64_t c = 0; c < nc; ++c) {
      const int64_t b = (c0 + c) * kChunk, e = std::min(b + kChunk, n);
      part[c] = chunk_sum_squares(g + b, e - b);
    }
    for (int64_t c = 0; c < nc; ++c) total += part[c];
  }
  return total;
}

}  // namespace lt::cpu
