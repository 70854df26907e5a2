#include "kernels/cuda/check.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/embedding.h"

namespace lt::cuda {

namespace {
using namespace dev;

constexpr int kThreads = 256;

// One block per token, threads across the row.
__global__ void embedding_forward_kernel(const int32_t* tokens, const float* table, float* out, int D, int vocab_begin,
                                         int V) {
  const int64_t n = blockIdx.x;
  const int64_t row = int64_t(tokens[n]) - vocab_begin;
  float* o = out + n * D;
  if (row >= 0 && row < V) {
    const float* t = table + row * D;
    for (int i = threadIdx.x; i < D; i += blockDim.x) o[i] = t[i];
  } else {
    for (int i = threadIdx.x; i < D; i += blockDim.x) o[i] = 0.0f;
  }
}

// Block (i, slice): row rows[i], columns of the slice; positions summed in order onto dtable.
__global__ void embedding_backward_kernel(const int32_t* plan, int num_rows, const float* dout, float* dtable, int D) {
  const int32_t* rows = plan;
  const int32_t* offsets = plan + num_rows;
  const int32_t* positions = offsets + num_rows + 1;
  const int i = blockIdx.x;
  const int c = blockIdx.y * blockDim.x + threadIdx.x;
  if (c >= D) return;
  float* dst = dtable + int64_t(rows[i]) * D + c;
  float acc = *dst;
  for (int32_t k = offsets[i]; k < offsets[i + 1]; ++k) acc += dout[int64_t(positions[k]) * D + c];
  *dst = acc;
}
}  // namespace

void embedding_forward(const int32_t* tokens, const float* table, float* out, int64_t N, int D, int vocab_begin,
                       int V, cudaStream_t stream) {
  if (N <= 0) return;
  embedding_forward_kernel<<<unsigned(N), kThreads, 0, stream>>>(tokens, table, out, D, vocab_begin, V);
  LT_CUDA_LAUNCHED("embedding_forward");
}

void embedding_backward(const int32_t* plan_device, int num_rows, int64_t num_positions, const float* dout,
                        float* dtable, int D, cudaStream_t stream) {
  if (num_rows <= 0 || num_positions <= 0) return;
  const dim3 grid(unsigned(num_rows), unsigned(div_up(D, kThreads)));
  embedding_backward_kernel<<<grid, kThreads, 0, stream>>>(plan_device, num_rows, dout, dtable, D);
  LT_CUDA_LAUNCHED("embedding_backward");
}

}  // namespace lt::cuda
