// The flash-attention kernels' launch interface (internal to kernels/cuda/attention*): the
// public entry points (attention.cpp) check the shape and fill Params; the .cu files launch.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace lt::cuda::attn {

constexpr int kWarps = 4;  // 128 threads per block; each warp owns 16 rows of the block's tile
constexpr int kThreads = kWarps * 32;
constexpr int kBlockRows = 64;  // queries per block (forward, dQ) or keys per block (dK/dV)

// Everything a kernel needs, by value.
struct Params {
  const uint16_t *q, *k, *v;
  int64_t ldq, ldk, ldv;
  int B, T, H, KV, hd, group;  // group = H / KV
  float scale, scale_log2;     // 1/√hd, and that times log2(e) (the kernels use exp2)
  // forward outputs
  uint16_t* out16;
  float* out32;
  int64_t ldo;
  float* lse;
  // backward inputs and outputs
  const uint16_t* o16;
  const float* o32;
  const uint16_t* dout;
  int64_t lddo;
  float* delta;  // D [B, H, T]
  float *dq32, *dk32, *dv32;
  uint16_t *dq16, *dk16, *dv16;
  int64_t lddq, lddk, lddv;
};

// Head size the kernels are instantiated for: hd padded up to 32, 64 or 128.
inline int padded_head_dim(int hd) { return hd <= 32 ? 32 : hd <= 64 ? 64 : 128; }

void launch_forward(const Params& p, cudaStream_t stream);
// D = rowsum(dO∘O), then dK/dV, then dQ.
void launch_backward(const Params& p, cudaStream_t stream);

}  // namespace lt::cuda::attn
