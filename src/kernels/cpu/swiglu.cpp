#include "kernels/cpu/swiglu.h"

#include <cmath>

namespace lt::cpu {

void swiglu_forward(const float* g, const float* u, float* h, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    float sig = 1.0f / (1.0f + std::exp(-g[i]));
    h[i] = g[i] * sig * u[i];
  }
}

void swiglu_backward(const float* dh, const float* g, const float* u, float* dg, float* du, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    float sig = 1.0f / (1.0f + std::exp(-g[i]));
    float silu = g[i] * sig;
    dg[i] = dh[i] * u[i] * sig * (1.0f + g[i] * (1.0f - sig));
    du[i] = dh[i] * silu;
  }
}

}  // namespace lt::cpu
