#include "kernels/cpu/rope.h"

#include <cmath>

namespace lt::cpu {

void rope_tables(float* cos_t, float* sin_t, int T, int hd, const double* inv_freq) {
  int half = hd / 2;
  for (int i = 0; i < half; ++i) {
    // In double, then rounded once: closer to the exact rotation than fp32 tables.
    for (int t = 0; t < T; ++t) {
      double angle = double(t) * inv_freq[i];
      cos_t[size_t(t) * half + i] = float(std::cos(angle));
      sin_t[size_t(t) * half + i] = float(std::sin(angle));
    }
  }
}

namespace {
template <bool kInverse>
void rotate(float* x, const float* cos_t, const float* sin_t, int64_t BT, int T, int H, int hd, const int32_t* doc_start) {
  int half = hd / 2;
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < BT; ++n) {
    const int64_t pos = n % T - (doc_start ? doc_start[n] : 0);
    const float* c = cos_t + pos * half;
    const float* s = sin_t + pos * half;
    for (int h = 0; h < H; ++h) {
      float* a = x + n * H * hd + h * hd;
      float* b = a + half;
#pragma omp simd
      for (int i = 0; i < half; ++i) {
        float x1 = a[i], x2 = b[i];
        if (kInverse) {
          a[i] = x1 * c[i] + x2 * s[i];
          b[i] = x2 * c[i] - x1 * s[i];
        } else {
          a[i] = x1 * c[i] - x2 * s[i];
          b[i] = x2 * c[i] + x1 * s[i];
        }
      }
    }
  }
}
}  // namespace

void rope_forward(float* x, const float* cos_t, const float* sin_t, int64_t BT, int T, int H, int hd,
                  const int32_t* doc_start) {
  rotate<false>(x, cos_t, sin_t, BT, T, H, hd, doc_start);
}

void rope_backward(float* dx, const float* cos_t, const float* sin_t, int64_t BT, int T, int H, int hd,
                   const int32_t* doc_start) {
  rotate<true>(dx, cos_t, sin_t, BT, T, H, hd, doc_start);
}

}  // namespace lt::cpu
