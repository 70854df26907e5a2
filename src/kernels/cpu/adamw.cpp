#include "kernels/cpu/adamw.h"

#include <algorithm>
#include <cmath>

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
      double s = 0.0;
#pragma omp simd reduction(+ : s)
      for (int64_t i = b; i < e; ++i) s += double(g[i]) * double(g[i]);
      part[c] = s;
    }
    for (int64_t c = 0; c < nc; ++c) total += part[c];
  }
  return total;
}

}  // namespace lt::cpu
