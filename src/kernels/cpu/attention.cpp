#include "kernels/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <immintrin.h>
#include <limits>
#include <vector>

namespace lt::cpu {

namespace {
constexpr int kBq = 32;   // query rows per tile
constexpr int kBk = 64;   // key rows per tile
constexpr int kMaxHd = 256;

inline float dot(const float* a, const float* b, int n) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}
inline void axpy(float a, const float* x, float* y, int n) {
#pragma omp simd
  for (int i = 0; i < n; ++i) y[i] += a * x[i];
}
}  // namespace

void attention_forward(const float* q, const float* k, const float* v, float* out, float* lse, const AttnShape& s) {
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
        float acc[kBq][kMaxHd];
        float m[kBq], l[kBq], sc[kBk];
        for (int i = 0; i < i1 - i0; ++i) {
          m[i] = -std::numeric_limits<float>::infinity();
          l[i] = 0.0f;
          std::memset(acc[i], 0, sizeof(float) * size_t(hd));
        }
        for (int j0 = 0; j0 < i1; j0 += kBk) {
          const int j1 = std::min(i1, j0 + kBk);
          for (int i = i0; i < i1; ++i) {
            const int jend = std::min(j1, i + 1);  // causal: keys up to the query's own position
            if (jend <= j0) continue;
            const float* qi = q + (int64_t(b) * T + i) * qs + int64_t(h) * hd;
            float mx = m[i - i0];
            for (int j = j0; j < jend; ++j) {
              sc[j - j0] = dot(qi, k + (int64_t(b) * T + j) * ks + int64_t(kvh) * hd, hd) * scale;
              mx = std::max(mx, sc[j - j0]);
            }
            const float corr = std::exp(m[i - i0] - mx);
            float* a = acc[i - i0];
            float sum = 0.0f;
            if (corr != 1.0f)
              for (int d = 0; d < hd; ++d) a[d] *= corr;
            for (int j = j0; j < jend; ++j) {
              float p = std::exp(sc[j - j0] - mx);
              sum += p;
              axpy(p, v + (int64_t(b) * T + j) * ks + int64_t(kvh) * hd, a, hd);
            }
            l[i - i0] = l[i - i0] * corr + sum;
            m[i - i0] = mx;
          }
        }
        for (int i = i0; i < i1; ++i) {
          float inv = 1.0f / l[i - i0];
          float* o = out + (int64_t(b) * T + i) * qs + int64_t(h) * hd;
          for (int d = 0; d < hd; ++d) o[d] = acc[i - i0][d] * inv;
          lse[(int64_t(b) * H + h) * T + i] = m[i - i0] + std::log(l[i - i0]);
        }
      }
}

namespace {
// exp over a block of floats. AVX-512: n = round(x·log2 e), r = x − n·ln 2 (two-part ln 2),
// a degree-6 Taylor/Horner polynomial for e^r on |r| ≤ ln2/2 (≤ 2 ulp), scaled by 2^n with
// vscalefps (which also flushes very negative x to 0, as exp(−inf) = 0 needs).
void exp_inplace(float* x, int n) {
  int i = 0;
#if defined(__AVX512F__)
  const __m512 log2e = _mm512_set1_ps(1.44269504088896341f), ln2hi = _mm512_set1_ps(0.693359375f),
               ln2lo = _mm512_set1_ps(-2.12194440e-4f), lo = _mm512_set1_ps(-88.0f), hi = _mm512_set1_ps(88.0f);
  const __m512 c6 = _mm512_set1_ps(1.0f / 720), c5 = _mm512_set1_ps(1.0f / 120), c4 = _mm512_set1_ps(1.0f / 24),
               c3 = _mm512_set1_ps(1.0f / 6), c2 = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f);
  for (; i + 16 <= n; i += 16) {
    __m512 v = _mm512_loadu_ps(x + i);
    __m512 cl = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
    __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(cl, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(k, ln2hi, cl);
    r = _mm512_fnmadd_ps(k, ln2lo, r);
    __m512 p = _mm512_fmadd_ps(c6, r, c5);
    p = _mm512_fmadd_ps(p, r, c4);
    p = _mm512_fmadd_ps(p, r, c3);
    p = _mm512_fmadd_ps(p, r, c2);
    p = _mm512_fmadd_ps(p, r, one);
    p = _mm512_fmadd_ps(p, r, one);
    __m512 e = _mm512_scalef_ps(p, k);
    // Below the clamp the true value is < 6e-39: return 0 (covers −inf from masked scores).
    e = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, lo, _CMP_GE_OQ), e);
    _mm512_storeu_ps(x + i, e);
  }
#endif
  for (; i < n; ++i) x[i] = std::exp(x[i]);
}
}  // namespace

// Flash-attention backward, key-block outer loop: one task per (batch, KV head) owns dk/dv
// of that head and dq of its query heads, so no two threads write one element and every sum
// runs in a fixed order (deterministic for any thread count). Per key block of kBk keys the
// block's K and V are held transposed ([hd][kBk]) so the score row s_j = q_i·k_j and
// dp_j = do_i·v_j vectorise over j; dK/dV of the block accumulate in a small L1 tile.
void attention_backward(const float* q, const float* k, const float* v, const float* out, const float* dout,
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
      alignas(64) float sc[kBk], dp[kBk];
      for (int h = kvh * group; h < (kvh + 1) * group; ++h)
        for (int i = 0; i < T; ++i)
          std::memset(dq + (int64_t(b) * T + i) * qs + int64_t(h) * hd, 0, sizeof(float) * size_t(hd));
      for (int j0 = 0; j0 < T; j0 += kBk) {
        const int nj = std::min(kBk, T - j0);
        for (int d = 0; d < hd; ++d)
          for (int j = 0; j < kBk; ++j) {
            const int64_t ko = (int64_t(b) * T + j0 + j) * ks + int64_t(kvh) * hd + d;
            kt[d][j] = j < nj ? k[ko] : 0.0f;
            vt[d][j] = j < nj ? v[ko] : 0.0f;
          }
        for (int j = 0; j < nj; ++j) {
          std::memset(dka[j], 0, sizeof(float) * size_t(hd));
          std::memset(dva[j], 0, sizeof(float) * size_t(hd));
        }
        for (int h = kvh * group; h < (kvh + 1) * group; ++h)
          for (int i = j0; i < T; ++i) {
            const int64_t qo = (int64_t(b) * T + i) * qs + int64_t(h) * hd;
            const float* qi = q + qo;
            const float* doi = dout + qo;
            float* dqi = dq + qo;
            const int jn = std::min(nj, i - j0 + 1);  // causal: keys j0 .. i
            const float Di = dot(doi, out + qo, hd);
            const float z = lse[(int64_t(b) * H + h) * T + i];
#pragma omp simd
            for (int j = 0; j < kBk; ++j) sc[j] = dp[j] = 0.0f;
            for (int d = 0; d < hd; ++d) {
              const float qd = qi[d], od = doi[d];
#pragma omp simd aligned(sc, dp : 64)
              for (int j = 0; j < kBk; ++j) {
                sc[j] += qd * kt[d][j];
                dp[j] += od * vt[d][j];
              }
            }
#pragma omp simd aligned(sc : 64)
            for (int j = 0; j < kBk; ++j) sc[j] = j < jn ? sc[j] * scale - z : -std::numeric_limits<float>::infinity();
            exp_inplace(sc, kBk);  // sc = P row
#pragma omp simd aligned(sc, dp : 64)
            for (int j = 0; j < kBk; ++j) dp[j] = sc[j] * (dp[j] - Di) * scale;  // dp = dS row
            for (int j = 0; j < jn; ++j) {
              const float pj = sc[j], dsj = dp[j];
              const float* kj = k + (int64_t(b) * T + j0 + j) * ks + int64_t(kvh) * hd;
              float* dvj = dva[j];
              float* dkj = dka[j];
#pragma omp simd
              for (int d = 0; d < hd; ++d) {
                dvj[d] += pj * doi[d];
                dkj[d] += dsj * qi[d];
                dqi[d] += dsj * kj[d];
              }
            }
          }
        for (int j = 0; j < nj; ++j) {
          const int64_t ko = (int64_t(b) * T + j0 + j) * ks + int64_t(kvh) * hd;
          std::memcpy(dk + ko, dka[j], sizeof(float) * size_t(hd));
          std::memcpy(dv + ko, dva[j], sizeof(float) * size_t(hd));
        }
      }
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
