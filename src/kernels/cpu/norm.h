// RMSNorm over rows of width D:  y = x · rstd · w,  rstd = 1/sqrt(mean(x²) + eps).
// Gradient convention (as llm.c): activations are written (=) unless `accumulate_dx`,
// parameter gradients are accumulated (+=).
#pragma once
#include <cstdint>

namespace lt::cpu {

void rmsnorm_forward(const float* x, const float* w, float* y, float* rstd, int64_t N, int D, float eps);
// Fused residual add + RMSNorm forward: s = a + b is written to `a`, then y = rmsnorm(s).
// One pass over the rows instead of two (the residual stream is read once).
void add_rmsnorm_forward(float* a, const float* b, const float* w, float* y, float* rstd, int64_t N, int D, float eps);
void rmsnorm_backward(const float* dy, const float* x, const float* w, const float* rstd, float* dx, float* dw,
                      int64_t N, int D, bool accumulate_dx);

}  // namespace lt::cpu
