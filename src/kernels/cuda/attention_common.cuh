// Building blocks of the flash-attention kernels (attention_forward.cu, attention_backward.cu):
// bf16 tensor-core MMA, ldmatrix fragment loads and cp.async tile copies.
//
// Fragments of mma.sync.m16n8k16 (bf16 in, fp32 accumulate), lane = 4·g + t:
//   A (16×16, row-major) a[0..3]: (g, 2t..2t+1), (g+8, 2t..), (g, 2t+8..), (g+8, 2t+8..)
//   B (16×8)             b[0..1]: (k = 2t..2t+1, n = g), (k = 2t+8.., n = g)
//   C (16×8, fp32)       c[0..3]: (g, 2t), (g, 2t+1), (g+8, 2t), (g+8, 2t+1)
// Two C tiles side by side (16 columns) hold exactly an A fragment's elements, so P and dS feed
// the next product from registers (pack_a).
//
// Shared-memory tiles are row-major bf16 with rows padded by 8 elements (16 bytes): ldmatrix's
// eight 16-byte row reads then hit eight different bank groups.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "kernels/cuda/attention_launch.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/common.cuh"

namespace lt::cuda::attn {



__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void mma(float c[4], const uint32_t a[4], const uint32_t b[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t r[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t r[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}

// A[m][k] = tile[m0 + m][k0 + k] (16×16).
__device__ __forceinline__ void load_a(uint32_t a[4], const uint16_t* tile, int stride, int m0, int k0) {
  const int l = threadIdx.x & 31;
  ldmatrix_x4(a, tile + (m0 + (l & 7) + ((l >> 3) & 1) * 8) * stride + k0 + (l >> 4) * 8);
}
// B[k][n] = tile[n0 + n][k0 + k]: the tile's rows are B's columns (K in Q·Kᵀ). Two 8-column
// blocks: b[0] for n0..n0+7, b[1] for n0+8..n0+15.
__device__ __forceinline__ void load_b_rows(uint32_t b[2][2], const uint16_t* tile, int stride, int n0, int k0) {
  const int l = threadIdx.x & 31;
  uint32_t r[4];
  ldmatrix_x4(r, tile + (n0 + (l & 7) + (l >> 4) * 8) * stride + k0 + ((l >> 3) & 1) * 8);
  b[0][0] = r[0], b[0][1] = r[1], b[1][0] = r[2], b[1][1] = r[3];
}
// B[k][n] = tile[k0 + k][n0 + n]: the tile's rows are B's rows (V in P·V), read transposed.
__device__ __forceinline__ void load_b_cols(uint32_t b[2][2], const uint16_t* tile, int stride, int k0, int n0) {
  const int l = threadIdx.x & 31;
  uint32_t r[4];
  ldmatrix_x4_trans(r, tile + (k0 + (l & 7) + ((l >> 3) & 1) * 8) * stride + n0 + (l >> 4) * 8);
  b[0][0] = r[0], b[0][1] = r[1], b[1][0] = r[2], b[1][1] = r[3];
}

// The A fragment of k-step kk from two C tiles (columns 16kk .. 16kk+15), rounded to bf16.
__device__ __forceinline__ void pack_a(uint32_t a[4], const float c0[4], const float c1[4]) {
  a[0] = dev::pack_bf16x2(c0[0], c0[1]);
  a[1] = dev::pack_bf16x2(c0[2], c0[3]);
  a[2] = dev::pack_bf16x2(c1[0], c1[1]);
  a[3] = dev::pack_bf16x2(c1[2], c1[3]);
}

// acc[2·nb + i] += A·B over K = 16·kKSteps for the warp's 16 rows: A rows a_row0 .. of tile A
// (row-major, k contiguous), B[k][n] = tile B's row n (e.g. S = Q·Kᵀ: A = Q, B = K), 16·kNBlocks
// columns.
template <int kKSteps, int kNBlocks>
__device__ __forceinline__ void mma_rows(float acc[2 * kNBlocks][4], const uint16_t* A, int a_row0,
                                         const uint16_t* B, int stride) {
#pragma unroll
  for (int kk = 0; kk < kKSteps; ++kk) {
    uint32_t a[4];
    load_a(a, A, stride, a_row0, kk * 16);
#pragma unroll
    for (int nb = 0; nb < kNBlocks; ++nb) {
      uint32_t bb[2][2];
      load_b_rows(bb, B, stride, nb * 16, kk * 16);
      mma(acc[2 * nb], a, bb[0]);
      mma(acc[2 * nb + 1], a, bb[1]);
    }
  }
}

// acc (16 rows × HD) += C·B: the A operand straight from the registers of 16·kKSteps columns of
// C tiles (P or dS, rounded to bf16), B[k][n] = tile B's row k (e.g. O += P·V: B = V).
template <int kKSteps, int HD>
__device__ __forceinline__ void mma_regs(float acc[HD / 8][4], const float c[2 * kKSteps][4], const uint16_t* B,
                                         int stride) {
#pragma unroll
  for (int kk = 0; kk < kKSteps; ++kk) {
    uint32_t a[4];
    pack_a(a, c[2 * kk], c[2 * kk + 1]);
#pragma unroll
    for (int db = 0; db < HD / 16; ++db) {
      uint32_t bb[2][2];
      load_b_cols(bb, B, stride, kk * 16, db * 16);
      mma(acc[2 * db], a, bb[0]);
      mma(acc[2 * db + 1], a, bb[1]);
    }
  }
}

template <int N> __device__ __forceinline__ void zero(float (&acc)[N][4]) {
#pragma unroll
  for (int j = 0; j < N; ++j) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.0f;
}

__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem, bool valid) {
  // src-size 0 fills the 16 bytes with zeros (rows past T, columns past hd).
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(smem)), "l"(gmem),
               "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

// Copies rows [t0, t0 + kRows) of one head (columns head·hd .. +hd of a [B·T, ·] matrix with row
// stride ld) into a padded smem tile of kRows × HD; rows ≥ T and columns ≥ hd become zeros.
template <int kRows, int HD>
__device__ __forceinline__ void load_tile(uint16_t* tile, const uint16_t* base, int64_t ld, int b, int t0, int T,
                                          int head, int hd) {
  constexpr int kChunks = HD / 8;  // 16-byte pieces per row
  constexpr int kStride = HD + 8;
  for (int i = threadIdx.x; i < kRows * kChunks; i += kThreads) {
    const int r = i / kChunks, c = i % kChunks;
    const int t = t0 + r;
    const bool valid = t < T && c * 8 < hd;
    const uint16_t* src = valid ? base + (int64_t(b) * T + t) * ld + int64_t(head) * hd + c * 8 : base;
    cp_async_16(tile + r * kStride + c * 8, src, valid);
  }
}

// The double-buffered key/value stream of the forward and dQ kernels: before key block kb is
// used, block kb + 1 starts loading into the other buffer, and block kb is waited for.
template <int HD>
__device__ __forceinline__ void next_kv_block(uint16_t* Ks, uint16_t* Vs, int kTile, int kb, int nkb, const uint16_t* k,
                                              int64_t ldk, const uint16_t* v, int64_t ldv, int b, int T, int kvh,
                                              int hd) {
  const int buf = kb & 1;
  if (kb + 1 < nkb) {
    load_tile<kBlockRows, HD>(Ks + (buf ^ 1) * kTile, k, ldk, b, (kb + 1) * kBlockRows, T, kvh, hd);
    load_tile<kBlockRows, HD>(Vs + (buf ^ 1) * kTile, v, ldv, b, (kb + 1) * kBlockRows, T, kvh, hd);
    cp_async_commit();
    cp_async_wait<1>();
  } else {
    cp_async_wait<0>();
  }
  __syncthreads();
}

// Writes a warp's 16 rows × HD of fp32 accumulators (rows row0.., scaled) as fp32 and/or bf16.
template <int HD>
__device__ __forceinline__ void store_rows(const float acc[HD / 8][4], float mul0, float mul1, float* out32,
                                           uint16_t* out16, int64_t ld, int b, int row0, int T, int head, int hd) {
  const int l = threadIdx.x & 31, g = l >> 2, t = l & 3;
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int row = row0 + g + half * 8;
    if (row >= T) continue;
    const float mul = half ? mul1 : mul0;
    const int64_t base = (int64_t(b) * T + row) * ld + int64_t(head) * hd;
#pragma unroll
    for (int j = 0; j < HD / 8; ++j) {
      const int col = j * 8 + 2 * t;
      if (col >= hd) continue;
      const float x0 = acc[j][2 * half] * mul, x1 = acc[j][2 * half + 1] * mul;
      if (out32) *reinterpret_cast<float2*>(out32 + base + col) = make_float2(x0, x1);
      if (out16) *reinterpret_cast<uint32_t*>(out16 + base + col) = dev::pack_bf16x2(x0, x1);
    }
  }
}

}  // namespace lt::cuda::attn

namespace lt::cuda::attn {

// Calls f(std::integral_constant<int, HD>) with the head size the kernels use for hd.
template <typename F> void with_head_dim(int hd, F&& f) {
  switch (padded_head_dim(hd)) {
    case 32: f(std::integral_constant<int, 32>{}); break;
    case 64: f(std::integral_constant<int, 64>{}); break;
    default: f(std::integral_constant<int, 128>{}); break;
  }
}

// Raises a kernel's dynamic shared-memory limit (needed above 48 KB).
template <typename Kernel> void allow_smem(Kernel kernel, size_t bytes) {
  if (bytes > 48 * 1024) LT_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
}

}  // namespace lt::cuda::attn
