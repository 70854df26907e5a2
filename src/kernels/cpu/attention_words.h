// bf16 operand packing shared by the attention kernels (attention.cpp, attention_tiled.cpp).
//
// vdpbf16ps lane j adds a[2j]·b[2j] + a[2j+1]·b[2j+1], so both operands hold pairs along the
// reduction dimension in one 32-bit word (low half = even index). Layouts (words, hdp = hd
// rounded up to 16, zero-padded):
//   row words   x[p]       = (x[2p], x[2p+1])                  queries/dO, pairs along d
//   kt[p][j]               = (k_j[2p], k_j[2p+1])              key/value tile, transposed
//   key pairs   kp[jp][d]  = (x_{2jp}[d], x_{2jp+1}[d])        value tile (P·V), key tile (dS·K)
//   row pairs   qp[ip][d]  = (q_{2ip}[d], q_{2ip+1}[d])        queries/dO (dSᵀ·Q, Pᵀ·dO)
// Values are rounded to nearest even when packed.
#pragma once
#include <cstdint>
#include <cstring>
#if defined(__AVX512BF16__)
#include <immintrin.h>

namespace lt::cpu {

constexpr int kTileKeys = 64;  // keys per transposed tile (kt) and per key-pair tile (kp)

inline int round16(int n) { return (n + 15) / 16 * 16; }

inline __m512bh as_bh(__m512i x) {
  __m512bh r;
  std::memcpy(&r, &x, sizeof r);
  return r;
}
inline __m512bh bcast_word(uint32_t w) { return as_bh(_mm512_set1_epi32(int(w))); }
inline __m512bh load_bh(const uint32_t* p) { return as_bh(_mm512_loadu_si512(p)); }

// bf16 of x[0 .. n) in 16 lanes (n ≤ 16, lanes ≥ n are zero; x may be null when n ≤ 0).
inline __m256i cvt16(const float* x, int n) {
  if (n <= 0) return _mm256_setzero_si256();
  const __mmask16 m = n >= 16 ? __mmask16(0xffff) : __mmask16((1u << n) - 1);
  const __m256bh h = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, x));
  __m256i r;
  std::memcpy(&r, &h, sizeof r);
  return r;
}

// Row words of x[0 .. n), zero up to npad elements (npad a multiple of 16).
inline void row_words(const float* x, int n, int npad, uint32_t* w) {
  for (int d = 0; d < npad; d += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(w + d / 2), cvt16(x ? x + d : nullptr, n - d));
}

// w[d] = (a[d], b[d]) for d < npad; a or b null, or d ≥ n, gives zero halves.
inline void pair_words(const float* a, const float* b, int n, int npad, uint32_t* w) {
  for (int d = 0; d < npad; d += 16) {
    const __m512i lo = _mm512_cvtepu16_epi32(cvt16(a ? a + d : nullptr, a ? n - d : 0));
    const __m512i hi = _mm512_cvtepu16_epi32(cvt16(b ? b + d : nullptr, b ? n - d : 0));
    _mm512_storeu_si512(w + d, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
  }
}

// Rows j0 .. j0+nj−1 (stride) of one head, transposed into kt[p][j] (kTileKeys columns);
// zero past nj. hdp ≤ 256.
inline void pack_transposed(const float* x, int64_t stride, int nj, int hd, int hdp, uint32_t (*kt)[kTileKeys]) {
  alignas(64) uint32_t w[128];
  for (int j = 0; j < kTileKeys; ++j) {
    row_words(j < nj ? x + int64_t(j) * stride : nullptr, j < nj ? hd : 0, hdp, w);
    for (int p = 0; p < hdp / 2; ++p) kt[p][j] = w[p];
  }
}

// kTileKeys rows as key pairs kp[jp·ld + d] (ld ≥ hdp words per pair row); zero past nj.
inline void pack_key_pairs(const float* x, int64_t stride, int nj, int hd, int hdp, uint32_t* kp, int ld) {
  for (int jp = 0; jp < kTileKeys / 2; ++jp) {
    const int j = 2 * jp;
    pair_words(j < nj ? x + int64_t(j) * stride : nullptr, j + 1 < nj ? x + int64_t(j + 1) * stride : nullptr, hd,
               hdp, kp + int64_t(jp) * ld);
  }
}

}  // namespace lt::cpu
#endif
