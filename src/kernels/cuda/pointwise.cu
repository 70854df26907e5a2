#include "kernels/cuda/check.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/pointwise.h"

namespace lt::cuda {

namespace {
using namespace dev;

constexpr int kThreads = 256;

unsigned blocks_for(int64_t n) { return unsigned(div_up(n, kThreads)); }

__device__ __forceinline__ void store(float* y, uint16_t* y16, int64_t i, float v) {
  if (y) y[i] = v;
  if (y16) y16[i] = to_bf16(v);
}

// One thread per (row, head, i < hd/2) pair of elements.
template <bool kInverse, typename TIn>
__global__ void rope_kernel(const TIn* x, int64_t ldx, float* y, uint16_t* y16, int64_t ldy, const float* cos_t,
                            const float* sin_t, int64_t BT, int T, int H, int hd) {
  const int half = hd / 2;
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= BT * H * half) return;
  const int i = int(idx % half);
  const int h = int((idx / half) % H);
  const int64_t n = idx / (int64_t(half) * H);
  const float c = cos_t[(n % T) * half + i], s = sin_t[(n % T) * half + i];
  const int64_t xo = n * ldx + int64_t(h) * hd + i, yo = n * ldy + int64_t(h) * hd + i;
  const float x1 = load(x + xo), x2 = load(x + xo + half);
  float a, b;
  if (kInverse) {
    a = x1 * c + x2 * s;
    b = x2 * c - x1 * s;
  } else {
    a = x1 * c - x2 * s;
    b = x2 * c + x1 * s;
  }
  store(y, y16, yo, a);
  store(y, y16, yo + half, b);
}

__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

__global__ void swiglu_forward_kernel(const float* g, const float* u, int64_t ld_gu, float* h, uint16_t* h16,
                                      int64_t ld_h, int64_t rows, int F) {
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= rows * F) return;
  const int64_t r = idx / F, j = idx % F;
  const float gv = g[r * ld_gu + j];
  store(h, h16, r * ld_h + j, gv * sigmoid(gv) * u[r * ld_gu + j]);
}

__global__ void swiglu_backward_kernel(const float* dh, int64_t ld_dh, const float* g, const float* u, int64_t ld_gu,
                                       float* dg, float* du, uint16_t* dg16, uint16_t* du16, int64_t ld_d,
                                       int64_t rows, int F) {
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= rows * F) return;
  const int64_t r = idx / F, j = idx % F;
  const float gv = g[r * ld_gu + j], uv = u[r * ld_gu + j], d = dh[r * ld_dh + j];
  const float sig = sigmoid(gv);
  store(dg, dg16, r * ld_d + j, d * uv * sig * (1.0f + gv * (1.0f - sig)));
  store(du, du16, r * ld_d + j, d * gv * sig);
}

__global__ void to_bf16_kernel(const float* x, uint16_t* y, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) y[i] = to_bf16(x[i]);
}

__global__ void to_bf16_2d_kernel(const float* x, int64_t ldx, uint16_t* y, int64_t ldy, int64_t rows, int64_t cols) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= rows * cols) return;
  const int64_t r = i / cols, c = i % cols;
  y[r * ldy + c] = to_bf16(x[r * ldx + c]);
}

// 32×32 tiles through shared memory: reads along x's rows and writes along y's rows are both
// coalesced. The +1 column keeps the transposed reads free of bank conflicts.
__global__ void to_bf16_transposed_kernel(const float* x, int64_t rows, int64_t cols, uint16_t* y, int64_t ldy,
                                          uint16_t* y_rows) {
  __shared__ uint16_t tile[32][33];
  const int64_t r0 = int64_t(blockIdx.y) * 32, c0 = int64_t(blockIdx.x) * 32;
  for (int k = threadIdx.y; k < 32; k += blockDim.y) {
    const int64_t r = r0 + k, c = c0 + threadIdx.x;
    if (r < rows && c < cols) {
      const uint16_t h = to_bf16(x[r * cols + c]);
      tile[k][threadIdx.x] = h;
      if (y_rows) y_rows[r * cols + c] = h;
    }
  }
  __syncthreads();
  for (int k = threadIdx.y; k < 32; k += blockDim.y) {
    const int64_t c = c0 + k, r = r0 + threadIdx.x;
    if (r < rows && c < cols) y[c * ldy + r] = tile[threadIdx.x][k];
  }
}

__global__ void bf16_to_float_kernel(const uint16_t* x, float* y, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) y[i] = from_bf16(x[i]);
}

__global__ void scale_kernel(const float* x, float* y, float a, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i];
}

__global__ void add_kernel(float* y, const float* x, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) y[i] += x[i];
}

template <bool kInverse, typename TIn>
void launch_rope(const TIn* x, int64_t ldx, float* y, bf16* y16, int64_t ldy, const float* cos_t, const float* sin_t,
                 int64_t BT, int T, int H, int hd, cudaStream_t stream) {
  const int64_t n = BT * H * (hd / 2);
  if (n <= 0) return;
  rope_kernel<kInverse, TIn><<<blocks_for(n), kThreads, 0, stream>>>(x, ldx, y, y16, ldy, cos_t, sin_t, BT, T, H, hd);
  LT_CUDA_LAUNCHED(kInverse ? "rope_backward" : "rope_forward");
}
}  // namespace

void rope_forward(const float* x, int64_t ldx, float* y, bf16* y_bf16, int64_t ldy, const float* cos_t,
                  const float* sin_t, int64_t BT, int T, int H, int hd, cudaStream_t stream) {
  launch_rope<false>(x, ldx, y, y_bf16, ldy, cos_t, sin_t, BT, T, H, hd, stream);
}
void rope_backward(const float* dx, int64_t ldx, float* y, bf16* y_bf16, int64_t ldy, const float* cos_t,
                   const float* sin_t, int64_t BT, int T, int H, int hd, cudaStream_t stream) {
  launch_rope<true>(dx, ldx, y, y_bf16, ldy, cos_t, sin_t, BT, T, H, hd, stream);
}
void rope_backward(const bf16* dx, int64_t ldx, float* y, bf16* y_bf16, int64_t ldy, const float* cos_t,
                   const float* sin_t, int64_t BT, int T, int H, int hd, cudaStream_t stream) {
  launch_rope<true>(dx, ldx, y, y_bf16, ldy, cos_t, sin_t, BT, T, H, hd, stream);
}

void swiglu_forward(const float* g, const float* u, int64_t ld_gu, float* h, bf16* h_bf16, int64_t ld_h,
                    int64_t rows, int F, cudaStream_t stream) {
  if (rows * F <= 0) return;
  swiglu_forward_kernel<<<blocks_for(rows * F), kThreads, 0, stream>>>(g, u, ld_gu, h, h_bf16, ld_h, rows, F);
  LT_CUDA_LAUNCHED("swiglu_forward");
}

void swiglu_backward(const float* dh, int64_t ld_dh, const float* g, const float* u, int64_t ld_gu, float* dg,
                     float* du, bf16* dg_bf16, bf16* du_bf16, int64_t ld_d, int64_t rows, int F, cudaStream_t stream) {
  if (rows * F <= 0) return;
  swiglu_backward_kernel<<<blocks_for(rows * F), kThreads, 0, stream>>>(dh, ld_dh, g, u, ld_gu, dg, du, dg_bf16,
                                                                        du_bf16, ld_d, rows, F);
  LT_CUDA_LAUNCHED("swiglu_backward");
}

void to_bf16(const float* x, bf16* y, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  to_bf16_kernel<<<blocks_for(n), kThreads, 0, stream>>>(x, y, n);
  LT_CUDA_LAUNCHED("to_bf16");
}

void to_bf16_2d(const float* x, int64_t ldx, bf16* y, int64_t ldy, int64_t rows, int64_t cols, cudaStream_t stream) {
  if (rows * cols <= 0) return;
  to_bf16_2d_kernel<<<blocks_for(rows * cols), kThreads, 0, stream>>>(x, ldx, y, ldy, rows, cols);
  LT_CUDA_LAUNCHED("to_bf16_2d");
}

void to_bf16_transposed(const float* x, int64_t rows, int64_t cols, bf16* y, int64_t ldy, bf16* y_rows,
                        cudaStream_t stream) {
  if (rows * cols <= 0) return;
  const dim3 grid(unsigned(div_up(cols, 32)), unsigned(div_up(rows, 32)));
  to_bf16_transposed_kernel<<<grid, dim3(32, 8), 0, stream>>>(x, rows, cols, y, ldy, y_rows);
  LT_CUDA_LAUNCHED("to_bf16_transposed");
}

void bf16_to_float(const bf16* x, float* y, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  bf16_to_float_kernel<<<blocks_for(n), kThreads, 0, stream>>>(x, y, n);
  LT_CUDA_LAUNCHED("bf16_to_float");
}

void scale(const float* x, float* y, float a, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  scale_kernel<<<blocks_for(n), kThreads, 0, stream>>>(x, y, a, n);
  LT_CUDA_LAUNCHED("scale");
}

void add_inplace(float* y, const float* x, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  add_kernel<<<blocks_for(n), kThreads, 0, stream>>>(y, x, n);
  LT_CUDA_LAUNCHED("add_inplace");
}

void fill_zero(float* y, int64_t n, cudaStream_t stream) {
  if (n > 0) LT_CUDA(cudaMemsetAsync(y, 0, size_t(n) * sizeof(float), stream));
}

}  // namespace lt::cuda
