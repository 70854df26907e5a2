// fp32 → bf16 conversion of GEMM operands (round to nearest even), OpenMP-parallel; uses the
// AVX512_BF16 instruction vcvtneps2bf16 where the CPU has it.
#pragma once
#include <cstdint>

#include "core/bf16.h"

namespace lt::cpu {

void to_bf16(const float* x, bf16* y, int64_t n);
// The same on the calling thread only (for use inside parallel regions).
void to_bf16_serial(const float* x, bf16* y, int64_t n);
// The [rows, cols] matrix x transposed while converted: y[c·ldy + r] = bf16(x[r·cols + c])
// (ldy ≥ rows); with y_rows, also the plain copy y_rows[r·cols + c] in the same pass. A weight
// gradient dW = dYᵀ·X reads both operands transposed (bf16 GEMMs are fastest with the
// reduction dimension contiguous in both); dY's plain copy feeds the input gradient.
void to_bf16_transposed(const float* x, int64_t rows, int64_t cols, bf16* y, int64_t ldy, bf16* y_rows = nullptr);

}  // namespace lt::cpu
