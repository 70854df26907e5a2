#include "kernels/cpu/swiglu.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/vec_math.h"

namespace lt::cpu {

namespace {
constexpr int64_t kChunk = 4096;  // elements per task: sigmoid via the vectorised exp

inline float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }
#if defined(__AVX512F__)
inline __m512 sigmoid512(__m512 x) {
  const __m512 one = _mm512_set1_ps(1.0f);
  return _mm512_div_ps(one, _mm512_add_ps(one, exp512(_mm512_sub_ps(_mm512_setzero_ps(), x))));
}
#endif
}  // namespace

void swiglu_forward(const float* g, const float* u, float* h, int64_t n) {
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    int64_t i = c * kChunk;
    const int64_t e = std::min(n, i + kChunk);
#if defined(__AVX512F__)
    for (; i + 16 <= e; i += 16) {
      const __m512 gv = _mm512_loadu_ps(g + i);
      const __m512 sig = sigmoid512(gv);
      _mm512_storeu_ps(h + i, _mm512_mul_ps(_mm512_mul_ps(gv, sig), _mm512_loadu_ps(u + i)));
    }
#endif
    for (; i < e; ++i) h[i] = g[i] * sigmoid(g[i]) * u[i];
  }
}

void swiglu_backward(const float* dh, const float* g, const float* u, float* dg, float* du, int64_t n) {
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    int64_t i = c * kChunk;
    const int64_t e = std::min(n, i + kChunk);
#if defined(__AVX512F__)
    const __m512 one = _mm512_set1_ps(1.0f);
    for (; i + 16 <= e; i += 16) {
      const __m512 gv = _mm512_loadu_ps(g + i), dhv = _mm512_loadu_ps(dh + i);
      const __m512 sig = sigmoid512(gv);
      // dg = dh·u·σ·(1 + g·(1 − σ)),  du = dh·g·σ
      const __m512 t = _mm512_fmadd_ps(gv, _mm512_sub_ps(one, sig), one);
      _mm512_storeu_ps(dg + i, _mm512_mul_ps(_mm512_mul_ps(dhv, _mm512_loadu_ps(u + i)), _mm512_mul_ps(sig, t)));
      _mm512_storeu_ps(du + i, _mm512_mul_ps(dhv, _mm512_mul_ps(gv, sig)));
    }
#endif
    for (; i < e; ++i) {
      const float sig = sigmoid(g[i]);
      dg[i] = dh[i] * u[i] * sig * (1.0f + g[i] * (1.0f - sig));
      du[i] = dh[i] * g[i] * sig;
    }
  }
}

}  // namespace lt::cpu
