#include <cmath>

#include "kernels/cuda/adamw.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/common.cuh"

namespace lt::cuda {

namespace {
using namespace dev;
using Entry = SegmentTable::Entry;

constexpr int kThreads = 256;
constexpr int64_t kChunk = SegmentTable::kChunk;

// The float constants of one AdamW step, computed on the host as kernels/cpu/adamw.cpp does.
struct AdamWConstants {
  float decay_on, decay_off, b1, b2, one_m_b1, one_m_b2, step_size, bc2_sqrt, eps, grad_scale;
};

AdamWConstants constants(const AdamWStep& a) {
  AdamWConstants c;
  c.decay_on = float(1.0 - a.lr * a.weight_decay);
  c.decay_off = float(1.0 - a.lr * 0.0);
  c.b1 = float(a.beta1);
  c.b2 = float(a.beta2);
  c.one_m_b1 = float(1.0 - a.beta1);
  c.one_m_b2 = float(1.0 - a.beta2);
  const double bc1 = 1.0 - std::pow(a.beta1, double(a.step));
  const double bc2 = 1.0 - std::pow(a.beta2, double(a.step));
  c.step_size = float(a.lr / bc1);
  c.bc2_sqrt = float(std::sqrt(bc2));
  c.eps = float(a.eps);
  c.grad_scale = a.grad_scale;
  return c;
}

// The segment whose chunks include `chunk` (the last entry with first_chunk <= chunk).
__device__ __forceinline__ const Entry& find_segment(const Entry* t, int n, int64_t chunk) {
  int lo = 0, hi = n - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (t[mid].first_chunk <= chunk) lo = mid;
    else hi = mid - 1;
  }
  return t[lo];
}

__global__ void __launch_bounds__(kThreads)
    adamw_kernel(float* p, const float* g, float* m, float* v, const Entry* table, int n, AdamWConstants c) {
  const Entry& s = find_segment(table, n, blockIdx.x);
  const int64_t b = s.begin + (int64_t(blockIdx.x) - s.first_chunk) * kChunk;
  const int64_t e = b + kChunk < s.end ? b + kChunk : s.end;
  const float decay = s.decay ? c.decay_on : c.decay_off;
  for (int64_t i = b + threadIdx.x; i < e; i += kThreads) {
    const float gi = g[i] * c.grad_scale;
    const float pi = p[i] * decay;
    const float mi = m[i] * c.b1 + gi * c.one_m_b1;
    const float vi = v[i] * c.b2 + gi * gi * c.one_m_b2;
    m[i] = mi;
    v[i] = vi;
    const float denom = sqrtf(vi) / c.bc2_sqrt + c.eps;
    p[i] = pi - c.step_size * (mi / denom);
  }
}

// partials[chunk] = Σ g² over the chunk (0 for segments outside the norm), in double.
__global__ void __launch_bounds__(kThreads)
    sum_squares_kernel(const float* g, const Entry* table, int n, double* partials) {
  __shared__ double scratch[kThreads / 32];
  const Entry& s = find_segment(table, n, blockIdx.x);
  double acc = 0.0;
  if (s.count_in_norm) {
    const int64_t b = s.begin + (int64_t(blockIdx.x) - s.first_chunk) * kChunk;
    const int64_t e = b + kChunk < s.end ? b + kChunk : s.end;
    for (int64_t i = b + threadIdx.x; i < e; i += kThreads) acc += double(g[i]) * double(g[i]);
  }
  acc = block_sum<kThreads>(acc, scratch);
  if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

// out = Σ partials in a fixed order: each thread a strided subset in order, then the tree.
__global__ void __launch_bounds__(1024) sum_partials_kernel(const double* partials, int64_t n, double* out) {
  __shared__ double scratch[32];
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += 1024) acc += partials[i];
  acc = block_sum<1024>(acc, scratch);
  if (threadIdx.x == 0) *out = acc;
}
}  // namespace

void adamw_update(float* p, const float* g, float* m, float* v, const SegmentTable& segs, const AdamWStep& a,
                  cudaStream_t stream) {
  if (segs.chunks() == 0) return;
  adamw_kernel<<<unsigned(segs.chunks()), kThreads, 0, stream>>>(p, g, m, v, static_cast<const Entry*>(segs.device()),
                                                                 segs.segments(), constants(a));
  LT_CUDA_LAUNCHED("adamw_update");
}

void sum_squares(const float* g, const SegmentTable& segs, double* partials, double* out, cudaStream_t stream) {
  if (segs.chunks() == 0) {
    LT_CUDA(cudaMemsetAsync(out, 0, sizeof(double), stream));
    return;
  }
  sum_squares_kernel<<<unsigned(segs.chunks()), kThreads, 0, stream>>>(g, static_cast<const Entry*>(segs.device()),
                                                                       segs.segments(), partials);
  LT_CUDA_LAUNCHED("sum_squares");
  sum_partials_kernel<<<1, 1024, 0, stream>>>(partials, segs.chunks(), out);
  LT_CUDA_LAUNCHED("sum_squares_partials");
}

}  // namespace lt::cuda
