#include "kernels/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/error.h"
#include "kernels/cpu/attention_tiled.h"
#include "kernels/cpu/attention_words.h"
#include "kernels/cpu/vec_math.h"

namespace lt::cpu {

namespace {
constexpr int kBq = 128;  // query rows per forward task (amortises the key-tile transposes)
constexpr int kBk = 64;   // key rows per tile
constexpr int kMaxHd = 256;

inline float dot(const float* a, const float* b, int n) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}
}  // namespace

namespace {
constexpr int kR = 4;  // query rows processed together: K/V tile loads and dK/dV updates are shared

// Scores of rows r < nr against the transposed key tile: sc[r][j] = Σ_d x_r[d]·kt[d][j].
// (Rows nr .. kR−1 repeat a valid row and are computed but not used.)
template <int HD>
inline void tile_scores(const float* const x[kR], int nr, const float (*kt)[kBk], float (*sc)[kBk], int hd) {
  const int n = HD ? HD : hd;
#if defined(__AVX512F__)
  static_assert(kR == 4 && kBk == 64, "the register tile below is 4 rows x 64 keys");
  __m512 a[kR][4];
  for (int r = 0; r < kR; ++r)
    for (int c = 0; c < 4; ++c) a[r][c] = _mm512_setzero_ps();
  for (int d = 0; d < n; ++d) {
    const __m512 k0 = _mm512_load_ps(kt[d]), k1 = _mm512_load_ps(kt[d] + 16), k2 = _mm512_load_ps(kt[d] + 32),
                 k3 = _mm512_load_ps(kt[d] + 48);
    for (int r = 0; r < kR; ++r) {
      const __m512 xb = _mm512_set1_ps(x[r][d]);
      a[r][0] = _mm512_fmadd_ps(xb, k0, a[r][0]);
      a[r][1] = _mm512_fmadd_ps(xb, k1, a[r][1]);
      a[r][2] = _mm512_fmadd_ps(xb, k2, a[r][2]);
      a[r][3] = _mm512_fmadd_ps(xb, k3, a[r][3]);
    }
  }
  for (int r = 0; r < kR; ++r)
    for (int c = 0; c < 4; ++c) _mm512_store_ps(sc[r] + 16 * c, a[r][c]);
  (void)nr;
#else
  for (int r = 0; r < nr; ++r) {
    float* out = sc[r];
    for (int j = 0; j < kBk; ++j) out[j] = 0.0f;
    for (int d = 0; d < n; ++d) {
      const float xd = x[r][d];
#pragma omp simd
      for (int j = 0; j < kBk; ++j) out[j] += xd * kt[d][j];
    }
  }
#endif
}

// The first key of the tile (index from j0) row r of a query block may see: its document's
// start (document masking, `lo` = doc_start of the block's first row), else 0.
inline int first_key(const int32_t* lo, int r, int j0) { return lo ? std::max(0, lo[r] - j0) : 0; }

// Online-softmax update of score rows r < nr (query i0 + r, keys j0 .. j0+nj−1): keys past the
// diagonal (and, with document masking, before the row's document) are masked, the row becomes
// exp(s − new max) in place, m and l are updated and corr[r] = exp(old max − new max) rescales
// the row's accumulator. Returns the keys any row sees.
inline int softmax_update(float (*sc)[kBk], int nr, int i0, int j0, int nj, float* m, float* l, float* corr,
                          const int32_t* lo) {
  int jmax = 0;
  for (int r = 0; r < nr; ++r) {
    const int jn = std::min(nj, i0 + r - j0 + 1);  // causal: keys j0 .. i
    const int j1 = first_key(lo, r, j0);
    jmax = std::max(jmax, jn);
    float* row = sc[r];
    float mx = m[r];
    if (j1 == 0) {
#pragma omp simd aligned(row : 64) reduction(max : mx)
      for (int j = 0; j < kBk; ++j) {
        row[j] = j < jn ? row[j] : -std::numeric_limits<float>::infinity();
        mx = std::max(mx, row[j]);
      }
    } else {  // document masking: keys before the row's document too
#pragma omp simd aligned(row : 64) reduction(max : mx)
      for (int j = 0; j < kBk; ++j) {
        row[j] = j < jn && j >= j1 ? row[j] : -std::numeric_limits<float>::infinity();
        mx = std::max(mx, row[j]);
      }
      if (mx == -std::numeric_limits<float>::infinity()) {  // no key of this row's document yet
        std::fill(row, row + kBk, 0.0f);
        corr[r] = 1.0f;
        continue;
      }
    }
    corr[r] = std::exp(m[r] - mx);
    exp_shift_scale(row, kBk, mx, 1.0f);
    float sum = 0.0f;
#pragma omp simd aligned(row : 64) reduction(+ : sum)
    for (int j = 0; j < kBk; ++j) sum += row[j];
    l[r] = l[r] * corr[r] + sum;
    m[r] = mx;
  }
  return jmax;
}

// Backward: p holds scores q·k times score_scale, ds holds dO·v. Turns them into
// P = exp(p·score_scale − lse) and dS = P∘(dP − D)·scale for rows r < nr (zero past the
// diagonal and in rows nr .. kR−1); score_scale is 1 when q came pre-scaled, as the forward
// rounded it. Returns the keys any row sees.
inline int probs_and_dscores(float (*p)[kBk], float (*ds)[kBk], const float* z, const float* Di, int nr, int i0,
                             int j0, int nj, float score_scale, float scale, const int32_t* lo) {
  int jmax = 0;
  for (int r = 0; r < nr; ++r) {
    const int jn = std::min(nj, i0 + r - j0 + 1);
    const int j1 = first_key(lo, r, j0);
    jmax = std::max(jmax, jn);
    float* pr = p[r];
    float* dr = ds[r];
    if (j1 == 0) {
#pragma omp simd aligned(pr : 64)
      for (int j = 0; j < kBk; ++j)
        pr[j] = j < jn ? pr[j] * score_scale - z[r] : -std::numeric_limits<float>::infinity();
    } else {  // document masking: keys before the row's document too
#pragma omp simd aligned(pr : 64)
      for (int j = 0; j < kBk; ++j)
        pr[j] = j < jn && j >= j1 ? pr[j] * score_scale - z[r] : -std::numeric_limits<float>::infinity();
    }
    exp_inplace(pr, kBk);
#pragma omp simd aligned(pr, dr : 64)
    for (int j = 0; j < kBk; ++j) dr[j] = pr[j] * (dr[j] - Di[r]) * scale;
  }
  for (int r = nr; r < kR; ++r)
    for (int j = 0; j < kBk; ++j) p[r][j] = ds[r][j] = 0.0f;
  return jmax;
}

// Forward of query rows i0 .. i0+nr−1 against one key block (online softmax update).
template <int HD>
void fwd_rows(const float* const qi[kR], int nr, int i0, int j0, int nj, const float (*kt)[kBk], const float* v,
              int64_t ks, float (*acc)[kMaxHd], float* m, float* l, int hd, const int32_t* lo) {
  const int n = HD ? HD : hd;
  alignas(64) float sc[kR][kBk];
  tile_scores<HD>(qi, nr, kt, sc, hd);  // q already carries the 1/√hd scale
  float corr[kR];
  const int jmax = softmax_update(sc, nr, i0, j0, nj, m, l, corr, lo);
  float a[kR][HD ? HD : kMaxHd];
  for (int r = 0; r < nr; ++r)
#pragma omp simd
    for (int d = 0; d < n; ++d) a[r][d] = acc[r][d] * corr[r];
  for (int j = 0; j < jmax; ++j) {
    const float* vj = v + int64_t(j) * ks;
    for (int r = 0; r < nr; ++r) {
      const float p = sc[r][j];
#pragma omp simd
      for (int d = 0; d < n; ++d) a[r][d] += p * vj[d];
    }
  }
  for (int r = 0; r < nr; ++r)
#pragma omp simd
    for (int d = 0; d < n; ++d) acc[r][d] = a[r][d];
}

// Backward of query rows against one key block: P and dS recomputed, dK/dV tile updated once
// per key for all rows, dq of the rows accumulated locally and added once.
template <int HD>
void bwd_rows(const float* const qi[kR], const float* const doi[kR], float* const dqi[kR], const float* Di,
              const float* z, int nr, int i0, int j0, int nj, const float (*kt)[kBk], const float (*vt)[kBk],
              const float* k, int64_t ks, float (*dka)[kMaxHd], float (*dva)[kMaxHd], int hd, float scale,
              const int32_t* lo) {
  const int n = HD ? HD : hd;
  alignas(64) float p[kR][kBk], ds[kR][kBk];
  tile_scores<HD>(qi, nr, kt, p, hd);
  tile_scores<HD>(doi, nr, vt, ds, hd);
  const int jmax = probs_and_dscores(p, ds, z, Di, nr, i0, j0, nj, scale, scale, lo);
  float dqa[kR][HD ? HD : kMaxHd] = {};
  const float* q0 = qi[0];
  const float* q1 = nr > 1 ? qi[1] : q0;
  const float* q2 = nr > 2 ? qi[2] : q0;
  const float* q3 = nr > 3 ? qi[3] : q0;
  const float* o0 = doi[0];
  const float* o1 = nr > 1 ? doi[1] : o0;
  const float* o2 = nr > 2 ? doi[2] : o0;
  const float* o3 = nr > 3 ? doi[3] : o0;
  for (int j = 0; j < jmax; ++j) {
    const float p0 = p[0][j], p1 = p[1][j], p2 = p[2][j], p3 = p[3][j];
    const float s0 = ds[0][j], s1 = ds[1][j], s2 = ds[2][j], s3 = ds[3][j];
    const float* kj = k + int64_t(j) * ks;
    float* dvj = dva[j];
    float* dkj = dka[j];
#pragma omp simd
    for (int d = 0; d < n; ++d) {
      dvj[d] += p0 * o0[d] + p1 * o1[d] + p2 * o2[d] + p3 * o3[d];
      dkj[d] += s0 * q0[d] + s1 * q1[d] + s2 * q2[d] + s3 * q3[d];
      const float kd = kj[d];
      dqa[0][d] += s0 * kd;
      dqa[1][d] += s1 * kd;
      dqa[2][d] += s2 * kd;
      dqa[3][d] += s3 * kd;
    }
  }
  for (int r = 0; r < nr; ++r)
#pragma omp simd
    for (int d = 0; d < n; ++d) dqi[r][d] += dqa[r][d];
}

// Transposed copy of keys (or values) j0 .. j0+nj−1 of one head, zero-padded to kBk columns.
inline void load_tile_t(const float* x, int64_t stride, int nj, int hd, float (*t)[kBk]) {
  for (int j = 0; j < kBk; ++j) {
    const float* xj = x + int64_t(j) * stride;
    for (int d = 0; d < hd; ++d) t[d][j] = j < nj ? xj[d] : 0.0f;
  }
}

// Document masking: row b's document starts (nullptr without masking); the first key block a
// query block starting at i0 needs (earlier ones lie before every query's document); whether
// rows from i on see nothing of the key tile ending at j1 (doc_start is non-decreasing along a
// row, so every later row sees nothing of it either).
inline const int32_t* row_docs(const AttnShape& s, int b) { return s.doc_start ? s.doc_start + int64_t(b) * s.T : nullptr; }
inline int first_key_block(const int32_t* docs, int i0, int blk) { return docs ? docs[i0] / blk * blk : 0; }
inline bool masked_from(const int32_t* docs, int i, int j1) { return docs && docs[i] >= j1; }

// Forward tasks: one per (batch, head, block of kBq queries), dynamically scheduled;
// task(b, h, kv head, first query, end query).
template <class Task>
void for_each_query_block(const AttnShape& s, Task&& task) {
  const int B = s.B, H = s.H, T = s.T, group = s.H / s.KV, qblocks = (s.T + kBq - 1) / kBq;
#pragma omp parallel for schedule(dynamic, 1) collapse(3)
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h)
      for (int qb = 0; qb < qblocks; ++qb) task(b, h, h / group, qb * kBq, std::min(T, qb * kBq + kBq));
}

// Backward tasks: one per (batch, KV head); task(b, kv head).
template <class Task>
void for_each_kv_head(const AttnShape& s, Task&& task) {
  const int B = s.B, KV = s.KV;
#pragma omp parallel for schedule(dynamic, 1) collapse(2)
  for (int b = 0; b < B; ++b)
    for (int kvh = 0; kvh < KV; ++kvh) task(b, kvh);
}

// dK, dV of the nj rows of a key tile (row stride ks) from the tile accumulators.
inline void store_kv_grads(const float (*dka)[kMaxHd], const float (*dva)[kMaxHd], int nj, float* dk, float* dv,
                           int64_t ks, int hd) {
  for (int j = 0; j < nj; ++j) {
    std::memcpy(dk + int64_t(j) * ks, dka[j], sizeof(float) * size_t(hd));
    std::memcpy(dv + int64_t(j) * ks, dva[j], sizeof(float) * size_t(hd));
  }
}

// Output rows acc/l and their log-sum-exp m + log l, for n rows of one head.
inline void finish_rows(const float (*acc)[kMaxHd], const float* m, const float* l, int n, float* out, int64_t qs,
                        float* lse, int hd) {
  for (int i = 0; i < n; ++i) {
    const float inv = 1.0f / l[i];
    float* o = out + int64_t(i) * qs;
    for (int d = 0; d < hd; ++d) o[d] = acc[i][d] * inv;
    lse[i] = m[i] + std::log(l[i]);
  }
}

template <int HD>
void forward_impl(const float* q, const float* k, const float* v, float* out, float* lse, const AttnShape& s) {
  const int T = s.T, H = s.H, hd = s.hd;
  const int64_t qs = int64_t(H) * hd, ks = int64_t(s.KV) * hd;  // row strides
  const float scale = 1.0f / std::sqrt(float(hd));
  for_each_query_block(s, [&](int b, int h, int kvh, int i0, int i1) {
        alignas(64) float acc[kBq][kMaxHd];
        alignas(64) float kt[kMaxHd][kBk];
        alignas(64) float qsc[kBq][kMaxHd];  // the block's queries, pre-scaled by 1/√hd
        float m[kBq], l[kBq];
        for (int i = 0; i < i1 - i0; ++i) {
          m[i] = -std::numeric_limits<float>::infinity();
          l[i] = 0.0f;
          std::memset(acc[i], 0, sizeof(float) * size_t(hd));
          const float* qi = q + (int64_t(b) * T + i0 + i) * qs + int64_t(h) * hd;
          for (int d = 0; d < hd; ++d) qsc[i][d] = qi[d] * scale;
        }
        const float* kbase = k + int64_t(b) * T * ks + int64_t(kvh) * hd;
        const float* vbase = v + int64_t(b) * T * ks + int64_t(kvh) * hd;
        const int32_t* docs = row_docs(s, b);
        for (int j0 = first_key_block(docs, i0, kBk); j0 < i1; j0 += kBk) {
          const int nj = std::min(kBk, i1 - j0);
          load_tile_t(kbase + int64_t(j0) * ks, ks, nj, hd, kt);
          for (int i = std::max(i0, j0); i < i1; i += kR) {
            const int nr = std::min(kR, i1 - i);
            if (masked_from(docs, i, j0 + nj)) continue;
            const float* rows[kR];
            for (int r = 0; r < kR; ++r) rows[r] = qsc[i - i0 + std::min(r, nr - 1)];
            fwd_rows<HD>(rows, nr, i, j0, nj, kt, vbase + int64_t(j0) * ks, ks, acc + (i - i0), m + (i - i0),
                         l + (i - i0), hd, docs ? docs + i : nullptr);
          }
        }
        finish_rows(acc, m, l, i1 - i0, out + (int64_t(b) * T + i0) * qs + int64_t(h) * hd, qs,
                    lse + (int64_t(b) * H + h) * T + i0, hd);
      });
}

// Key-block outer loop: one task per (batch, KV head) owns dk/dv of that head and dq of its
// query heads, so no two threads write one element and every sum runs in a fixed order
// (deterministic for any thread count).
template <int HD>
void backward_impl(const float* q, const float* k, const float* v, const float* out, const float* dout,
                   const float* lse, float* dq, float* dk, float* dv, const AttnShape& s) {
  const int T = s.T, H = s.H, KV = s.KV, hd = s.hd;
  const int group = H / KV;
  const int64_t qs = int64_t(H) * hd, ks = int64_t(KV) * hd;
  const float scale = 1.0f / std::sqrt(float(hd));
  for_each_kv_head(s, [&](int b, int kvh) {
      alignas(64) float kt[kMaxHd][kBk], vt[kMaxHd][kBk];
      alignas(64) float dka[kBk][kMaxHd], dva[kBk][kMaxHd];
      for (int h = kvh * group; h < (kvh + 1) * group; ++h)
        for (int i = 0; i < T; ++i)
          std::memset(dq + (int64_t(b) * T + i) * qs + int64_t(h) * hd, 0, sizeof(float) * size_t(hd));
      const float* kbase = k + int64_t(b) * T * ks + int64_t(kvh) * hd;
      const float* vbase = v + int64_t(b) * T * ks + int64_t(kvh) * hd;
      const int32_t* docs = row_docs(s, b);
      for (int j0 = 0; j0 < T; j0 += kBk) {
        const int nj = std::min(kBk, T - j0);
        load_tile_t(kbase + int64_t(j0) * ks, ks, nj, hd, kt);
        load_tile_t(vbase + int64_t(j0) * ks, ks, nj, hd, vt);
        for (int j = 0; j < nj; ++j) {
          std::memset(dka[j], 0, sizeof(float) * size_t(hd));
          std::memset(dva[j], 0, sizeof(float) * size_t(hd));
        }
        for (int h = kvh * group; h < (kvh + 1) * group; ++h)
          for (int i = j0; i < T; i += kR) {
            const int nr = std::min(kR, T - i);
            if (masked_from(docs, i, j0 + nj)) break;
            const float* qi[kR];
            const float* doi[kR];
            float* dqi[kR];
            float Di[kR], z[kR];
            for (int r = 0; r < kR; ++r) {
              const int64_t qo = (int64_t(b) * T + i + std::min(r, nr - 1)) * qs + int64_t(h) * hd;
              qi[r] = q + qo;
              doi[r] = dout + qo;
              dqi[r] = dq + qo;
              Di[r] = dot(doi[r], out + qo, hd);
              z[r] = lse[(int64_t(b) * H + h) * T + i + std::min(r, nr - 1)];
            }
            bwd_rows<HD>(qi, doi, dqi, Di, z, nr, i, j0, nj, kt, vt, kbase + int64_t(j0) * ks, ks, dka, dva, hd,
                         scale, docs ? docs + i : nullptr);
          }
        const int64_t ko = (int64_t(b) * T + j0) * ks + int64_t(kvh) * hd;
        store_kv_grads(dka, dva, nj, dk + ko, dv + ko, ks, hd);
      }
    });
}
// ---- bf16 compute (AVX512_BF16) ------------------------------------------------------------
// The same tiling as above; every inner product runs as vdpbf16ps (pairs of bf16 products
// summed into fp32 lanes), operands packed as attention_words.h describes. Scores, softmax
// statistics, D, P/dS before rounding and all accumulators stay fp32.
#if defined(__AVX512BF16__)
// sc[r][j] = Σ_p x_r[p] · kt[p][j] over np word pairs (rows r ≥ nr may repeat or be zero).
inline void tile_scores_bf16(const uint32_t* const x[kR], const uint32_t (*kt)[kBk], float (*sc)[kBk], int np) {
  const int n = np;
  __m512 a[kR][4];
  for (int r = 0; r < kR; ++r)
    for (int c = 0; c < 4; ++c) a[r][c] = _mm512_setzero_ps();
  for (int p = 0; p < n; ++p) {
    const __m512bh k0 = load_bh(kt[p]), k1 = load_bh(kt[p] + 16), k2 = load_bh(kt[p] + 32),
                   k3 = load_bh(kt[p] + 48);
    for (int r = 0; r < kR; ++r) {
      const __m512bh xb = bcast_word(x[r][p]);
      a[r][0] = _mm512_dpbf16_ps(a[r][0], xb, k0);
      a[r][1] = _mm512_dpbf16_ps(a[r][1], xb, k1);
      a[r][2] = _mm512_dpbf16_ps(a[r][2], xb, k2);
      a[r][3] = _mm512_dpbf16_ps(a[r][3], xb, k3);
    }
  }
  for (int r = 0; r < kR; ++r)
    for (int c = 0; c < 4; ++c) _mm512_store_ps(sc[r] + 16 * c, a[r][c]);
}

// acc[r][chunks c0 .. c0+G) = corr[r]·acc + Σ_j P[r][j]·v_j over npairs key pairs.
template <int G>
void pv_group(const uint32_t (*pw)[kBk / 2], int npairs, const uint32_t (*vp)[kMaxHd], float (*acc)[kMaxHd],
              const float* corr, int nr, int c0) {
  __m512 a[kR][G];
  for (int r = 0; r < kR; ++r)
    for (int c = 0; c < G; ++c)
      a[r][c] = r < nr ? _mm512_mul_ps(_mm512_load_ps(acc[r] + 16 * (c0 + c)), _mm512_set1_ps(corr[r]))
                       : _mm512_setzero_ps();
  for (int jp = 0; jp < npairs; ++jp) {
    const __m512bh p0 = bcast_word(pw[0][jp]), p1 = bcast_word(pw[1][jp]), p2 = bcast_word(pw[2][jp]),
                   p3 = bcast_word(pw[3][jp]);
    for (int c = 0; c < G; ++c) {
      const __m512bh vv = load_bh(vp[jp] + 16 * (c0 + c));
      a[0][c] = _mm512_dpbf16_ps(a[0][c], p0, vv);
      a[1][c] = _mm512_dpbf16_ps(a[1][c], p1, vv);
      a[2][c] = _mm512_dpbf16_ps(a[2][c], p2, vv);
      a[3][c] = _mm512_dpbf16_ps(a[3][c], p3, vv);
    }
  }
  for (int r = 0; r < nr; ++r)
    for (int c = 0; c < G; ++c) _mm512_store_ps(acc[r] + 16 * (c0 + c), a[r][c]);
}

void fwd_rows_bf16(const uint32_t* const qw[kR], int nr, int i0, int j0, int nj, const uint32_t (*kt)[kBk],
                   const uint32_t (*vp)[kMaxHd], float (*acc)[kMaxHd], float* m, float* l, int hd, const int32_t* lo) {
  const int hdp = round16(hd);
  alignas(64) float sc[kR][kBk];
  tile_scores_bf16(qw, kt, sc, hdp / 2);
  float corr[kR];
  const int jmax = softmax_update(sc, nr, i0, j0, nj, m, l, corr, lo);
  alignas(64) uint32_t pw[kR][kBk / 2];
  for (int r = 0; r < kR; ++r) row_words(sc[r], r < nr ? kBk : 0, kBk, pw[r]);
  const int npairs = (jmax + 1) / 2, nc = hdp / 16;
  for (int c0 = 0; c0 < nc; c0 += 4) switch (std::min(4, nc - c0)) {
      case 1: pv_group<1>(pw, npairs, vp, acc, corr, nr, c0); break;
      case 2: pv_group<2>(pw, npairs, vp, acc, corr, nr, c0); break;
      case 3: pv_group<3>(pw, npairs, vp, acc, corr, nr, c0); break;
      default: pv_group<4>(pw, npairs, vp, acc, corr, nr, c0); break;
    }
}

void forward_bf16_impl(const float* q, const float* k, const float* v, float* out, float* lse, const AttnShape& s) {
  const int T = s.T, H = s.H, hd = s.hd, hdp = round16(hd);
  const int64_t qs = int64_t(H) * hd, ks = int64_t(s.KV) * hd;
  const float scale = 1.0f / std::sqrt(float(hd));
  for_each_query_block(s, [&](int b, int h, int kvh, int i0, int i1) {
        alignas(64) float acc[kBq][kMaxHd];
        alignas(64) uint32_t qw[kBq][kMaxHd / 2];  // queries pre-scaled by 1/√hd, row words
        alignas(64) uint32_t kt[kMaxHd / 2][kBk];
        alignas(64) uint32_t vp[kBk / 2][kMaxHd];
        alignas(64) float tmp[kMaxHd];
        float m[kBq], l[kBq];
        for (int i = 0; i < i1 - i0; ++i) {
          m[i] = -std::numeric_limits<float>::infinity();
          l[i] = 0.0f;
          std::memset(acc[i], 0, sizeof(float) * size_t(hdp));
          const float* qi = q + (int64_t(b) * T + i0 + i) * qs + int64_t(h) * hd;
          for (int d = 0; d < hd; ++d) tmp[d] = qi[d] * scale;
          row_words(tmp, hd, hdp, qw[i]);
        }
        const float* kbase = k + int64_t(b) * T * ks + int64_t(kvh) * hd;
        const float* vbase = v + int64_t(b) * T * ks + int64_t(kvh) * hd;
        const int32_t* docs = row_docs(s, b);
        for (int j0 = first_key_block(docs, i0, kBk); j0 < i1; j0 += kBk) {
          const int nj = std::min(kBk, i1 - j0);
          pack_transposed(kbase + int64_t(j0) * ks, ks, nj, hd, hdp, kt);
          pack_key_pairs(vbase + int64_t(j0) * ks, ks, nj, hd, hdp, vp[0], kMaxHd);
          for (int i = std::max(i0, j0); i < i1; i += kR) {
            const int nr = std::min(kR, i1 - i);
            if (masked_from(docs, i, j0 + nj)) continue;
            const uint32_t* rows[kR];
            for (int r = 0; r < kR; ++r) rows[r] = qw[i - i0 + std::min(r, nr - 1)];
            fwd_rows_bf16(rows, nr, i, j0, nj, kt, vp, acc + (i - i0), m + (i - i0), l + (i - i0), hd,
                          docs ? docs + i : nullptr);
          }
        }
        finish_rows(acc, m, l, i1 - i0, out + (int64_t(b) * T + i0) * qs + int64_t(h) * hd, qs,
                    lse + (int64_t(b) * H + h) * T + i0, hd);
      });
}

// Operands of one 4-row block against one key tile, already in bf16 words.
struct BwdWords {
  uint32_t p01[kBk], p23[kBk], s01[kBk], s23[kBk];  // row pairs (P, dS) per key: dV, dK
  uint32_t sw[kR][kBk / 2];                         // dS rows as key pairs: dQ
};

// dV, dK rows of the tile and dq of the 4 rows for head-dim chunks c0 .. c0+G; qp/op are the
// block's two query/dO row pairs (stride hdp words).
template <int G>
void bwd_group(const BwdWords& w, int npairs, const uint32_t* qp, const uint32_t* op, int hdp,
               const uint32_t (*kp)[kMaxHd], float (*dka)[kMaxHd], float (*dva)[kMaxHd], float* const dqi[kR], int nr,
               int hd, int c0) {
  __m512 dq[kR][G];
  for (int r = 0; r < kR; ++r)
    for (int c = 0; c < G; ++c) dq[r][c] = _mm512_setzero_ps();
  for (int jp = 0; jp < npairs; ++jp) {
    const int j = 2 * jp;
    const __m512bh pa0 = bcast_word(w.p01[j]), pb0 = bcast_word(w.p23[j]), pa1 = bcast_word(w.p01[j + 1]),
                   pb1 = bcast_word(w.p23[j + 1]);
    const __m512bh sa0 = bcast_word(w.s01[j]), sb0 = bcast_word(w.s23[j]), sa1 = bcast_word(w.s01[j + 1]),
                   sb1 = bcast_word(w.s23[j + 1]);
    const __m512bh d0 = bcast_word(w.sw[0][jp]), d1 = bcast_word(w.sw[1][jp]), d2 = bcast_word(w.sw[2][jp]),
                   d3 = bcast_word(w.sw[3][jp]);
    for (int c = 0; c < G; ++c) {
      const int off = 16 * (c0 + c);
      const __m512bh q0 = load_bh(qp + off), q1 = load_bh(qp + hdp + off);
      const __m512bh o0 = load_bh(op + off), o1 = load_bh(op + hdp + off);
      _mm512_store_ps(dva[j] + off,
                      _mm512_dpbf16_ps(_mm512_dpbf16_ps(_mm512_load_ps(dva[j] + off), pa0, o0), pb0, o1));
      _mm512_store_ps(dva[j + 1] + off,
                      _mm512_dpbf16_ps(_mm512_dpbf16_ps(_mm512_load_ps(dva[j + 1] + off), pa1, o0), pb1, o1));
      _mm512_store_ps(dka[j] + off,
                      _mm512_dpbf16_ps(_mm512_dpbf16_ps(_mm512_load_ps(dka[j] + off), sa0, q0), sb0, q1));
      _mm512_store_ps(dka[j + 1] + off,
                      _mm512_dpbf16_ps(_mm512_dpbf16_ps(_mm512_load_ps(dka[j + 1] + off), sa1, q0), sb1, q1));
      const __m512bh kv = load_bh(kp[jp] + off);
      dq[0][c] = _mm512_dpbf16_ps(dq[0][c], d0, kv);
      dq[1][c] = _mm512_dpbf16_ps(dq[1][c], d1, kv);
      dq[2][c] = _mm512_dpbf16_ps(dq[2][c], d2, kv);
      dq[3][c] = _mm512_dpbf16_ps(dq[3][c], d3, kv);
    }
  }
  for (int r = 0; r < nr; ++r)
    for (int c = 0; c < G; ++c) {
      const int off = 16 * (c0 + c);
      if (off >= hd) break;
      const __mmask16 m = hd - off >= 16 ? __mmask16(0xffff) : __mmask16((1u << (hd - off)) - 1);
      _mm512_mask_storeu_ps(dqi[r] + off, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, dqi[r] + off), dq[r][c]));
    }
}

// qw/ow: the block's 4 query/dO rows as row words (stride hdp/2); qp/op: its 2 row pairs.
void bwd_rows_bf16(const uint32_t* qw, const uint32_t* ow, const uint32_t* qp, const uint32_t* op,
                   float* const dqi[kR], const float* Di, const float* z, int nr, int i0, int j0, int nj,
                   const uint32_t (*kt)[kBk], const uint32_t (*vt)[kBk], const uint32_t (*kp)[kMaxHd],
                   float (*dka)[kMaxHd], float (*dva)[kMaxHd], int hd, float scale, const int32_t* lo) {
  const int hdp = round16(hd), np = hdp / 2;
  alignas(64) float p[kR][kBk], ds[kR][kBk];
  const uint32_t* const qr[kR] = {qw, qw + np, qw + 2 * np, qw + 3 * np};
  const uint32_t* const orr[kR] = {ow, ow + np, ow + 2 * np, ow + 3 * np};
  tile_scores_bf16(qr, kt, p, np);
  tile_scores_bf16(orr, vt, ds, np);
  // Scores from the pre-scaled, bf16-rounded q: the same P the forward normalised.
  const int jmax = probs_and_dscores(p, ds, z, Di, nr, i0, j0, nj, 1.0f, scale, lo);
  alignas(64) BwdWords w;
  pair_words(p[0], p[1], kBk, kBk, w.p01);
  pair_words(p[2], p[3], kBk, kBk, w.p23);
  pair_words(ds[0], ds[1], kBk, kBk, w.s01);
  pair_words(ds[2], ds[3], kBk, kBk, w.s23);
  for (int r = 0; r < kR; ++r) row_words(ds[r], kBk, kBk, w.sw[r]);
  const int npairs = (jmax + 1) / 2, nc = hdp / 16;
  for (int c0 = 0; c0 < nc; c0 += 4) switch (std::min(4, nc - c0)) {
      case 1: bwd_group<1>(w, npairs, qp, op, hdp, kp, dka, dva, dqi, nr, hd, c0); break;
      case 2: bwd_group<2>(w, npairs, qp, op, hdp, kp, dka, dva, dqi, nr, hd, c0); break;
      case 3: bwd_group<3>(w, npairs, qp, op, hdp, kp, dka, dva, dqi, nr, hd, c0); break;
      default: bwd_group<4>(w, npairs, qp, op, hdp, kp, dka, dva, dqi, nr, hd, c0); break;
    }
}

// backward_bf16_impl's per-thread buffers: the group's queries and dO in bf16, as row words and
// as row pairs (T4·np words per head each), and D = rowsum(dO∘O), lse per row.
struct Bf16Scratch {
  size_t words, floats;
};
inline Bf16Scratch bf16_backward_scratch(const AttnShape& s) {
  const size_t group = size_t(s.H / s.KV), T4 = size_t(s.T + kR - 1) / kR * kR, np = size_t(round16(s.hd)) / 2;
  return {4 * group * T4 * np, 2 * group * T4};
}

void backward_bf16_impl(const float* q, const float* k, const float* v, const float* out, const float* dout,
                        const float* lse, float* dq, float* dk, float* dv, const AttnShape& s) {
  const int T = s.T, H = s.H, KV = s.KV, hd = s.hd, hdp = round16(hd), np = hdp / 2;
  const int group = H / KV;
  const int T4 = (T + kR - 1) / kR * kR;  // rows padded (with zeros) to whole 4-row blocks
  const int64_t qs = int64_t(H) * hd, ks = int64_t(KV) * hd;
  const float scale = 1.0f / std::sqrt(float(hd));
  for_each_kv_head(s, [&](int b, int kvh) {
      alignas(64) uint32_t kt[kMaxHd / 2][kBk], vt[kMaxHd / 2][kBk];
      alignas(64) uint32_t kp[kBk / 2][kMaxHd];
      alignas(64) float dka[kBk][kMaxHd], dva[kBk][kMaxHd];
      alignas(64) float qscaled[kMaxHd];
      // Per-thread buffers (bf16_backward_scratch), grown once and reused (no allocation or
      // page fault per step).
      const size_t hw = size_t(T4) * size_t(np);
      thread_local std::vector<uint32_t> words;
      thread_local std::vector<float> rowstats;
      const Bf16Scratch need = bf16_backward_scratch(s);
      if (words.size() < need.words) words.resize(need.words);
      if (rowstats.size() < need.floats) rowstats.resize(need.floats);
      uint32_t* qw = words.data();
      uint32_t* ow = qw + group * hw;
      uint32_t* qp = ow + group * hw;
      uint32_t* op = qp + group * hw;
      float* Dv = rowstats.data();
      float* zv = Dv + size_t(group) * T4;
      std::fill(Dv, Dv + 2 * size_t(group) * T4, 0.0f);
      for (int g = 0; g < group; ++g) {
        const int h = kvh * group + g;
        for (int i = 0; i < T4; ++i) {
          const int64_t qo = (int64_t(b) * T + i) * qs + int64_t(h) * hd;
          if (i < T)  // the scores' operand: q·(1/√hd) rounded to bf16, exactly as the forward
            for (int d = 0; d < hd; ++d) qscaled[d] = q[qo + d] * scale;
          row_words(i < T ? qscaled : nullptr, i < T ? hd : 0, hdp, &qw[g * hw + size_t(i) * np]);
          row_words(i < T ? dout + qo : nullptr, i < T ? hd : 0, hdp, &ow[g * hw + size_t(i) * np]);
          if (i % 2 == 0) {
            const bool second = i + 1 < T;
            pair_words(i < T ? q + qo : nullptr, second ? q + qo + qs : nullptr, hd, hdp,
                       &qp[g * hw + size_t(i / 2) * hdp]);
            pair_words(i < T ? dout + qo : nullptr, second ? dout + qo + qs : nullptr, hd, hdp,
                       &op[g * hw + size_t(i / 2) * hdp]);
          }
          if (i < T) {
            Dv[size_t(g) * T4 + i] = dot(dout + qo, out + qo, hd);
            zv[size_t(g) * T4 + i] = lse[(int64_t(b) * H + h) * T + i];
            std::memset(dq + qo, 0, sizeof(float) * size_t(hd));
          }
        }
      }
      const float* kbase = k + int64_t(b) * T * ks + int64_t(kvh) * hd;
      const float* vbase = v + int64_t(b) * T * ks + int64_t(kvh) * hd;
      const int32_t* docs = row_docs(s, b);
      for (int j0 = 0; j0 < T; j0 += kBk) {
        const int nj = std::min(kBk, T - j0);
        pack_transposed(kbase + int64_t(j0) * ks, ks, nj, hd, hdp, kt);
        pack_transposed(vbase + int64_t(j0) * ks, ks, nj, hd, hdp, vt);
        pack_key_pairs(kbase + int64_t(j0) * ks, ks, nj, hd, hdp, kp[0], kMaxHd);
        for (int j = 0; j < kBk; ++j) {
          std::memset(dka[j], 0, sizeof(float) * size_t(hdp));
          std::memset(dva[j], 0, sizeof(float) * size_t(hdp));
        }
        for (int g = 0; g < group; ++g) {
          const int h = kvh * group + g;
          for (int i = j0; i < T; i += kR) {
            const int nr = std::min(kR, T - i);
            if (masked_from(docs, i, j0 + nj)) break;
            float* dqi[kR];
            for (int r = 0; r < kR; ++r)
              dqi[r] = dq + (int64_t(b) * T + i + std::min(r, nr - 1)) * qs + int64_t(h) * hd;
            const size_t rw = g * hw + size_t(i) * np, pw = g * hw + size_t(i / 2) * hdp;
            bwd_rows_bf16(&qw[rw], &ow[rw], &qp[pw], &op[pw], dqi, &Dv[size_t(g) * T4 + i],
                              &zv[size_t(g) * T4 + i], nr, i, j0, nj, kt, vt, kp, dka, dva, hd, scale,
                              docs ? docs + i : nullptr);
          }
        }
        const int64_t ko = (int64_t(b) * T + j0) * ks + int64_t(kvh) * hd;
        store_kv_grads(dka, dva, nj, dk + ko, dv + ko, ks, hd);
      }
    });
}
#endif  // __AVX512BF16__
}  // namespace

// The tiles live on the stack, sized for head dimensions up to kMaxHd.
static void check_shape(const AttnShape& s) {
  LT_CHECK(s.hd >= 1 && s.hd <= kMaxHd && s.H >= 1 && s.KV >= 1 && s.H % s.KV == 0 && s.B >= 0 && s.T >= 0,
           "attention: unsupported shape (head dim {} must be 1..{}, heads {} a multiple of KV heads {})", s.hd,
           kMaxHd, s.H, s.KV);
}

// Head sizes that are whole AVX-512 vectors (16 .. 128: every Llama model's) take the tiled
// kernels of attention_tiled.cpp; the kernels in this file are the generic path for any other
// size (and for builds without AVX-512, where the common sizes get compile-time trip counts).
void attention_forward(const float* q, const float* k, const float* v, float* out, float* lse, const AttnShape& s) {
  check_shape(s);
  if (tiled::supported(s, false)) return tiled::forward(q, k, v, out, lse, s);
  switch (s.hd) {
    case 32: return forward_impl<32>(q, k, v, out, lse, s);
    case 48: return forward_impl<48>(q, k, v, out, lse, s);
    case 64: return forward_impl<64>(q, k, v, out, lse, s);
    case 128: return forward_impl<128>(q, k, v, out, lse, s);
    default: return forward_impl<0>(q, k, v, out, lse, s);
  }
}

void attention_backward(const float* q, const float* k, const float* v, const float* out, const float* dout,
                        const float* lse, float* dq, float* dk, float* dv, const AttnShape& s) {
  check_shape(s);
  if (tiled::supported(s, false)) return tiled::backward(q, k, v, out, dout, lse, dq, dk, dv, s);
  switch (s.hd) {
    case 32: return backward_impl<32>(q, k, v, out, dout, lse, dq, dk, dv, s);
    case 48: return backward_impl<48>(q, k, v, out, dout, lse, dq, dk, dv, s);
    case 64: return backward_impl<64>(q, k, v, out, dout, lse, dq, dk, dv, s);
    case 128: return backward_impl<128>(q, k, v, out, dout, lse, dq, dk, dv, s);
    default: return backward_impl<0>(q, k, v, out, dout, lse, dq, dk, dv, s);
  }
}

size_t attention_backward_scratch_bytes(const AttnShape& s, bool bf16) {
  if (tiled::supported(s, bf16)) return tiled::backward_scratch_bytes(s, bf16);
#if defined(__AVX512BF16__)
  if (bf16) {
    const Bf16Scratch n = bf16_backward_scratch(s);
    return n.words * sizeof(uint32_t) + n.floats * sizeof(float);
  }
#else
  if (bf16) return attention_backward_scratch_bytes(s, false);  // the fp32 kernels run
#endif
  return 0;  // the generic fp32 backward keeps its tiles on the stack
}

// bf16 compute: the tiled kernels for head sizes that are whole vectors, the generic ones
// below otherwise; a build without AVX512_BF16 code generation (LLAMATRAIN_NATIVE=OFF on a
// compiler default without it) runs the fp32 kernels instead.
void attention_forward_bf16(const float* q, const float* k, const float* v, float* out, float* lse,
                            const AttnShape& s) {
  check_shape(s);
  if (tiled::supported(s, true)) return tiled::forward_bf16(q, k, v, out, lse, s);
#if defined(__AVX512BF16__)
  forward_bf16_impl(q, k, v, out, lse, s);
#else
  attention_forward(q, k, v, out, lse, s);
#endif
}

void attention_backward_bf16(const float* q, const float* k, const float* v, const float* out, const float* dout,
                             const float* lse, float* dq, float* dk, float* dv, const AttnShape& s) {
  check_shape(s);
  if (tiled::supported(s, true)) return tiled::backward_bf16(q, k, v, out, dout, lse, dq, dk, dv, s);
#if defined(__AVX512BF16__)
  backward_bf16_impl(q, k, v, out, dout, lse, dq, dk, dv, s);
#else
  attention_backward(q, k, v, out, dout, lse, dq, dk, dv, s);
#endif
}

void attention_forward_ref(const float* q, const float* k, const float* v, float* out, float* lse,
                           const AttnShape& s) {
  const int B = s.B, T = s.T, H = s.H, KV = s.KV, hd = s.hd;
  const int64_t qs = int64_t(H) * hd, ks = int64_t(KV) * hd;
  const double scale = 1.0 / std::sqrt(double(hd));
  std::vector<double> sc(static_cast<size_t>(T));
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h) {
      int kvh = h / (H / KV);
      for (int i = 0; i < T; ++i) {
        const int j0 = s.doc_start ? s.doc_start[int64_t(b) * T + i] : 0;  // the document's first key
        double mx = -1e300;
        for (int j = j0; j <= i; ++j) {
          double d = 0;
          for (int e = 0; e < hd; ++e)
            d += double(q[(int64_t(b) * T + i) * qs + h * hd + e]) * k[(int64_t(b) * T + j) * ks + kvh * hd + e];
          sc[j] = d * scale;
          mx = std::max(mx, sc[j]);
        }
        double sum = 0;
        for (int j = j0; j <= i; ++j) sum += std::exp(sc[j] - mx);
        for (int e = 0; e < hd; ++e) {
          double o = 0;
          for (int j = j0; j <= i; ++j) o += std::exp(sc[j] - mx) / sum * v[(int64_t(b) * T + j) * ks + kvh * hd + e];
          out[(int64_t(b) * T + i) * qs + h * hd + e] = float(o);
        }
        lse[(int64_t(b) * H + h) * T + i] = float(mx + std::log(sum));
      }
    }
}

void attention_backward_ref(const float* q, const float* k, const float* v, const float* dout, float* dq, float* dk,
                            float* dv, const AttnShape& s) {
  const int B = s.B, T = s.T, H = s.H, KV = s.KV, hd = s.hd;
  const int64_t qs = int64_t(H) * hd, ks = int64_t(KV) * hd;
  const double scale = 1.0 / std::sqrt(double(hd));
  std::fill(dq, dq + int64_t(B) * T * qs, 0.0f);
  std::fill(dk, dk + int64_t(B) * T * ks, 0.0f);
  std::fill(dv, dv + int64_t(B) * T * ks, 0.0f);
  std::vector<double> p(static_cast<size_t>(T)), dp(static_cast<size_t>(T));
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h) {
      int kvh = h / (H / KV);
      for (int i = 0; i < T; ++i) {
        const float* qi = q + (int64_t(b) * T + i) * qs + h * hd;
        const float* doi = dout + (int64_t(b) * T + i) * qs + h * hd;
        const int j0 = s.doc_start ? s.doc_start[int64_t(b) * T + i] : 0;
        double mx = -1e300;
        for (int j = j0; j <= i; ++j) {
          double d = 0;
          for (int e = 0; e < hd; ++e) d += double(qi[e]) * k[(int64_t(b) * T + j) * ks + kvh * hd + e];
          p[j] = d * scale;
          mx = std::max(mx, p[j]);
        }
        double sum = 0;
        for (int j = j0; j <= i; ++j) sum += (p[j] = std::exp(p[j] - mx));
        double pdp = 0;
        for (int j = j0; j <= i; ++j) {
          p[j] /= sum;
          double d = 0;
          for (int e = 0; e < hd; ++e) d += double(doi[e]) * v[(int64_t(b) * T + j) * ks + kvh * hd + e];
          dp[j] = d;
          pdp += p[j] * d;
        }
        for (int j = j0; j <= i; ++j) {
          double ds = p[j] * (dp[j] - pdp) * scale;
          for (int e = 0; e < hd; ++e) {
            int64_t ko = (int64_t(b) * T + j) * ks + kvh * hd + e;
            dv[ko] += float(p[j] * doi[e]);
            dq[(int64_t(b) * T + i) * qs + h * hd + e] += float(ds * k[ko]);
            dk[ko] += float(ds * qi[e]);
          }
        }
      }
    }
}

}  // namespace lt::cpu
