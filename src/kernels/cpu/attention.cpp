#include "kernels/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/cpu/vec_math.h"

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

// One task per (batch, head, block of kBq queries). Per key block the keys are held
// transposed ([hd][kBk]) so each score row s_j = q_i·k_j vectorises over j; the row's running
// max, sum and output accumulator are rescaled when the max grows (online softmax).
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
        alignas(64) float acc[kBq][kMaxHd];
        alignas(64) float kt[kMaxHd][kBk];
        alignas(64) float sc[kBk];
        float m[kBq], l[kBq];
        for (int i = 0; i < i1 - i0; ++i) {
          m[i] = -std::numeric_limits<float>::infinity();
          l[i] = 0.0f;
          std::memset(acc[i], 0, sizeof(float) * size_t(hd));
        }
        for (int j0 = 0; j0 < i1; j0 += kBk) {
          const int nj = std::min(kBk, i1 - j0);
          for (int j = 0; j < kBk; ++j) {
            const float* kj = k + (int64_t(b) * T + j0 + j) * ks + int64_t(kvh) * hd;
            for (int d = 0; d < hd; ++d) kt[d][j] = j < nj ? kj[d] : 0.0f;
          }
          for (int i = std::max(i0, j0); i < i1; ++i) {
            const int jn = std::min(nj, i - j0 + 1);  // causal: keys j0 .. i
            const float* qi = q + (int64_t(b) * T + i) * qs + int64_t(h) * hd;
#pragma omp simd aligned(sc : 64)
            for (int j = 0; j < kBk; ++j) sc[j] = 0.0f;
            for (int d = 0; d < hd; ++d) {
              const float qd = qi[d] * scale;
#pragma omp simd aligned(sc : 64)
              for (int j = 0; j < kBk; ++j) sc[j] += qd * kt[d][j];
            }
            float mx = m[i - i0];
            for (int j = 0; j < jn; ++j) mx = std::max(mx, sc[j]);
            const float corr = std::exp(m[i - i0] - mx);
            exp_shift_scale(sc, jn, mx, 1.0f);
            float* a = acc[i - i0];
            float sum = 0.0f;
            if (corr != 1.0f)
#pragma omp simd
              for (int d = 0; d < hd; ++d) a[d] *= corr;
            for (int j = 0; j < jn; ++j) {
              const float p = sc[j];
              sum += p;
              const float* vj = v + (int64_t(b) * T + j0 + j) * ks + int64_t(kvh) * hd;
#pragma omp simd
              for (int d = 0; d < hd; ++d) a[d] += p * vj[d];
            }
            l[i - i0] = l[i - i0] * corr + sum;
            m[i - i0] = mx;
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
