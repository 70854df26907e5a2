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

// A GEMM whose B operand is a weight, kept pre-reordered ("packed") in the blocked layout that
// oneDNN's kernel for this shape reads, so no call re-packs it: 5-18% faster bf16 GEMMs at the
// shapes of small Llamas (docs/PERFORMANCE.md). Shape fixed at construction:
//   C[M,N] (+)= A[M,K] · W^T  (trans_b: W is [N,K], a Linear layer's forward)
//   C[M,N] (+)= A[M,K] · W    (W is [K,N], a Linear layer's input gradient)
// for M rows and, reading the same packed weight, M_tail rows (0: none). A is fp32 or bf16 as
// `bf16` says; C is fp32. The caller provides the packed storage (bind, packed_bytes() bytes,
// 64-byte aligned); pack() copies the current fp32 weight in (rounding to bf16 if needed) and
// must be called again whenever the weight changes.
class PackedGemm {
 public:
  PackedGemm(int64_t M, int64_t N, int64_t K, bool trans_b, bool bf16, int64_t M_tail = 0);
  ~PackedGemm();
  PackedGemm(const PackedGemm&) = delete;
  PackedGemm& operator=(const PackedGemm&) = delete;

  size_t packed_bytes() const;
  void bind(void* storage);
  void pack(const float* w);
  // M must be the M or the M_tail given at construction.
  void run(const void* A, float* C, int64_t M, bool accumulate);

 private:
  struct Impl;
  Impl* impl_;
};

// Wall seconds spent inside GEMM calls (matmul, matmul_bf16, PackedGemm::run) since the
// process started: the benchmark's split of a step into GEMMs and everything else.
double gemm_seconds();

// Plain triple loop (double accumulation), the reference the tests compare against.
void matmul_ref(const float* A, const float* B, float* C, int64_t M, int64_t N, int64_t K, bool trans_a,
                bool trans_b, bool accumulate);

}  // namespace lt::cpu
