#include "kernels/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

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

// Forward of query rows i0 .. i0+nr−1 against one key block (online softmax update).
template <int HD>
void fwd_rows(const float* const qi[kR], int nr, int i0, int j0, int nj, const float (*kt)[kBk], const float* v,
              int64_t ks, float (*acc)[kMaxHd], float* m, float* l, int hd) {
  const int n = HD ? HD : hd;
  alignas(64) float sc[kR][kBk];
  tile_scores<HD>(qi, nr, kt, sc, hd);  // q already carries the 1/√hd scale
  float corr[kR];
  int jmax = 0;
  for (int r = 0; r < nr; ++r) {
    const int jn = std::min(nj, i0 + r - j0 + 1);  // causal: keys j0 .. i
    jmax = std::max(jmax, jn);
    float* row = sc[r];
    float mx = m[r];
#pragma omp simd aligned(row : 64) reduction(max : mx)
    for (int j = 0; j < kBk; ++j) {
      row[j] = j < jn ? row[j] : -std::numeric_limits<float>::infinity();
      mx = std::max(mx, row[j]);
    }
    corr[r] = std::exp(m[r] - mx);
    exp_shift_scale(row, kBk, mx, 1.0f);
    float sum = 0.0f;
#pragma omp simd aligned(row : 64) reduction(+ : sum)
    for (int j = 0; j < kBk; ++j) sum += row[j];
    l[r] = l[r] * corr[r] + sum;
    m[r] = mx;
  }
#if defined(__AVX512F__)
  if constexpr (HD > 0 && HD % 16 == 0 && HD <= 64) {
    // The 4 rows' output accumulators stay in registers across the key loop.
    constexpr int V = HD / 16;
    __m512 a[kR][V];
    for (int r = 0; r < kR; ++r)
      for (int c = 0; c < V; ++c)
        a[r][c] = _mm512_mul_ps(_mm512_load_ps(acc[std::min(r, nr - 1)] + 16 * c), _mm512_set1_ps(corr[std::min(r, nr - 1)]));
    for (int j = 0; j < jmax; ++j) {
      const float* vj = v + int64_t(j) * ks;
      const __m512 p0 = _mm512_set1_ps(sc[0][j]), p1 = _mm512_set1_ps(nr > 1 ? sc[1][j] : 0.0f),
                   p2 = _mm512_set1_ps(nr > 2 ? sc[2][j] : 0.0f), p3 = _mm512_set1_ps(nr > 3 ? sc[3][j] : 0.0f);
      for (int c = 0; c < V; ++c) {
        const __m512 vv = _mm512_loadu_ps(vj + 16 * c);
        a[0][c] = _mm512_fmadd_ps(p0, vv, a[0][c]);
        a[1][c] = _mm512_fmadd_ps(p1, vv, a[1][c]);
        a[2][c] = _mm512_fmadd_ps(p2, vv, a[2][c]);
        a[3][c] = _mm512_fmadd_ps(p3, vv, a[3][c]);
      }
    }
    for (int r = 0; r < nr; ++r)
      for (int c = 0; c < V; ++c) _mm512_store_ps(acc[r] + 16 * c, a[r][c]);
    return;
  }
#endif
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
              const float* k, int64_t ks, float (*dka)[kMaxHd], float (*dva)[kMaxHd], int hd, float scale) {
  const int n = HD ? HD : hd;
  alignas(64) float p[kR][kBk], ds[kR][kBk];
  tile_scores<HD>(qi, nr, kt, p, hd);
  tile_scores<HD>(doi, nr, vt, ds, hd);
  int jmax = 0;
  for (int r = 0; r < nr; ++r) {
    const int jn = std::min(nj, i0 + r - j0 + 1);
    jmax = std::max(jmax, jn);
    float* pr = p[r];
    float* dr = ds[r];
#pragma omp simd aligned(pr : 64)
    for (int j = 0; j < kBk; ++j) pr[j] = j < jn ? pr[j] * scale - z[r] : -std::numeric_limits<float>::infinity();
    exp_inplace(pr, kBk);
#pragma omp simd aligned(pr, dr : 64)
    for (int j = 0; j < kBk; ++j) dr[j] = pr[j] * (dr[j] - Di[r]) * scale;
  }
  for (int r = nr; r < kR; ++r)
    for (int j = 0; j < kBk; ++j) p[r][j] = ds[r][j] = 0.0f;
  float dqa[kR][HD ? HD : kMaxHd] = {};
  const float* q0 = qi[0];
  const float* q1 = nr > 1 ? qi[1] : q0;
  const float* q2 = nr > 2 ? qi[2] : q0;
  const float* q3 = nr > 3 ? qi[3] : q0;
  const float* o0 = doi[0];
  const float* o1 = nr > 1 ? doi[1] : o0;
  const float* o2 = nr > 2 ? doi[2] : o0;
  const float* o3 = nr > 3 ? doi[3] : o0;
#if defined(__AVX512F__)
  if constexpr (HD > 0 && HD % 16 == 0 && HD <= 64) {
    // dq of the 4 rows stays in registers across the key loop.
    constexpr int V = HD / 16;
    __m512 dqr[kR][V], qv[kR][V], ov[kR][V];
    for (int c = 0; c < V; ++c) {
      for (int r = 0; r < kR; ++r) {
        dqr[r][c] = _mm512_setzero_ps();
        qv[r][c] = _mm512_loadu_ps(qi[std::min(r, nr - 1)] + 16 * c);
        ov[r][c] = _mm512_loadu_ps(doi[std::min(r, nr - 1)] + 16 * c);
      }
    }
    for (int j = 0; j < jmax; ++j) {
      const __m512 p0 = _mm512_set1_ps(p[0][j]), p1 = _mm512_set1_ps(p[1][j]), p2 = _mm512_set1_ps(p[2][j]),
                   p3 = _mm512_set1_ps(p[3][j]);
      const __m512 s0 = _mm512_set1_ps(ds[0][j]), s1 = _mm512_set1_ps(ds[1][j]), s2 = _mm512_set1_ps(ds[2][j]),
                   s3 = _mm512_set1_ps(ds[3][j]);
      const float* kj = k + int64_t(j) * ks;
      for (int c = 0; c < V; ++c) {
        __m512 dvv = _mm512_load_ps(dva[j] + 16 * c);
        dvv = _mm512_fmadd_ps(p0, ov[0][c], dvv);
        dvv = _mm512_fmadd_ps(p1, ov[1][c], dvv);
        dvv = _mm512_fmadd_ps(p2, ov[2][c], dvv);
        dvv = _mm512_fmadd_ps(p3, ov[3][c], dvv);
        _mm512_store_ps(dva[j] + 16 * c, dvv);
        __m512 dkv = _mm512_load_ps(dka[j] + 16 * c);
        dkv = _mm512_fmadd_ps(s0, qv[0][c], dkv);
        dkv = _mm512_fmadd_ps(s1, qv[1][c], dkv);
        dkv = _mm512_fmadd_ps(s2, qv[2][c], dkv);
        dkv = _mm512_fmadd_ps(s3, qv[3][c], dkv);
        _mm512_store_ps(dka[j] + 16 * c, dkv);
        const __m512 kv = _mm512_loadu_ps(kj + 16 * c);
        dqr[0][c] = _mm512_fmadd_ps(s0, kv, dqr[0][c]);
        dqr[1][c] = _mm512_fmadd_ps(s1, kv, dqr[1][c]);
        dqr[2][c] = _mm512_fmadd_ps(s2, kv, dqr[2][c]);
        dqr[3][c] = _mm512_fmadd_ps(s3, kv, dqr[3][c]);
      }
    }
    for (int r = 0; r < nr; ++r)
      for (int c = 0; c < V; ++c)
        _mm512_storeu_ps(dqi[r] + 16 * c, _mm512_add_ps(_mm512_loadu_ps(dqi[r] + 16 * c), dqr[r][c]));
    return;
  }
#endif
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

template <int HD>
void forward_impl(const float* q, const float* k, const float* v, float* out, float* lse, const AttnShape& s) {
  const int B = s.B, T = s.T, H = s.H, KV = s.KV, hd = s.hd;
  const int group = H / KV;
  const int64_t qs = int64_t(H) * hd, ks = int64_t(KV) * hd;  // row strides
  const float scale = 1.0f / std::sqrt(float(hd));
  const int qblocks = (T + kBq - 1) / kBq;
#pragma omp parallel for schedule(dynamic, 1) collapse(3)
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h)
      for (int qb = 0; qb < qblocks; ++qb) {
        const int kvh = h / group;
        const int i0 = qb * kBq, i1 = std::min(T, i0 + kBq);
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
        for (int j0 = 0; j0 < i1; j0 += kBk) {
          const int nj = std::min(kBk, i1 - j0);
          load_tile_t(kbase + int64_t(j0) * ks, ks, nj, hd, kt);
          for (int i = std::max(i0, j0); i < i1; i += kR) {
            const int nr = std::min(kR, i1 - i);
            const float* rows[kR];
            for (int r = 0; r < kR; ++r) rows[r] = qsc[i - i0 + std::min(r, nr - 1)];
            fwd_rows<HD>(rows, nr, i, j0, nj, kt, vbase + int64_t(j0) * ks, ks, acc + (i - i0), m + (i - i0),
                         l + (i - i0), hd);
          }
        }
        for (int i = i0; i < i1; ++i) {
          const float inv = 1.0f / l[i - i0];
          float* o = out + (int64_t(b) * T + i) * qs + int64_t(h) * hd;
          for (int d = 0; d < hd; ++d) o[d] = acc[i - i0][d] * inv;
          lse[(int64_t(b) * H + h) * T + i] = m[i - i0] + std::log(l[i - i0]);
        }
      }
}

// Key-block outer loop: one task per (batch, KV head) owns dk/dv of that head and dq of its
// query heads, so no two threads write one element and every sum runs in a fixed order
// (deterministic for any thread count).
template <int HD>
void backward_impl(const float* q, const float* k, const float* v, const float* out, const float* dout,
                   const float* lse, float* dq, float* dk, float* dv, const AttnShape& s) {
  const int B = s.B, T = s.T, H = s.H, KV = s.KV, hd = s.hd;
  const int group = H / KV;
  const int64_t qs = int64_t(H) * hd, ks = int64_t(KV) * hd;
  const float scale = 1.0f / std::sqrt(float(hd));
#pragma omp parallel for schedule(dynamic, 1) collapse(2)
  for (int b = 0; b < B; ++b)
    for (int kvh = 0; kvh < KV; ++kvh) {
      alignas(64) float kt[kMaxHd][kBk], vt[kMaxHd][kBk];
      alignas(64) float dka[kBk][kMaxHd], dva[kBk][kMaxHd];
      for (int h = kvh * group; h < (kvh + 1) * group; ++h)
        for (int i = 0; i < T; ++i)
          std::memset(dq + (int64_t(b) * T + i) * qs + int64_t(h) * hd, 0, sizeof(float) * size_t(hd));
      const float* kbase = k + int64_t(b) * T * ks + int64_t(kvh) * hd;
      const float* vbase = v + int64_t(b) * T * ks + int64_t(kvh) * hd;
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
                         scale);
          }
        for (int j = 0; j < nj; ++j) {
          const int64_t ko = (int64_t(b) * T + j0 + j) * ks + int64_t(kvh) * hd;
          std::memcpy(dk + ko, dka[j], sizeof(float) * size_t(hd));
          std::memcpy(dv + ko, dva[j], sizeof(float) * size_t(hd));
        }
      }
    }
}
}  // namespace

// Head sizes of the common models get a compile-time specialisation (registers for the
// per-row accumulators); any other size takes the generic path.
void attention_forward(const float* q, const float* k, const float* v, float* out, float* lse, const AttnShape& s) {
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
  switch (s.hd) {
    case 32: return backward_impl<32>(q, k, v, out, dout, lse, dq, dk, dv, s);
    case 48: return backward_impl<48>(q, k, v, out, dout, lse, dq, dk, dv, s);
    case 64: return backward_impl<64>(q, k, v, out, dout, lse, dq, dk, dv, s);
    case 128: return backward_impl<128>(q, k, v, out, dout, lse, dq, dk, dv, s);
    default: return backward_impl<0>(q, k, v, out, dout, lse, dq, dk, dv, s);
  }
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
        double mx = -1e300;
        for (int j = 0; j <= i; ++j) {
          double d = 0;
          for (int e = 0; e < hd; ++e)
            d += double(q[(int64_t(b) * T + i) * qs + h * hd + e]) * k[(int64_t(b) * T + j) * ks + kvh * hd + e];
          sc[j] = d * scale;
          mx = std::max(mx, sc[j]);
        }
        double sum = 0;
        for (int j = 0; j <= i; ++j) sum += std::exp(sc[j] - mx);
        for (int e = 0; e < hd; ++e) {
          double o = 0;
          for (int j = 0; j <= i; ++j) o += std::exp(sc[j] - mx) / sum * v[(int64_t(b) * T + j) * ks + kvh * hd + e];
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
        double mx = -1e300;
        for (int j = 0; j <= i; ++j) {
          double d = 0;
          for (int e = 0; e < hd; ++e) d += double(qi[e]) * k[(int64_t(b) * T + j) * ks + kvh * hd + e];
          p[j] = d * scale;
          mx = std::max(mx, p[j]);
        }
        double sum = 0;
        for (int j = 0; j <= i; ++j) sum += (p[j] = std::exp(p[j] - mx));
        double pdp = 0;
        for (int j = 0; j <= i; ++j) {
          p[j] /= sum;
          double d = 0;
          for (int e = 0; e < hd; ++e) d += double(doi[e]) * v[(int64_t(b) * T + j) * ks + kvh * hd + e];
          dp[j] = d;
          pdp += p[j] * d;
        }
        for (int j = 0; j <= i; ++j) {
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
