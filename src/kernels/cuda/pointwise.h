// Element-wise kernels on device pointers, each the GPU twin of a CPU kernel: rotary position
// embedding (kernels/cpu/rope.h), SwiGLU (kernels/cpu/swiglu.h), fp32 <-> bf16 conversion
// (kernels/cpu/convert.h) and the small scale/add helpers a step needs. Matrices are row-major
// with an explicit row stride (`ld*`, in elements), so the kernels read and write column slices
// of fused buffers (q|k|v, gate|up) in place. All arithmetic is fp32; bf16 outputs are rounded
// to nearest even once, from the fp32 result. Outputs that are null are not written.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/bf16.h"

namespace lt::cuda {

// RoPE, Hugging Face "rotate half" layout exactly as kernels/cpu/rope.cpp: within each of the H
// heads of size hd, element i pairs with i + hd/2 and rotates by the angle of (position, i);
// token row n has position n % T. cos_t/sin_t are device tables [T, hd/2] (computed on the host,
// e.g. by cpu::rope_tables, so the frequency rule stays in one place). x is read as fp32 or
// bf16; y (fp32) and y_bf16 are written with row stride ldy; y may equal x (in place).
// The backward applies the inverse rotation to a gradient.
void rope_forward(const float* x, int64_t ldx, float* y, bf16* y_bf16, int64_t ldy, const float* cos_t,
                  const float* sin_t, int64_t BT, int T, int H, int hd, cudaStream_t stream);
void rope_backward(const float* dx, int64_t ldx, float* y, bf16* y_bf16, int64_t ldy, const float* cos_t,
                   const float* sin_t, int64_t BT, int T, int H, int hd, cudaStream_t stream);
void rope_backward(const bf16* dx, int64_t ldx, float* y, bf16* y_bf16, int64_t ldy, const float* cos_t,
                   const float* sin_t, int64_t BT, int T, int H, int hd, cudaStream_t stream);

// SwiGLU over `rows` rows of F columns: h = silu(g)·u with g, u read at row stride ld_gu (for the
// fused gate|up GEMM output, u = g + F and ld_gu = 2F), h written at row stride ld_h.
void swiglu_forward(const float* g, const float* u, int64_t ld_gu, float* h, bf16* h_bf16, int64_t ld_h,
                    int64_t rows, int F, cudaStream_t stream);
// dg = dh·u·silu'(g), du = dh·silu(g) (written, not accumulated), as fp32 and/or bf16, at row
// stride ld_d (for the fused gate|up GEMMs: du = dg + F, ld_d = 2F).
void swiglu_backward(const float* dh, int64_t ld_dh, const float* g, const float* u, int64_t ld_gu, float* dg,
                     float* du, bf16* dg_bf16, bf16* du_bf16, int64_t ld_d, int64_t rows, int F, cudaStream_t stream);

// y = bf16(x) over n contiguous elements.
void to_bf16(const float* x, bf16* y, int64_t n, cudaStream_t stream);
// The [rows, cols] matrix (row stride ldx) converted into y (row stride ldy).
void to_bf16_2d(const float* x, int64_t ldx, bf16* y, int64_t ldy, int64_t rows, int64_t cols, cudaStream_t stream);
// y[c·ldy + r] = bf16(x[r·cols + c]) (ldy ≥ rows); with y_rows, also the plain copy
// y_rows[r·cols + c] in the same pass (kernels/cpu/convert.h's to_bf16_transposed).
void to_bf16_transposed(const float* x, int64_t rows, int64_t cols, bf16* y, int64_t ldy, bf16* y_rows,
                        cudaStream_t stream);
// y = float(x) over n elements (bf16 is exact in fp32).
void bf16_to_float(const bf16* x, float* y, int64_t n, cudaStream_t stream);

// y = a·x (y may equal x); y += x; y = 0 — over n contiguous floats.
void scale(const float* x, float* y, float a, int64_t n, cudaStream_t stream);
void add_inplace(float* y, const float* x, int64_t n, cudaStream_t stream);
void fill_zero(float* y, int64_t n, cudaStream_t stream);

}  // namespace lt::cuda
