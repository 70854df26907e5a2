// RMSNorm on the GPU, the CPU kernels' contract (kernels/cpu/norm.h) on device pointers:
//   y = x · rstd · w,  rstd = 1/sqrt(mean(x²) + eps), over N rows of width D, all in fp32.
// Outputs y (fp32) and y_bf16 (the GEMM operand, rounded to nearest even from the fp32 value,
// as the CPU's bf16 mode rounds before its GEMMs) may each be null.
// Gradient convention: activations written (=) unless `accumulate_dx`, parameters accumulated
// (+=). No atomics: dw is summed per chunk of rows, then the chunk sums in chunk order, so every
// run gives the same bits. Each row's statistics come from one warp in a fixed lane order; the
// result differs from the CPU's only by float rounding.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "core/bf16.h"

namespace lt::cuda {

void rmsnorm_forward(const float* x, const float* w, float* y, bf16* y_bf16, float* rstd, int64_t N, int D, float eps,
                     cudaStream_t stream);
// Fused residual add + RMSNorm: s = a + b is written to `a`, then y = rmsnorm(s).
void add_rmsnorm_forward(float* a, const float* b, const float* w, float* y, bf16* y_bf16, float* rstd, int64_t N,
                         int D, float eps, cudaStream_t stream);
// Floats of scratch the backward needs for (N, D): the per-chunk partial sums of dw.
size_t rmsnorm_backward_workspace_floats(int64_t N, int D);
void rmsnorm_backward(const float* dy, const float* x, const float* w, const float* rstd, float* dx, float* dw,
                      int64_t N, int D, bool accumulate_dx, float* workspace, cudaStream_t stream);

}  // namespace lt::cuda
