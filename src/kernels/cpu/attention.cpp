#include "kernels/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
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

void attention_backward(const float* q, const float* k, const float* v, const float* out, const float* dout,
                        const float* lse, float* dq, float* dk, float* dv, const AttnShape& s) {
  const int B = s.B, T = s.T, H = s.H, KV = s.KV, hd = s.hd;
  const int group = H / KV;
  const int64_t qs = int64_t(H) * hd, ks = int64_t(KV) * hd;
  const float scale = 1.0f / std::sqrt(float(hd));
  // One task per (batch, KV head): it owns dk/dv of that head and dq of the query heads
  // that read it, so no two threads write the same element.
#pragma omp parallel for schedule(dynamic, 1) collapse(2)
  for (int b = 0; b < B; ++b)
    for (int kvh = 0; kvh < KV; ++kvh) {
      for (int t = 0; t < T; ++t) {
        std::memset(dk + (int64_t(b) * T + t) * ks + int64_t(kvh) * hd, 0, sizeof(float) * size_t(hd));
        std::memset(dv + (int64_t(b) * T + t) * ks + int64_t(kvh) * hd, 0, sizeof(float) * size_t(hd));
      }
      for (int h = kvh * group; h < (kvh + 1) * group; ++h) {
        for (int i = 0; i < T; ++i) {
          const int64_t qo = (int64_t(b) * T + i) * qs + int64_t(h) * hd;
          const float* qi = q + qo;
          const float* doi = dout + qo;
          float* dqi = dq + qo;
          std::memset(dqi, 0, sizeof(float) * size_t(hd));
          const float Di = dot(doi, out + qo, hd);
          const float z = lse[(int64_t(b) * H + h) * T + i];
          for (int j = 0; j <= i; ++j) {
            const int64_t ko = (int64_t(b) * T + j) * ks + int64_t(kvh) * hd;
            const float p = std::exp(dot(qi, k + ko, hd) * scale - z);
            axpy(p, doi, dv + ko, hd);
            const float ds = p * (dot(doi, v + ko, hd) - Di) * scale;
            axpy(ds, k + ko, dqi, hd);
            axpy(ds, qi, dk + ko, hd);
          }
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
