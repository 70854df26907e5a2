#include "kernels/cpu/norm.h"

#include <cmath>

namespace lt::cpu {

void rmsnorm_forward(const float* x, const float* w, float* y, float* rstd, int64_t N, int D, float eps) {
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const float* xr = x + n * D;
    float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
    for (int i = 0; i < D; ++i) ss += xr[i] * xr[i];
    float r = 1.0f / std::sqrt(ss / float(D) + eps);
    rstd[n] = r;
    float* yr = y + n * D;
#pragma omp simd
    for (int i = 0; i < D; ++i) yr[i] = xr[i] * r * w[i];
  }
}

void add_rmsnorm_forward(float* a, const float* b, const float* w, float* y, float* rstd, int64_t N, int D,
                         float eps) {
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    float* ar = a + n * D;
    const float* br = b + n * D;
    float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
    for (int i = 0; i < D; ++i) {
      const float v = ar[i] + br[i];
      ar[i] = v;
      ss += v * v;
    }
    const float r = 1.0f / std::sqrt(ss / float(D) + eps);
    rstd[n] = r;
    float* yr = y + n * D;
#pragma omp simd
    for (int i = 0; i < D; ++i) yr[i] = ar[i] * r * w[i];
  }
}

void rmsnorm_backward(const float* dy, const float* x, const float* w, const float* rstd, float* dx, float* dw,
                      int64_t N, int D, bool accumulate_dx) {
  // dx = rstd · (g − x̂ · mean(g·x̂)),  g = dy·w,  x̂ = x·rstd
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const float* dyr = dy + n * D;
    const float* xr = x + n * D;
    float r = rstd[n];
    float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
    for (int i = 0; i < D; ++i) dot += dyr[i] * w[i] * xr[i];
    float c = dot * r * r / float(D);
    float* dxr = dx + n * D;
    if (accumulate_dx) {
#pragma omp simd
      for (int i = 0; i < D; ++i) dxr[i] += r * (dyr[i] * w[i] - xr[i] * c);
    } else {
#pragma omp simd
      for (int i = 0; i < D; ++i) dxr[i] = r * (dyr[i] * w[i] - xr[i] * c);
    }
  }
  // dw[i] += Σ_n dy·x·rstd: split by columns so each sum runs in a fixed order (deterministic).
  constexpr int kCols = 16;
#pragma omp parallel for schedule(static)
  for (int c0 = 0; c0 < D; c0 += kCols) {
    int c1 = c0 + kCols < D ? c0 + kCols : D;
    float acc[kCols] = {};
    for (int64_t n = 0; n < N; ++n) {
      const float* dyr = dy + n * D;
      const float* xr = x + n * D;
      float r = rstd[n];
      for (int i = c0; i < c1; ++i) acc[i - c0] += dyr[i] * xr[i] * r;
    }
    for (int i = c0; i < c1; ++i) dw[i] += acc[i - c0];
  }
}

}  // namespace lt::cpu
