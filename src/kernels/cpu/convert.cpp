#include "kernels/cpu/convert.h"

#include <immintrin.h>

#include <algorithm>
#include <cstdint>

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

#if defined(__AVX512BF16__)
namespace {
// r[0..15] = 16 rows of 16 floats, transposed in registers: r[c] becomes column c.
inline void transpose16(__m512 r[16]) {
  __m512 a[16], b[16];
  for (int i = 0; i < 8; ++i) {
    a[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    a[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {  // b[4i + k], 128-bit lane L: column 4L + k of rows 4i .. 4i+3
    const __m512d a0 = _mm512_castps_pd(a[4 * i]), a1 = _mm512_castps_pd(a[4 * i + 1]);
    const __m512d a2 = _mm512_castps_pd(a[4 * i + 2]), a3 = _mm512_castps_pd(a[4 * i + 3]);
    b[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, a2));
    b[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a2));
    b[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, a3));
    b[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, a3));
  }
  for (int k = 0; k < 4; ++k) {
    const __m512 c0 = _mm512_shuffle_f32x4(b[k], b[4 + k], 0x88), c1 = _mm512_shuffle_f32x4(b[k], b[4 + k], 0xdd);
    const __m512 c2 = _mm512_shuffle_f32x4(b[8 + k], b[12 + k], 0x88), c3 = _mm512_shuffle_f32x4(b[8 + k], b[12 + k], 0xdd);
    r[k] = _mm512_shuffle_f32x4(c0, c2, 0x88);
    r[8 + k] = _mm512_shuffle_f32x4(c0, c2, 0xdd);
    r[4 + k] = _mm512_shuffle_f32x4(c1, c3, 0x88);
    r[12 + k] = _mm512_shuffle_f32x4(c1, c3, 0xdd);
  }
}
}  // namespace
#endif

void to_bf16_transposed(const float* x, int64_t rows, int64_t cols, bf16* y, int64_t ldy, bf16* y_rows) {
  // Blocks of 32 rows: each column's 32 values are one 64-byte store, non-temporal where the
  // line is aligned (the output rows are far apart; cached stores there thrash the L1 sets).
  const int64_t cb = cols / 16;
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
  for (int64_t i = 0; i < (rows + 31) / 32; ++i) {
    const int64_t r0 = i * 32, r1 = std::min(rows, r0 + 32);
    int64_t c0 = 0;
#if defined(__AVX512BF16__)
    if (r1 - r0 == 32)
      for (; c0 < cb * 16; c0 += 16) {
        __m512 lo[16], hi[16];
        for (int r = 0; r < 16; ++r) {
          lo[r] = _mm512_loadu_ps(x + (r0 + r) * cols + c0);
          hi[r] = _mm512_loadu_ps(x + (r0 + 16 + r) * cols + c0);
        }
        if (y_rows)
          for (int r = 0; r < 16; ++r) {
            const __m256bh a = _mm512_cvtneps_pbh(lo[r]), b = _mm512_cvtneps_pbh(hi[r]);
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(y_rows + (r0 + r) * cols + c0), reinterpret_cast<const __m256i&>(a));
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(y_rows + (r0 + 16 + r) * cols + c0),
                                reinterpret_cast<const __m256i&>(b));
          }
        transpose16(lo);
        transpose16(hi);
        for (int c = 0; c < 16; ++c) {
          const __m512bh h = _mm512_cvtne2ps_pbh(hi[c], lo[c]);  // rows r0 .. r0+15 in the low half
          bf16* dst = y + (c0 + c) * ldy + r0;
          if ((reinterpret_cast<uintptr_t>(dst) & 63) == 0)
            _mm512_stream_si512(reinterpret_cast<__m512i*>(dst), reinterpret_cast<const __m512i&>(h));
          else
            _mm512_storeu_si512(dst, reinterpret_cast<const __m512i&>(h));
        }
      }
#else
    (void)cb;
#endif
    for (int64_t r = r0; r < r1; ++r)  // the columns (and, in a short last block, rows) left
      for (int64_t c = c0; c < cols; ++c) {
        const bf16 h = float_to_bf16(x[r * cols + c]);
        y[c * ldy + r] = h;
        if (y_rows) y_rows[r * cols + c] = h;
      }
#if defined(__AVX512BF16__)
    _mm_sfence();  // this block's streamed lines are visible before anyone reads them
#endif
  }
}

}  // namespace lt::cpu
