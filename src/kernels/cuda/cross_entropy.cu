#include <cfloat>

#include "kernels/cuda/check.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cross_entropy.h"

namespace lt::cuda {

namespace {
using namespace dev;

constexpr int kThreads = 512;  // one block per row: 32k-wide rows are 64 elements per thread

// Running (max, Σexp) pair: adding x rescales the sum when the max grows.
struct MaxSum {
  float m, s;
};
__device__ __forceinline__ MaxSum combine(MaxSum a, MaxSum b) {
  const float m = fmaxf(a.m, b.m);
  if (m == -INFINITY) return {m, 0.0f};
  return {m, a.s * expf(a.m - m) + b.s * expf(b.m - m)};
}

__global__ void __launch_bounds__(kThreads)
    ce_row_stats_kernel(const float* logits, int64_t ld, int V, int vocab_begin, const int32_t* targets, float* mx,
                        float* sumexp, float* tlogit) {
  __shared__ MaxSum part[kThreads / 32];
  const int64_t r = blockIdx.x;
  const float* l = logits + r * ld;
  MaxSum acc{-INFINITY, 0.0f};
  for (int j = threadIdx.x; j < V; j += kThreads) {
    const float x = l[j];
    if (x > acc.m) {
      acc.s = acc.s * expf(acc.m - x) + 1.0f;  // exp(−inf) = 0 on the first element
      acc.m = x;
    } else if (acc.m != -INFINITY) {  // a row of −inf logits stays (−inf, 0), not NaN
      acc.s += expf(x - acc.m);
    }
  }
  // Fixed tree: lanes by butterfly, then the warps' pairs in warp order by warp 0.
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const MaxSum other{__shfl_xor_sync(0xffffffffu, acc.m, o), __shfl_xor_sync(0xffffffffu, acc.s, o)};
    acc = combine(acc, other);
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) part[warp] = acc;
  __syncthreads();
  if (warp == 0) {
    MaxSum t = lane < kThreads / 32 ? part[lane] : MaxSum{-INFINITY, 0.0f};
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const MaxSum other{__shfl_xor_sync(0xffffffffu, t.m, o), __shfl_xor_sync(0xffffffffu, t.s, o)};
      t = combine(t, other);
    }
    if (lane == 0) {
      mx[r] = t.m;
      sumexp[r] = t.s;
      const int64_t tg = targets[r], k = tg - vocab_begin;
      tlogit[r] = (tg >= 0 && k >= 0 && k < V) ? l[k] : 0.0f;
    }
  }
}

__global__ void ce_rescale_kernel(const float* mx, const float* M, float* sumexp, int64_t R) {
  const int64_t r = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r < R) sumexp[r] *= expf(mx[r] - M[r]);
}

__global__ void ce_finish_lse_kernel(const float* M, const float* sumexp, float* lse, int64_t R) {
  const int64_t r = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r < R) lse[r] = M[r] + logf(sumexp[r]);
}

__global__ void ce_row_losses_kernel(const int32_t* targets, const float* lse, const float* tlogit, double* row_loss,
                                     int64_t R) {
  const int64_t r = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r < R) row_loss[r] = targets[r] >= 0 ? double(lse[r]) - double(tlogit[r]) : 0.0;
}

// In chunks of kThreads elements: every thread reads its element, the block syncs, then writes.
// With grad aliasing the row's fp32 storage, element j's bf16 lands on bytes of fp32 element j/2,
// which this or an earlier chunk has already read.
__global__ void __launch_bounds__(kThreads)
    ce_logits_grad_kernel(const float* logits, int64_t ld, int V, int vocab_begin, const int32_t* targets,
                          const float* lse, float scale, uint16_t* grad, int64_t ldg) {
  const int64_t r = blockIdx.x;
  const float* l = logits + r * ld;
  uint16_t* g = grad + r * ldg;
  const int64_t tg = targets[r];
  const int64_t t = tg < 0 ? -1 : tg - vocab_begin;
  const float shift = lse[r];
  for (int j0 = 0; j0 < V; j0 += kThreads) {
    const int j = j0 + threadIdx.x;
    float v = 0.0f;
    if (j < V && tg >= 0) v = expf(l[j] - shift) * scale - (j == t ? scale : 0.0f);
    __syncthreads();
    if (j < V) g[j] = to_bf16(v);
  }
}

__global__ void __launch_bounds__(1024) sum_rows_kernel(const double* x, int64_t n, double* out, bool accumulate) {
  __shared__ double scratch[32];
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += 1024) acc += x[i];
  acc = block_sum<1024>(acc, scratch);
  if (threadIdx.x == 0) *out = accumulate ? *out + acc : acc;
}

unsigned small_blocks(int64_t n) { return unsigned(div_up(n, 256)); }
}  // namespace

void ce_row_stats(const float* logits, int64_t ld, int64_t R, int V, int vocab_begin, const int32_t* targets, float* mx,
                  float* sumexp, float* tlogit, cudaStream_t stream) {
  if (R <= 0) return;
  ce_row_stats_kernel<<<unsigned(R), kThreads, 0, stream>>>(logits, ld, V, vocab_begin, targets, mx, sumexp, tlogit);
  LT_CUDA_LAUNCHED("ce_row_stats");
}

void ce_rescale_sumexp(const float* mx, const float* M, float* sumexp, int64_t R, cudaStream_t stream) {
  if (R <= 0) return;
  ce_rescale_kernel<<<small_blocks(R), 256, 0, stream>>>(mx, M, sumexp, R);
  LT_CUDA_LAUNCHED("ce_rescale_sumexp");
}

void ce_finish_lse(const float* M, const float* sumexp, float* lse, int64_t R, cudaStream_t stream) {
  if (R <= 0) return;
  ce_finish_lse_kernel<<<small_blocks(R), 256, 0, stream>>>(M, sumexp, lse, R);
  LT_CUDA_LAUNCHED("ce_finish_lse");
}

void ce_row_losses(const int32_t* targets, const float* lse, const float* tlogit, double* row_loss, int64_t R,
                   cudaStream_t stream) {
  if (R <= 0) return;
  ce_row_losses_kernel<<<small_blocks(R), 256, 0, stream>>>(targets, lse, tlogit, row_loss, R);
  LT_CUDA_LAUNCHED("ce_row_losses");
}

void ce_logits_grad(const float* logits, int64_t ld, int64_t R, int V, int vocab_begin, const int32_t* targets,
                    const float* lse, float scale, bf16* grad, int64_t ldg, cudaStream_t stream) {
  if (R <= 0) return;
  ce_logits_grad_kernel<<<unsigned(R), kThreads, 0, stream>>>(logits, ld, V, vocab_begin, targets, lse, scale, grad,
                                                              ldg);
  LT_CUDA_LAUNCHED("ce_logits_grad");
}

void sum_rows(const double* x, int64_t n, double* out, bool accumulate, cudaStream_t stream) {
  sum_rows_kernel<<<1, 1024, 0, stream>>>(x, n, out, accumulate);
  LT_CUDA_LAUNCHED("sum_rows");
}

}  // namespace lt::cuda
