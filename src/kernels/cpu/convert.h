// fp32 → bf16 conversion of GEMM operands (round to nearest even), OpenMP-parallel; uses the
// AVX512_BF16 instruction vcvtneps2bf16 where the CPU has it.
#pragma once
#include <cstdint>

#include "core/bf16.h"

namespace lt::cpu {

void to_bf16(const float* x, bf16* y, int64_t n);
// The same on the calling thread only (for use inside parallel regions).
void to_bf16_serial(const float* x, bf16* y, int64_t n);

}  // namespace lt::cpu
