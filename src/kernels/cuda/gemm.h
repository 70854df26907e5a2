// GEMMs through cuBLASLt: bf16 operands, fp32 accumulation, fp32 or bf16 output, in the
// row-major convention of kernels/cpu/gemm.h's matmul:
//   C[M,N] = A·B   or   C[M,N] += A·B
//   A is [M,K], or [K,M] when trans_a;  B is [K,N], or [N,K] when trans_b;
//   lda/ldb/ldc are row strides in elements (0: dense), so column slices of fused buffers and
//   the cross-entropy's in-place bf16 gradient (ld = 2·V) are read where they lie.
// The three GEMMs of a Linear layer y = x·Wᵀ (W stored [out, in]):
//   forward  y  = x·Wᵀ      {tokens, out, in, trans_b}
//   backward dx = dy·W      {tokens, in, out}
//            dW += dyᵀ·x    {out, in, tokens, trans_a, accumulate}: fp32 dW, beta = 1
//
// cuBLAS is column-major. A row-major matrix is the column-major view of its transpose, so
// Cᵀ = Bᵀ·Aᵀ is computed with the operands swapped: cuBLAS's m = N, n = M, its first operand
// is our B (op = T exactly when trans_b), its second our A (op = T when trans_a), and C is an
// N×M column-major matrix with leading dimension ldc. column_major() spells this out (tests
// check it against a row-major reference on the CPU).
//
// Plans — the matmul descriptor, the three layouts and the algorithm — are made on first use
// of a (shape, transposes, strides, output type, accumulate, pointer alignment) key and reused:
// the same key always runs the same algorithm. The heuristic is asked only for algorithms whose
// split-K partial sums (if any) live in fp32 workspace and are reduced in a separate, ordered
// pass (reduction schemes NONE and COMPUTE_TYPE): none that accumulates partial results in the
// output's type, which for a bf16 output would round each partial. The workspace is allocated
// once. One Gemm serves one stream at a time (the workspace is shared by its calls).
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/bf16.h"

namespace lt::cuda {

enum class GemmOut { f32, bf16 };

struct GemmShape {
  int64_t M = 0, N = 0, K = 0;
  bool trans_a = false, trans_b = false;
  int64_t lda = 0, ldb = 0, ldc = 0;  // row strides; 0: dense
  GemmOut out = GemmOut::f32;
  bool accumulate = false;  // C += A·B (beta = 1)
};

// The column-major cuBLAS call computing a row-major GemmShape. "first"/"second" are cuBLAS's
// A and B operands (our B and A); each is given as stored: rows × cols, leading dimension ld.
struct ColumnMajorCall {
  int64_t m, n, k;
  bool trans_first, trans_second;
  int64_t first_rows, first_cols, first_ld;
  int64_t second_rows, second_cols, second_ld;
  int64_t c_rows, c_cols, ldc;
};
ColumnMajorCall column_major(const GemmShape& s);
// The shape with its strides filled in and checked (ld ≥ row width); throws lt::Error naming
// the bad value.
GemmShape resolved(const GemmShape& s);

class Gemm {
 public:
  explicit Gemm(size_t workspace_bytes = size_t(32) << 20);
  ~Gemm();
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;

  // C (float* or bf16* as s.out says) = A·B, or += with s.accumulate.
  void run(const bf16* A, const bf16* B, void* C, const GemmShape& s, cudaStream_t stream);
  void run(const bf16* A, const bf16* B, float* C, const GemmShape& s, cudaStream_t stream);
  void run(const bf16* A, const bf16* B, bf16* C, const GemmShape& s, cudaStream_t stream);

  size_t cached_plans() const;
  // One line per cached plan: the key and the algorithm chosen (id, tile, split-K, reduction).
  std::vector<std::string> describe() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lt::cuda
