#include "kernels/cuda/attention_common.cuh"

namespace lt::cuda {

namespace attn {
namespace {

// One block: 64 queries of one (batch, head); warp w owns queries 16w .. 16w+15. Key blocks
// 0 .. the diagonal stream through double-buffered shared memory (cp.async), with the online
// softmax (running max m, sum l) in registers: each thread holds rows g and g+8 of its warp.
template <int HD>
__global__ void __launch_bounds__(kThreads) forward_kernel(const Params p) {
  constexpr int kStride = HD + 8, kTile = kBlockRows * kStride;
  extern __shared__ __align__(16) uint16_t smem[];
  uint16_t* Qs = smem;
  uint16_t* Ks = Qs + kTile;      // 2 buffers
  uint16_t* Vs = Ks + 2 * kTile;  // 2 buffers

  const int qb = gridDim.x - 1 - blockIdx.x;  // the longest rows start first
  const int b = blockIdx.y / p.H, h = blockIdx.y % p.H, kvh = h / p.group;
  const int q0 = qb * kBlockRows;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int row0 = q0 + warp * 16 + g, row1 = row0 + 8;
  const int nkb = qb + 1;  // key blocks up to the diagonal

  load_tile<kBlockRows, HD>(Qs, p.q, p.ldq, b, q0, p.T, h, p.hd);
  load_tile<kBlockRows, HD>(Ks, p.k, p.ldk, b, 0, p.T, kvh, p.hd);
  load_tile<kBlockRows, HD>(Vs, p.v, p.ldv, b, 0, p.T, kvh, p.hd);
  cp_async_commit();

  float o[HD / 8][4];
  zero(o);
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;

  for (int kb = 0; kb < nkb; ++kb) {
    const int buf = kb & 1;
    next_kv_block<HD>(Ks, Vs, kTile, kb, nkb, p.k, p.ldk, p.v, p.ldv, b, p.T, kvh, p.hd);
    const uint16_t* Kt = Ks + buf * kTile;
    const uint16_t* Vt = Vs + buf * kTile;

    // S = Q·Kᵀ for the warp's 16 queries × 64 keys.
    float s[8][4];
    zero(s);
    mma_rows<HD / 16, 4>(s, Qs, warp * 16, Kt, kStride);

    // Scale to log2 units; the diagonal block (the last) masks keys after the query and past T.
    const int k0 = kb * kBlockRows;
    const bool diagonal = kb == nkb - 1;
    float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
    for (int j = 0; j < 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float v = s[j][e] * p.scale_log2;
        if (diagonal) {
          const int key = k0 + j * 8 + 2 * t + (e & 1);
          const int row = e < 2 ? row0 : row1;
          if (key > row || key >= p.T) v = -INFINITY;
        }
        s[j][e] = v;
        if (e < 2) mx0 = fmaxf(mx0, v);
        else mx1 = fmaxf(mx1, v);
      }
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
    // Key 0 is in block 0 for every row, so the running max is finite from the first block on.
    const float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
    const float alpha0 = exp2f(m0 - mn0), alpha1 = exp2f(m1 - mn1);
    m0 = mn0, m1 = mn1;
    float ls0 = 0.0f, ls1 = 0.0f;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      s[j][0] = exp2f(s[j][0] - mn0);
      s[j][1] = exp2f(s[j][1] - mn0);
      s[j][2] = exp2f(s[j][2] - mn1);
      s[j][3] = exp2f(s[j][3] - mn1);
      ls0 += s[j][0] + s[j][1];
      ls1 += s[j][2] + s[j][3];
    }
    l0 = l0 * alpha0 + ls0;  // this thread's share of the row sum; summed over the quad at the end
    l1 = l1 * alpha1 + ls1;
#pragma unroll
    for (int j = 0; j < HD / 8; ++j) {
      o[j][0] *= alpha0, o[j][1] *= alpha0;
      o[j][2] *= alpha1, o[j][3] *= alpha1;
    }

    // O += P·V, P rounded to bf16 straight from the score registers.
    mma_regs<4, HD>(o, s, Vt, kStride);
    __syncthreads();  // the next iteration refills this buffer
  }

  l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
  l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
  l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
  l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
  store_rows<HD>(o, 1.0f / l0, 1.0f / l1, p.out32, p.out16, p.ldo, b, q0 + warp * 16, p.T, h, p.hd);
  if (t == 0) {
    constexpr float kLn2 = 0.6931471805599453f;
    float* lse = p.lse + (int64_t(b) * p.H + h) * p.T;
    if (row0 < p.T) lse[row0] = (m0 + log2f(l0)) * kLn2;
    if (row1 < p.T) lse[row1] = (m1 + log2f(l1)) * kLn2;
  }
}

template <int HD> void launch_forward_hd(const Params& p, cudaStream_t stream) {
  constexpr size_t smem = size_t(5) * kBlockRows * (HD + 8) * sizeof(uint16_t);
  static const bool configured = (allow_smem(forward_kernel<HD>, smem), true);
  (void)configured;
  const dim3 grid(unsigned(dev::div_up(p.T, kBlockRows)), unsigned(p.B * p.H));
  forward_kernel<HD><<<grid, kThreads, smem, stream>>>(p);
  LT_CUDA_LAUNCHED("flash_attention_forward");
}

}  // namespace

void launch_forward(const Params& p, cudaStream_t stream) {
  with_head_dim(p.hd, [&](auto hd) { launch_forward_hd<decltype(hd)::value>(p, stream); });
}

}  // namespace attn

}  // namespace lt::cuda
