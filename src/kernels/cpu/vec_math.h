// Vectorised exp for the softmax-like kernels (attention, cross-entropy). With AVX-512:
// n = round(x·log2 e), r = x − n·ln 2 (ln 2 in two parts), e^r by a degree-6 Taylor polynomial
// on |r| ≤ ln2/2 (a few ulp), scaled by 2^n with vscalefps; x below −88 gives 0 (so −inf → 0).
// Without AVX-512 it falls back to std::exp.
#pragma once
#include <cmath>
#include <cstdint>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace lt::cpu {

#if defined(__AVX512F__)
inline __m512 exp512(__m512 v) {
  const __m512 lo = _mm512_set1_ps(-88.0f), hi = _mm512_set1_ps(88.0f);
  const __m512 cl = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
  const __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(cl, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693359375f), cl);
  r = _mm512_fnmadd_ps(k, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(1.0f / 720), r, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  const __m512 e = _mm512_scalef_ps(p, k);
  return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, lo, _CMP_GE_OQ), e);
}
#endif

// x[i] = exp(x[i] − shift) · scale
inline void exp_shift_scale(float* x, int64_t n, float shift, float scale) {
  int64_t i = 0;
#if defined(__AVX512F__)
  const __m512 s = _mm512_set1_ps(shift), c = _mm512_set1_ps(scale);
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(x + i, _mm512_mul_ps(exp512(_mm512_sub_ps(_mm512_loadu_ps(x + i), s)), c));
  if (i < n) {
    const __mmask16 m = __mmask16((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), s)), c));
    return;
  }
#endif
  for (; i < n; ++i) x[i] = std::exp(x[i] - shift) * scale;
}

inline void exp_inplace(float* x, int64_t n) { exp_shift_scale(x, n, 0.0f, 1.0f); }

}  // namespace lt::cpu
