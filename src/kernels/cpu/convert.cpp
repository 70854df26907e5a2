#include "kernels/cpu/convert.h"

#include <immintrin.h>

namespace lt::cpu {

void to_bf16_serial(const float* x, bf16* y, int64_t n) {
  int64_t i = 0;
#if defined(__AVX512BF16__)
  for (; i + 16 <= n; i += 16) {
    __m256bh h = _mm512_cvtneps_pbh(_mm512_loadu_ps(x + i));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i), reinterpret_cast<__m256i&>(h));
  }
#endif
  for (; i < n; ++i) y[i] = float_to_bf16(x[i]);
}

void to_bf16(const float* x, bf16* y, int64_t n) {
  constexpr int64_t kChunk = 4096;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t c = 0; c < chunks; ++c) {
    int64_t i = c * kChunk;
    const int64_t e = i + kChunk < n ? i + kChunk : n;
#if defined(__AVX512BF16__)
    for (; i + 16 <= e; i += 16) {
      __m256bh h = _mm512_cvtneps_pbh(_mm512_loadu_ps(x + i));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i), reinterpret_cast<__m256i&>(h));
    }
#endif
    for (; i < e; ++i) y[i] = float_to_bf16(x[i]);
  }
}

}  // namespace lt::cpu
