// GEMM through oneDNN (the CPU's fastest path here; see docs/PERFORMANCE.md).
//
//   C[M,N] = A·B   or   C[M,N] += A·B     (row-major, fp32 accumulate)
//   A is [M,K], or [K,M] when trans_a (so A^T is used);
//   B is [K,N], or [N,K] when trans_b.
//
// The three GEMMs of a Linear layer y = x·W^T with W stored [out,in] as Hugging Face does:
//   forward   y  = x · W^T        matmul(x, W, y, tokens, out, in, false, true,  false)
//   backward  dx = dy · W         matmul(dy, W, dx, tokens, in, out, false, false, acc)
//             dW += dy^T · x      matmul(dy, x, dW, out, in, tokens, true, false, true)
// Primitives are created once per shape and cached, so the step loop allocates nothing.
#pragma once
#include <cstdint>

#include "core/bf16.h"

namespace lt::cpu {

void matmul(const float* A, const float* B, float* C, int64_t M, int64_t N, int64_t K, bool trans_a, bool trans_b,
            bool accumulate);

// Same with bf16 inputs and fp32 output (AVX512_BF16 through oneDNN).
void matmul_bf16(const bf16* A, const bf16* B, float* C, int64_t M, int64_t N, int64_t K, bool trans_a,
                 bool trans_b, bool accumulate);

// Plain triple loop (double accumulation), the reference the tests compare against.
void matmul_ref(const float* A, const float* B, float* C, int64_t M, int64_t N, int64_t K, bool trans_a,
                bool trans_b, bool accumulate);

}  // namespace lt::cpu
