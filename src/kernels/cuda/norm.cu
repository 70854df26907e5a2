#include "kernels/cuda/check.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/norm.h"

namespace lt::cuda {

namespace {
using namespace dev;

constexpr int kWarpsPerBlock = 8;      // one warp per row
constexpr int kRowsPerPartial = 256;   // rows summed into one partial of dw

// x → y = x·rstd·w (and its bf16 copy). With kAdd, x = a + b is formed first and stored in a.
template <bool kAdd>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    rmsnorm_forward_kernel(float* a, const float* b, const float* w, float* y, uint16_t* y16, float* rstd, int64_t N,
                           int D, float eps) {
  const int64_t row = int64_t(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (row >= N) return;
  float* ar = a + row * D;
  const float* br = kAdd ? b + row * D : nullptr;
  float ss = 0.0f;
  for (int i = lane; i < D; i += 32) {
    float v = ar[i];
    if (kAdd) {
      v = v + br[i];
      ar[i] = v;
    }
    ss += v * v;
  }
  ss = warp_sum(ss);
  const float r = 1.0f / sqrtf(ss / float(D) + eps);
  if (lane == 0) rstd[row] = r;
  __syncwarp();
  for (int i = lane; i < D; i += 32) {
    const float o = ar[i] * r * w[i];
    if (y) y[row * D + i] = o;
    if (y16) y16[row * D + i] = to_bf16(o);
  }
}

// dx = rstd · (dy·w − x·c),  c = rstd² · Σ(dy·w·x) / D   (one warp per row)
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    rmsnorm_backward_dx_kernel(const float* dy, const float* x, const float* w, const float* rstd, float* dx,
                               int64_t N, int D, bool accumulate) {
  const int64_t row = int64_t(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (row >= N) return;
  const float* dyr = dy + row * D;
  const float* xr = x + row * D;
  float dot = 0.0f;
  for (int i = lane; i < D; i += 32) dot += dyr[i] * w[i] * xr[i];
  dot = warp_sum(dot);
  const float r = rstd[row];
  const float c = dot * r * r / float(D);
  float* dxr = dx + row * D;
  for (int i = lane; i < D; i += 32) {
    const float g = r * (dyr[i] * w[i] - xr[i] * c);
    dxr[i] = accumulate ? dxr[i] + g : g;
  }
}

// partial[chunk][i] = Σ over the chunk's rows of dy·x·rstd (a thread per column, rows in order).
__global__ void rmsnorm_dw_partial_kernel(const float* dy, const float* x, const float* rstd, float* partial,
                                          int64_t N, int D) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= D) return;
  const int64_t r0 = int64_t(blockIdx.y) * kRowsPerPartial;
  const int64_t r1 = r0 + kRowsPerPartial < N ? r0 + kRowsPerPartial : N;
  float acc = 0.0f;
  for (int64_t r = r0; r < r1; ++r) acc += dy[r * D + i] * x[r * D + i] * rstd[r];
  partial[int64_t(blockIdx.y) * D + i] = acc;
}

// dw[i] += Σ_chunk partial[chunk][i], chunks in order.
__global__ void rmsnorm_dw_reduce_kernel(const float* partial, float* dw, int chunks, int D) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= D) return;
  float acc = 0.0f;
  for (int c = 0; c < chunks; ++c) acc += partial[int64_t(c) * D + i];
  dw[i] += acc;
}

int row_blocks(int64_t N) { return int(div_up(N, kWarpsPerBlock)); }
}  // namespace

void rmsnorm_forward(const float* x, const float* w, float* y, bf16* y_bf16, float* rstd, int64_t N, int D, float eps,
                     cudaStream_t stream) {
  if (N <= 0) return;
  rmsnorm_forward_kernel<false><<<row_blocks(N), kWarpsPerBlock * 32, 0, stream>>>(const_cast<float*>(x), nullptr, w,
                                                                                   y, y_bf16, rstd, N, D, eps);
  LT_CUDA_LAUNCHED("rmsnorm_forward");
}

void add_rmsnorm_forward(float* a, const float* b, const float* w, float* y, bf16* y_bf16, float* rstd, int64_t N,
                         int D, float eps, cudaStream_t stream) {
  if (N <= 0) return;
  rmsnorm_forward_kernel<true><<<row_blocks(N), kWarpsPerBlock * 32, 0, stream>>>(a, b, w, y, y_bf16, rstd, N, D, eps);
  LT_CUDA_LAUNCHED("add_rmsnorm_forward");
}

size_t rmsnorm_backward_workspace_floats(int64_t N, int D) {
  return size_t(div_up(N, kRowsPerPartial)) * size_t(D);
}

void rmsnorm_backward(const float* dy, const float* x, const float* w, const float* rstd, float* dx, float* dw,
                      int64_t N, int D, bool accumulate_dx, float* workspace, cudaStream_t stream) {
  if (N <= 0) return;
  rmsnorm_backward_dx_kernel<<<row_blocks(N), kWarpsPerBlock * 32, 0, stream>>>(dy, x, w, rstd, dx, N, D,
                                                                                 accumulate_dx);
  LT_CUDA_LAUNCHED("rmsnorm_backward_dx");
  const int chunks = int(div_up(N, kRowsPerPartial));
  const dim3 grid(unsigned(div_up(D, 256)), unsigned(chunks));
  rmsnorm_dw_partial_kernel<<<grid, 256, 0, stream>>>(dy, x, rstd, workspace, N, D);
  LT_CUDA_LAUNCHED("rmsnorm_dw_partial");
  rmsnorm_dw_reduce_kernel<<<unsigned(div_up(D, 256)), 256, 0, stream>>>(workspace, dw, chunks, D);
  LT_CUDA_LAUNCHED("rmsnorm_dw_reduce");
}

}  // namespace lt::cuda
