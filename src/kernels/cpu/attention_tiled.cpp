#include "kernels/cpu/attention_tiled.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "kernels/cpu/attention_words.h"
#include "kernels/cpu/vec_math.h"

namespace lt::cpu::tiled {

#if defined(__AVX512F__)
namespace {

constexpr int kBlk = 64;  // queries and keys per block
constexpr int kMaxNv = 8;  // head size up to 8 vectors (128)

// Rows of the register tile for NV ≤ 4 vectors of columns: ~24 accumulators of the 32 registers.
constexpr int rows_for(int nv) { return nv <= 2 ? 12 : nv == 3 ? 8 : 6; }

// The micro-kernel's three operations per element type: a row of B, a broadcast element of A,
// and the multiply-add (fp32: FMA; bf16 word pairs: vdpbf16ps).
inline __m512 load_b(const float* p) { return _mm512_loadu_ps(p); }
inline __m512 bcast_a(float x) { return _mm512_set1_ps(x); }
inline __m512 madd(__m512 acc, __m512 a, __m512 b) { return _mm512_fmadd_ps(a, b, acc); }
#if defined(__AVX512BF16__)
inline __m512bh load_b(const uint32_t* p) { return load_bh(p); }
inline __m512bh bcast_a(uint32_t w) { return bcast_word(w); }
inline __m512 madd(__m512 acc, __m512bh a, __m512bh b) { return _mm512_dpbf16_ps(acc, a, b); }
#endif

// C[r][0 .. 16·NV) = (ACC ? C[r] : 0) + Σ_k A(r, k) · B[k][0 .. 16·NV) for rows r < m ≤ MR, where
// A(r, k) = a[r·am + k·ak] is broadcast and B row k starts at b + k·bs; K steps. Rows
// m .. MR−1 repeat row m−1 and are not stored. E = float: fp32 FMAs. E = uint32_t: every
// element is a word of two bf16 along the reduction (attention_words.h), each step a
// vdpbf16ps, so K counts word pairs.
template <int MR, int NV, bool ACC, class E>
inline void micro(int m, int K, const E* a, int64_t am, int64_t ak, const E* b, int64_t bs, float* c, int64_t cs) {
  __m512 acc[MR][NV];
  int64_t off[MR];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) off[r] = int64_t(r < m ? r : m - 1) * am;
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v)
      acc[r][v] = (ACC && r < m) ? _mm512_loadu_ps(c + r * cs + 16 * v) : _mm512_setzero_ps();
  for (int k = 0; k < K; ++k) {
    const E* br = b + int64_t(k) * bs;
    const E* ar = a + int64_t(k) * ak;
    decltype(load_b(br)) bv[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) bv[v] = load_b(br + 16 * v);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const auto x = bcast_a(ar[off[r]]);
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[r][v] = madd(acc[r][v], x, bv[v]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
    if (r < m)
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) _mm512_storeu_ps(c + r * cs + 16 * v, acc[r][v]);
}

// Which part of the reduction a row needs on a diagonal block, where rows and reduction index
// the same positions (the rest multiplies exact zeros of the causal mask and is skipped):
// lower: k ≤ row (P·V, dS·K: queries × keys); upper: k ≥ row (Pᵀ·dO, dSᵀ·Q: keys × queries).
enum class Tri { none, lower, upper };

// The M × 16·NV product above, MR rows at a time; wider than 4 vectors (hd > 64) in strips of
// 4 vectors (6 × 4 tiles: more FMAs per load than 3 × 8, and no register spills). With `tri`,
// each row tile reduces over the k its rows need (bf16 words: pairs of positions).
template <int NV, bool ACC, class E>
void gemm(int M, int K, const E* a, int64_t am, int64_t ak, const E* b, int64_t bs, float* c, int64_t cs,
          Tri tri = Tri::none) {
  if constexpr (NV > 4) {
    gemm<4, ACC, E>(M, K, a, am, ak, b, bs, c, cs, tri);
    gemm<NV - 4, ACC, E>(M, K, a, am, ak, b + 64, bs, c + 64, cs, tri);
  } else {
    constexpr int MR = rows_for(NV);
    constexpr int per_k = std::is_same_v<E, float> ? 1 : 2;  // positions per reduction step
    for (int i = 0; i < M; i += MR) {
      const int m = std::min(MR, M - i);
      const int k0 = tri == Tri::upper ? i / per_k : 0;
      const int k1 = tri == Tri::lower ? std::min(K, (i + m - 1) / per_k + 1) : K;
      micro<MR, NV, ACC, E>(m, k1 - k0, a + i * am + k0 * ak, am, ak, b + k0 * bs, bs, c + i * cs, cs);
    }
  }
}

// C = A·B (no accumulation) for a diagonal block whose columns are positions (16 per vector):
// rows are also positions, and row r needs the columns ≥ r (lower = false: keys × queries) or
// ≤ r (lower = true: queries × keys), so each 16-row group runs with only the vectors it
// needs. The columns skipped hold garbage: every reader masks them (softmax_columns,
// probs_dscores).
template <class E>
void gemm_diag(int M, int K, const E* a, int64_t am, int64_t ak, const E* b, int64_t bs, float* c, int64_t cs,
               bool lower) {
  for (int g = 0; g * 16 < M; ++g) {
    const int m = std::min(16, M - 16 * g), nv = lower ? g + 1 : 4 - g, v0 = lower ? 0 : g;
    const E* ag = a + int64_t(16 * g) * am;
    const E* bg = b + 16 * v0;
    float* cg = c + int64_t(16 * g) * cs + 16 * v0;
    switch (nv) {
      case 1: gemm<1, false>(m, K, ag, am, ak, bg, bs, cg, cs); break;
      case 2: gemm<2, false>(m, K, ag, am, ak, bg, bs, cg, cs); break;
      case 3: gemm<3, false>(m, K, ag, am, ak, bg, bs, cg, cs); break;
      default: gemm<4, false>(m, K, ag, am, ak, bg, bs, cg, cs); break;
    }
  }
}

#if !defined(__AVX512BF16__)
// Declared only, so that the bf16 branches of the templates below parse; without AVX512_BF16
// they are never instantiated (supported() sends bf16 calls to the fp32 kernels).
void row_words(const float* x, int n, int npad, uint32_t* w);
void pair_words(const float* a, const float* b, int n, int npad, uint32_t* w);
void pack_transposed(const float* x, int64_t stride, int nj, int hd, int hdp, uint32_t (*kt)[64]);
void pack_key_pairs(const float* x, int64_t stride, int nj, int hd, int hdp, uint32_t* kp, int ld);
#endif

inline __m512i iota16() { return _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0); }

inline float dot(const float* a, const float* b, int n) {
  __m512 s = _mm512_setzero_ps();
  for (int i = 0; i < n; i += 16) s = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s);
  return _mm512_reduce_add_ps(s);
}

// Online-softmax step of the forward on st[key][query] (keys j0 .. j0+nj−1, queries i0 .. i0+n−1):
// keys after a query are masked (and, with document masking, keys before the query's document:
// `docs` holds the block's doc_start), st becomes exp(s − new max), m and l are updated and
// corr gets exp(old max − new max) per query. Lane-wise down columns of 16 queries.
inline void softmax_columns(float (*st)[kBlk], int nj, int n, int i0, int j0, float* m, float* l, float* corr,
                            const int32_t* docs) {
  const __m512 ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  for (int c = 0; c < (n + 15) / 16; ++c) {
    const __m512i qi = _mm512_add_epi32(_mm512_set1_epi32(i0 + 16 * c), iota16());
    const bool causal = j0 + nj - 1 > i0 + 16 * c;  // some key of the block follows some query
    // Document masking: the columns' first keys (lanes past n: 0), when some key precedes one.
    const int lanes = std::min(16, n - 16 * c);
    const bool docm = docs && docs[16 * c + lanes - 1] > j0;
    const __m512i lo = docm ? _mm512_maskz_loadu_epi32(__mmask16((1u << lanes) - 1), docs + 16 * c)
                            : _mm512_setzero_si512();
    const __m512 m_old = _mm512_load_ps(m + 16 * c);
    __m512 mx = m_old;
    for (int j = 0; j < nj; ++j) {
      __m512 sv = _mm512_load_ps(st[j] + 16 * c);
      if (causal || docm) {
        __mmask16 out = _mm512_cmplt_epi32_mask(qi, _mm512_set1_epi32(j0 + j));
        if (docm) out |= _mm512_cmpgt_epi32_mask(lo, _mm512_set1_epi32(j0 + j));
        sv = _mm512_mask_mov_ps(sv, out, ninf);
        _mm512_store_ps(st[j] + 16 * c, sv);
      }
      mx = _mm512_max_ps(mx, sv);
    }
    // A query that has seen no key of its document yet keeps m = −inf: shift by 0 instead, so
    // its probabilities and correction are exactly 0 (not NaN).
    if (docm) mx = _mm512_mask_mov_ps(mx, _mm512_cmpeq_ps_mask(mx, ninf), _mm512_setzero_ps());
    __m512 sum = _mm512_setzero_ps();
    for (int j = 0; j < nj; ++j) {
      const __m512 p = exp512(_mm512_sub_ps(_mm512_load_ps(st[j] + 16 * c), mx));
      _mm512_store_ps(st[j] + 16 * c, p);
      sum = _mm512_add_ps(sum, p);
    }
    const __m512 cr = exp512(_mm512_sub_ps(m_old, mx));  // 0 on the first block (m_old = −inf)
    _mm512_store_ps(l + 16 * c, _mm512_fmadd_ps(_mm512_load_ps(l + 16 * c), cr, sum));
    if (docm) mx = _mm512_mask_mov_ps(mx, _mm512_cmpeq_ps_mask(m_old, ninf) & _mm512_cmpeq_ps_mask(sum, _mm512_setzero_ps()), ninf);
    _mm512_store_ps(m + 16 * c, mx);
    _mm512_store_ps(corr + 16 * c, cr);
  }
}

// Backward, in place on one block pair (ps[query][key] holds S, dps holds dP = dO·Vᵀ):
// P = exp(S·score_scale − lse) on keys j ≤ i (and, with document masking, j ≥ the query's
// document start: `docs` holds the block's doc_start), dS = P∘(dP − D)·scale; both exactly
// zero elsewhere and past the last key, whatever S and dP held there (gemm_diag leaves garbage).
inline void probs_dscores(float (*ps)[kBlk], float (*dps)[kBlk], int ni, int nj, int i0, int j0, const float* z,
                          const float* D, float score_scale, float scale, const int32_t* docs) {
  const __m512 ss = _mm512_set1_ps(score_scale), sc = _mm512_set1_ps(scale);
  for (int i = 0; i < ni; ++i) {
    const __m512 zi = _mm512_set1_ps(z[i0 + i]), Di = _mm512_set1_ps(D[i0 + i]);
    const __m512i lim = _mm512_set1_epi32(std::min(i0 + i, j0 + nj - 1));
    const bool docm = docs && docs[i] > j0;
    const __m512i lo = _mm512_set1_epi32(docm ? docs[i] : 0);
    for (int c = 0; c < 4; ++c) {
      const __m512i key = _mm512_add_epi32(_mm512_set1_epi32(j0 + 16 * c), iota16());
      __mmask16 valid = _mm512_cmple_epi32_mask(key, lim);
      if (docm) valid &= _mm512_cmpge_epi32_mask(key, lo);
      const __m512 p = _mm512_maskz_mov_ps(valid, exp512(_mm512_fmsub_ps(_mm512_load_ps(ps[i] + 16 * c), ss, zi)));
      _mm512_store_ps(ps[i] + 16 * c, p);
      const __m512 dp = _mm512_load_ps(dps[i] + 16 * c);
      _mm512_store_ps(dps[i] + 16 * c, _mm512_maskz_mul_ps(valid, _mm512_mul_ps(p, _mm512_sub_ps(dp, Di)), sc));
    }
  }
}

// One task per (batch, head, block of 64 queries); the key blocks are visited in order with an
// online softmax. Scores are kept as st[key][query] (Sᵀ = K·Qᵀ: the key rows are the
// broadcast operand, the block's transposed queries the vector one), so a row's max and sum
// are lane-wise. BF: the two products take bf16 operands (q·1/√hd rounded once, as the
// backward recomputes it), fp32 accumulation.
template <int NV, bool BF>
void forward_impl(const float* q, const float* k, const float* v, float* out, float* lse, const AttnShape& s) {
  constexpr int hd = 16 * NV, hw = hd / 2;
  const int B = s.B, T = s.T, H = s.H, group = s.H / s.KV, qblocks = (s.T + kBlk - 1) / kBlk;
  const int64_t qs = int64_t(H) * hd, ks = int64_t(s.KV) * hd;
  const float scale = 1.0f / std::sqrt(float(hd));
#pragma omp parallel for schedule(dynamic, 1) collapse(3)
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h)
      for (int qb = 0; qb < qblocks; ++qb) {
        const int i0 = qb * kBlk, n = std::min(kBlk, T - i0), i1 = i0 + n;
        alignas(64) float qt[BF ? 1 : hd][kBlk];       // fp32: queries · 1/√hd, transposed; zero past n
        alignas(64) uint32_t qp[BF ? hw : 1][kBlk];    // bf16: the same as word pairs
        alignas(64) uint32_t kw[BF ? kBlk : 1][hw];    // bf16: the key block's rows as words
        alignas(64) uint32_t pw[BF ? kBlk / 2 : 1][kBlk];  // bf16: P as key pairs per query
        alignas(64) uint32_t vp[BF ? kBlk / 2 : 1][hd];    // bf16: the value block as key pairs
        alignas(64) float st[kBlk][kBlk];  // scores, then probabilities: [key][query]
        alignas(64) float o[kBlk][hd];     // unnormalised output rows
        alignas(64) float m[kBlk], l[kBlk], corr[kBlk];
        const float* qrow = q + (int64_t(b) * T + i0) * qs + int64_t(h) * hd;
        if constexpr (BF) {
          for (int i = 0; i < n; ++i)
            for (int d = 0; d < hd; ++d) o[i][d] = qrow[int64_t(i) * qs + d] * scale;  // o as scratch
          pack_transposed(&o[0][0], hd, n, hd, hd, qp);
        } else {
          for (int i = 0; i < kBlk; ++i)
            for (int d = 0; d < hd; ++d) qt[d][i] = i < n ? qrow[int64_t(i) * qs + d] * scale : 0.0f;
        }
        std::memset(o, 0, sizeof o);
        std::fill(m, m + kBlk, -std::numeric_limits<float>::infinity());
        std::fill(l, l + kBlk, 0.0f);
        const int kvh = h / group;
        const float* kbase = k + int64_t(b) * T * ks + int64_t(kvh) * hd;
        const float* vbase = v + int64_t(b) * T * ks + int64_t(kvh) * hd;
        // Document masking: key blocks before the first query's document are skipped.
        const int32_t* docs = s.doc_start ? s.doc_start + int64_t(b) * T + i0 : nullptr;
        const int jfirst = docs ? docs[0] / kBlk * kBlk : 0;
        for (int j0 = jfirst; j0 < i1; j0 += kBlk) {  // j0 ≤ i0: every query sees key j0 (causal)
          const int nj = std::min(kBlk, i1 - j0);
          const float* kb = kbase + int64_t(j0) * ks;
          const bool diag = j0 == i0;  // the last block: key j meets only queries ≥ j
          if constexpr (BF) {
            for (int j = 0; j < nj; ++j) row_words(kb + int64_t(j) * ks, hd, hd, kw[j]);
            if (diag)
              gemm_diag(nj, hw, kw[0], hw, 1, qp[0], kBlk, &st[0][0], kBlk, false);
            else
              gemm<4, false>(nj, hw, kw[0], hw, 1, qp[0], kBlk, &st[0][0], kBlk);
          } else {
            if (diag)
              gemm_diag(nj, hd, kb, ks, 1, &qt[0][0], kBlk, &st[0][0], kBlk, false);
            else
              gemm<4, false>(nj, hd, kb, ks, 1, &qt[0][0], kBlk, &st[0][0], kBlk);
          }
          softmax_columns(st, nj, n, i0, j0, m, l, corr, docs);
          if (j0 > jfirst)
            for (int i = 0; i < n; ++i) {
              const __m512 cr = _mm512_set1_ps(corr[i]);
              for (int d = 0; d < hd; d += 16) _mm512_store_ps(o[i] + d, _mm512_mul_ps(_mm512_load_ps(o[i] + d), cr));
            }
          // o[i] += Σ_j P[i][j]·v_j with P[i][j] = st[j][i]
          if constexpr (BF) {
            const int np = (nj + 1) / 2;
            for (int jp = 0; jp < np; ++jp) pair_words(st[2 * jp], 2 * jp + 1 < nj ? st[2 * jp + 1] : nullptr, kBlk, kBlk, pw[jp]);
            pack_key_pairs(vbase + int64_t(j0) * ks, ks, nj, hd, hd, vp[0], hd);
            gemm<NV, true>(n, np, pw[0], 1, kBlk, vp[0], hd, &o[0][0], hd, diag ? Tri::lower : Tri::none);
          } else {
            gemm<NV, true>(n, nj, &st[0][0], 1, kBlk, vbase + int64_t(j0) * ks, ks, &o[0][0], hd,
                           diag ? Tri::lower : Tri::none);
          }
        }
        float* orow = out + (int64_t(b) * T + i0) * qs + int64_t(h) * hd;
        float* lrow = lse + (int64_t(b) * H + h) * T + i0;
        for (int i = 0; i < n; ++i) {
          const __m512 inv = _mm512_set1_ps(1.0f / l[i]);
          for (int d = 0; d < hd; d += 16)
            _mm512_storeu_ps(orow + int64_t(i) * qs + d, _mm512_mul_ps(_mm512_load_ps(o[i] + d), inv));
          lrow[i] = m[i] + std::log(l[i]);
        }
      }
}

// t[d][j] = rows j0 .. j0+nj−1 of one head (row stride), transposed; zero past nj.
template <int hd>
inline void load_transposed(const float* x, int64_t stride, int nj, float (*t)[kBlk]) {
  for (int j = 0; j < kBlk; ++j)
    for (int d = 0; d < hd; ++d) t[d][j] = j < nj ? x[int64_t(j) * stride + d] : 0.0f;
}

// The backward's per-thread buffers (grown once, reused): D = rowsum(dO∘O) of the group's
// rows (floats) and, in bf16, the group's q·1/√hd and dO as row words and row pairs, rows
// padded to whole blocks (words).
struct Scratch {
  size_t floats, words;
};
inline Scratch backward_scratch(const AttnShape& s, bool bf16) {
  const size_t group = size_t(s.H / s.KV), Tp = size_t(s.T + kBlk - 1) / kBlk * kBlk;
  return {group * size_t(s.T), bf16 ? 4 * group * Tp * size_t(s.hd / 2) : 0};
}

// One task per (batch, KV head): it owns dK, dV of that head and dQ of its query heads (fixed
// summation order for any thread count). Key blocks outer; for each, every later query block
// of every head of the group: S = Q·Kᵀ and dP = dO·Vᵀ, then P = exp(S/√hd − lse) and
// dS = P∘(dP − D)/√hd in place, then dV += Pᵀ·dO, dK += dSᵀ·Q, dQ += dS·K.
// BF: every product in bf16 (the scores from the same rounded q·1/√hd as the forward).
template <int NV, bool BF>
void backward_impl(const float* q, const float* k, const float* v, const float* out, const float* dout,
                   const float* lse, float* dq, float* dk, float* dv, const AttnShape& s) {
  constexpr int hd = 16 * NV, hw = hd / 2;
  const int B = s.B, T = s.T, H = s.H, KV = s.KV, group = s.H / s.KV;
  const int Tp = (T + kBlk - 1) / kBlk * kBlk;  // bf16 rows padded with zeros to whole blocks
  const int64_t qs = int64_t(H) * hd, ks = int64_t(KV) * hd;
  const float scale = 1.0f / std::sqrt(float(hd));
#pragma omp parallel for schedule(dynamic, 1) collapse(2)
  for (int b = 0; b < B; ++b)
    for (int kvh = 0; kvh < KV; ++kvh) {
      alignas(64) float kt[BF ? 1 : hd][kBlk], vt[BF ? 1 : hd][kBlk];  // fp32: K, V blocks transposed
      alignas(64) uint32_t ktw[BF ? hw : 1][kBlk], vtw[BF ? hw : 1][kBlk];  // bf16: the same as words
      alignas(64) uint32_t kp[BF ? kBlk / 2 : 1][hd];                       // bf16: K block as key pairs
      alignas(64) uint32_t pw[BF ? kBlk / 2 : 1][kBlk], dsw[BF ? kBlk / 2 : 1][kBlk];  // P, dS as query pairs
      alignas(64) uint32_t dsr[BF ? kBlk : 1][kBlk / 2];                    // dS rows as key pairs
      alignas(64) float dka[kBlk][hd], dva[kBlk][hd];
      alignas(64) float ps[kBlk][kBlk], dps[kBlk][kBlk];  // [query][key]: S then P; dP then dS
      // Per thread, grown once (no allocation per step): D = rowsum(dO∘O) of the group's rows;
      // bf16: the rows of q·1/√hd and dO as words, of q and dO as row pairs.
      thread_local std::vector<float> Dbuf;
      thread_local std::vector<uint32_t> words;
      const Scratch need = backward_scratch(s, BF);
      if (Dbuf.size() < need.floats) Dbuf.resize(need.floats);
      if (words.size() < need.words) words.resize(need.words);
      const size_t hwords = size_t(Tp) * hw;  // per head and kind
      uint32_t* qw = words.data();
      uint32_t* ow = qw + group * hwords;
      uint32_t* qpr = ow + group * hwords;
      uint32_t* opr = qpr + group * hwords;
      for (int g = 0; g < group; ++g) {
        const int64_t ho = int64_t(kvh * group + g) * hd;
        for (int i = 0; i < T; ++i) {
          const int64_t qo = (int64_t(b) * T + i) * qs + ho;
          Dbuf[size_t(g) * T + i] = dot(dout + qo, out + qo, hd);
          std::memset(dq + qo, 0, sizeof(float) * hd);
        }
        if constexpr (BF) {
          alignas(64) float qsc[hd];
          for (int i = 0; i < Tp; ++i) {
            const int64_t qo = (int64_t(b) * T + i) * qs + ho;
            const bool in = i < T;
            if (in)
              for (int d = 0; d < hd; ++d) qsc[d] = q[qo + d] * scale;
            row_words(in ? qsc : nullptr, in ? hd : 0, hd, qw + g * hwords + size_t(i) * hw);
            row_words(in ? dout + qo : nullptr, in ? hd : 0, hd, ow + g * hwords + size_t(i) * hw);
            if (i % 2 == 0) {
              const bool second = i + 1 < T;
              pair_words(in ? q + qo : nullptr, second ? q + qo + qs : nullptr, hd, hd, qpr + g * hwords + size_t(i / 2) * hd);
              pair_words(in ? dout + qo : nullptr, second ? dout + qo + qs : nullptr, hd, hd,
                         opr + g * hwords + size_t(i / 2) * hd);
            }
          }
        }
      }
      const float* kbase = k + int64_t(b) * T * ks + int64_t(kvh) * hd;
      const float* vbase = v + int64_t(b) * T * ks + int64_t(kvh) * hd;
      for (int j0 = 0; j0 < T; j0 += kBlk) {
        const int nj = std::min(kBlk, T - j0);
        const float* kb = kbase + int64_t(j0) * ks;
        if constexpr (BF) {
          pack_transposed(kb, ks, nj, hd, hd, ktw);
          pack_transposed(vbase + int64_t(j0) * ks, ks, nj, hd, hd, vtw);
          pack_key_pairs(kb, ks, nj, hd, hd, kp[0], hd);
        } else {
          load_transposed<hd>(kb, ks, nj, kt);
          load_transposed<hd>(vbase + int64_t(j0) * ks, ks, nj, vt);
        }
        std::memset(dka, 0, sizeof dka);
        std::memset(dva, 0, sizeof dva);
        for (int g = 0; g < group; ++g) {
          const int h = kvh * group + g;
          const float* z = lse + (int64_t(b) * H + h) * T;
          const float* D = Dbuf.data() + size_t(g) * T;
          for (int i0 = j0; i0 < T; i0 += kBlk) {
            const int ni = std::min(kBlk, T - i0);
            // Document masking: once a query block's first document starts after this key
            // block, it and every later one see none of it.
            const int32_t* docs = s.doc_start ? s.doc_start + int64_t(b) * T + i0 : nullptr;
            if (docs && docs[0] >= j0 + nj) break;
            const int64_t ro = (int64_t(b) * T + i0) * qs + int64_t(h) * hd;
            const bool diag = i0 == j0;  // query i meets only keys ≤ i
            const Tri lo = diag ? Tri::lower : Tri::none, up = diag ? Tri::upper : Tri::none;
            if constexpr (BF) {
              const size_t wo = g * hwords + size_t(i0) * hw;  // row words of row i0; pairs of rows i0, i0+1
              if (diag) {
                gemm_diag(ni, hw, qw + wo, hw, 1, ktw[0], kBlk, &ps[0][0], kBlk, true);
                gemm_diag(ni, hw, ow + wo, hw, 1, vtw[0], kBlk, &dps[0][0], kBlk, true);
              } else {
                gemm<4, false>(ni, hw, qw + wo, hw, 1, ktw[0], kBlk, &ps[0][0], kBlk);
                gemm<4, false>(ni, hw, ow + wo, hw, 1, vtw[0], kBlk, &dps[0][0], kBlk);
              }
              probs_dscores(ps, dps, ni, nj, i0, j0, z, D, 1.0f, scale, docs);
              const int nip = (ni + 1) / 2;
              for (int ip = 0; ip < nip; ++ip) {
                const bool second = 2 * ip + 1 < ni;
                pair_words(ps[2 * ip], second ? ps[2 * ip + 1] : nullptr, kBlk, kBlk, pw[ip]);
                pair_words(dps[2 * ip], second ? dps[2 * ip + 1] : nullptr, kBlk, kBlk, dsw[ip]);
              }
              for (int i = 0; i < ni; ++i) row_words(dps[i], kBlk, kBlk, dsr[i]);
              gemm<NV, true>(nj, nip, pw[0], 1, kBlk, opr + wo, hd, &dva[0][0], hd, up);
              gemm<NV, true>(nj, nip, dsw[0], 1, kBlk, qpr + wo, hd, &dka[0][0], hd, up);
              gemm<NV, true>(ni, (nj + 1) / 2, dsr[0], kBlk / 2, 1, kp[0], hd, dq + ro, qs, lo);
            } else {
              if (diag) {
                gemm_diag(ni, hd, q + ro, qs, 1, &kt[0][0], kBlk, &ps[0][0], kBlk, true);
                gemm_diag(ni, hd, dout + ro, qs, 1, &vt[0][0], kBlk, &dps[0][0], kBlk, true);
              } else {
                gemm<4, false>(ni, hd, q + ro, qs, 1, &kt[0][0], kBlk, &ps[0][0], kBlk);
                gemm<4, false>(ni, hd, dout + ro, qs, 1, &vt[0][0], kBlk, &dps[0][0], kBlk);
              }
              probs_dscores(ps, dps, ni, nj, i0, j0, z, D, scale, scale, docs);
              gemm<NV, true>(nj, ni, &ps[0][0], 1, kBlk, dout + ro, qs, &dva[0][0], hd, up);  // dV[j] += Σ_i P[i][j]·dO_i
              gemm<NV, true>(nj, ni, &dps[0][0], 1, kBlk, q + ro, qs, &dka[0][0], hd, up);    // dK[j] += Σ_i dS[i][j]·q_i
              gemm<NV, true>(ni, nj, &dps[0][0], kBlk, 1, kb, ks, dq + ro, qs, lo);            // dQ_i += Σ_j dS[i][j]·k_j
            }
          }
        }
        const int64_t ko = (int64_t(b) * T + j0) * ks + int64_t(kvh) * hd;
        for (int j = 0; j < nj; ++j) {
          std::memcpy(dk + ko + int64_t(j) * ks, dka[j], sizeof(float) * hd);
          std::memcpy(dv + ko + int64_t(j) * ks, dva[j], sizeof(float) * hd);
        }
      }
    }
}

template <bool BF>
void forward_any(const float* q, const float* k, const float* v, float* out, float* lse, const AttnShape& s) {
  switch (s.hd / 16) {
    case 1: return forward_impl<1, BF>(q, k, v, out, lse, s);
    case 2: return forward_impl<2, BF>(q, k, v, out, lse, s);
    case 3: return forward_impl<3, BF>(q, k, v, out, lse, s);
    case 4: return forward_impl<4, BF>(q, k, v, out, lse, s);
    case 5: return forward_impl<5, BF>(q, k, v, out, lse, s);
    case 6: return forward_impl<6, BF>(q, k, v, out, lse, s);
    case 7: return forward_impl<7, BF>(q, k, v, out, lse, s);
    default: return forward_impl<8, BF>(q, k, v, out, lse, s);
  }
}

template <bool BF>
void backward_any(const float* q, const float* k, const float* v, const float* out, const float* dout,
                  const float* lse, float* dq, float* dk, float* dv, const AttnShape& s) {
  switch (s.hd / 16) {
    case 1: return backward_impl<1, BF>(q, k, v, out, dout, lse, dq, dk, dv, s);
    case 2: return backward_impl<2, BF>(q, k, v, out, dout, lse, dq, dk, dv, s);
    case 3: return backward_impl<3, BF>(q, k, v, out, dout, lse, dq, dk, dv, s);
    case 4: return backward_impl<4, BF>(q, k, v, out, dout, lse, dq, dk, dv, s);
    case 5: return backward_impl<5, BF>(q, k, v, out, dout, lse, dq, dk, dv, s);
    case 6: return backward_impl<6, BF>(q, k, v, out, dout, lse, dq, dk, dv, s);
    case 7: return backward_impl<7, BF>(q, k, v, out, dout, lse, dq, dk, dv, s);
    default: return backward_impl<8, BF>(q, k, v, out, dout, lse, dq, dk, dv, s);
  }
}

}  // namespace

bool supported(const AttnShape& s, bool bf16) {
#if !defined(__AVX512BF16__)
  if (bf16) return false;
#endif
  return s.hd % 16 == 0 && s.hd / 16 >= 1 && s.hd / 16 <= kMaxNv;
}

size_t backward_scratch_bytes(const AttnShape& s, bool bf16) {
  const Scratch n = backward_scratch(s, bf16);
  return n.floats * sizeof(float) + n.words * sizeof(uint32_t);
}

void forward(const float* q, const float* k, const float* v, float* out, float* lse, const AttnShape& s) {
  forward_any<false>(q, k, v, out, lse, s);
}
void backward(const float* q, const float* k, const float* v, const float* out, const float* dout,
              const float* lse, float* dq, float* dk, float* dv, const AttnShape& s) {
  backward_any<false>(q, k, v, out, dout, lse, dq, dk, dv, s);
}
#if defined(__AVX512BF16__)
void forward_bf16(const float* q, const float* k, const float* v, float* out, float* lse, const AttnShape& s) {
  forward_any<true>(q, k, v, out, lse, s);
}
void backward_bf16(const float* q, const float* k, const float* v, const float* out, const float* dout,
                   const float* lse, float* dq, float* dk, float* dv, const AttnShape& s) {
  backward_any<true>(q, k, v, out, dout, lse, dq, dk, dv, s);
}
#else
void forward_bf16(const float*, const float*, const float*, float*, float*, const AttnShape&) {}
void backward_bf16(const float*, const float*, const float*, const float*, const float*, const float*, float*,
                   float*, float*, const AttnShape&) {}
#endif

#else  // no AVX-512: the generic kernels in attention.cpp run instead

bool supported(const AttnShape&, bool) { return false; }
size_t backward_scratch_bytes(const AttnShape&, bool) { return 0; }
void forward(const float*, const float*, const float*, float*, float*, const AttnShape&) {}
void backward(const float*, const float*, const float*, const float*, const float*, const float*, float*, float*,
              float*, const AttnShape&) {}
void forward_bf16(const float*, const float*, const float*, float*, float*, const AttnShape&) {}
void backward_bf16(const float*, const float*, const float*, const float*, const float*, const float*, float*,
                   float*, float*, const AttnShape&) {}

#endif

}  // namespace lt::cpu::tiled
