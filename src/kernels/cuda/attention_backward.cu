#include "kernels/cuda/attention_common.cuh"

namespace lt::cuda {

namespace attn {
namespace {

constexpr float kLog2e = 1.4426950408889634f;

// D[b, h, t] = Σ_i dO[t, h, i] · O[t, h, i]: one warp per (token row, head), lanes in a fixed order.
__global__ void delta_kernel(const Params p) {
  const int64_t w = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (w >= int64_t(p.B) * p.T * p.H) return;
  const int h = int(w % p.H);
  const int64_t n = w / p.H;  // token row b·T + t
  const uint16_t* dO = p.dout + n * p.lddo + int64_t(h) * p.hd;
  float acc = 0.0f;
  for (int i = lane; i < p.hd; i += 32) {
    const float o = p.o32 ? p.o32[n * p.ldo + int64_t(h) * p.hd + i] : dev::from_bf16(p.o16[n * p.ldo + int64_t(h) * p.hd + i]);
    acc += dev::from_bf16(dO[i]) * o;
  }
  acc = dev::warp_sum(acc);
  if (lane == 0) {
    const int64_t b = n / p.T, t = n % p.T;
    p.delta[(b * p.H + h) * p.T + t] = acc;
  }
}

// Loads lse (in log2 units) and D of rows [t0, t0 + kRows) of one head; rows past T get lse = +inf
// (so P = 0 there) and D = 0.
template <int kRows>
__device__ __forceinline__ void load_row_stats(float* lse_s, float* d_s, const Params& p, int b, int h, int t0) {
  for (int i = threadIdx.x; i < kRows; i += kThreads) {
    const int t = t0 + i;
    const int64_t o = (int64_t(b) * p.H + h) * p.T + t;
    lse_s[i] = t < p.T ? p.lse[o] * kLog2e : INFINITY;
    d_s[i] = t < p.T ? p.delta[o] : 0.0f;
  }
}

// dK and dV of 64 keys of one KV head; warp w owns keys 16w .. 16w+15. The loop visits every
// query head of the group and, for each, every block of BQ queries from the diagonal on, in
// that fixed order, with Q, dO, lse and D double-buffered: the sums need no atomics.
template <int HD, int BQ>
__global__ void __launch_bounds__(kThreads) dkdv_kernel(const Params p) {
  constexpr int kStride = HD + 8;
  constexpr int kKTile = kBlockRows * kStride, kQTile = BQ * kStride;
  extern __shared__ __align__(16) uint16_t smem[];
  uint16_t* Ks = smem;
  uint16_t* Vs = Ks + kKTile;
  uint16_t* Qs = Vs + kKTile;       // 2 buffers
  uint16_t* dOs = Qs + 2 * kQTile;  // 2 buffers
  float* lse_s = reinterpret_cast<float*>(dOs + 2 * kQTile);  // 2 × BQ
  float* d_s = lse_s + 2 * BQ;                                // 2 × BQ

  const int kb = blockIdx.x;
  const int b = blockIdx.y / p.KV, kvh = blockIdx.y % p.KV;
  const int k0 = kb * kBlockRows;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int key0 = k0 + warp * 16 + g, key1 = key0 + 8;
  const int qb_first = k0 / BQ, nqb = (p.T + BQ - 1) / BQ;
  const int per_head = nqb - qb_first, items = per_head * p.group;

  auto issue = [&](int it, int buf) {
    const int h = kvh * p.group + it / per_head;
    const int q0 = (qb_first + it % per_head) * BQ;
    load_tile<BQ, HD>(Qs + buf * kQTile, p.q, p.ldq, b, q0, p.T, h, p.hd);
    load_tile<BQ, HD>(dOs + buf * kQTile, p.dout, p.lddo, b, q0, p.T, h, p.hd);
    load_row_stats<BQ>(lse_s + buf * BQ, d_s + buf * BQ, p, b, h, q0);
  };
  load_tile<kBlockRows, HD>(Ks, p.k, p.ldk, b, k0, p.T, kvh, p.hd);
  load_tile<kBlockRows, HD>(Vs, p.v, p.ldv, b, k0, p.T, kvh, p.hd);
  issue(0, 0);
  cp_async_commit();

  float dk[HD / 8][4], dv[HD / 8][4];
  zero(dk);
  zero(dv);

  for (int it = 0; it < items; ++it) {
    const int buf = it & 1;
    if (it + 1 < items) {
      issue(it + 1, buf ^ 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const uint16_t* Qt = Qs + buf * kQTile;
    const uint16_t* dOt = dOs + buf * kQTile;
    const float* lse_t = lse_s + buf * BQ;
    const float* d_t = d_s + buf * BQ;
    const int q0 = (qb_first + it % per_head) * BQ;

    // Pᵀ = exp2(K·Qᵀ·scale − lse) for the warp's 16 keys × BQ queries; zero where key > query.
    float st[BQ / 8][4];
    zero(st);
    mma_rows<HD / 16, BQ / 16>(st, Ks, warp * 16, Qt, kStride);
#pragma unroll
    for (int j = 0; j < BQ / 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int qi = j * 8 + 2 * t + (e & 1);
        const int key = e < 2 ? key0 : key1;
        st[j][e] = key > q0 + qi ? 0.0f : exp2f(st[j][e] * p.scale_log2 - lse_t[qi]);
      }

    // dV += Pᵀ·dO
    mma_regs<BQ / 16, HD>(dv, st, dOt, kStride);

    // dPᵀ = V·dOᵀ, then dSᵀ = Pᵀ ∘ (dPᵀ − D)
    float dpt[BQ / 8][4];
    zero(dpt);
    mma_rows<HD / 16, BQ / 16>(dpt, Vs, warp * 16, dOt, kStride);
#pragma unroll
    for (int j = 0; j < BQ / 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) dpt[j][e] = st[j][e] * (dpt[j][e] - d_t[j * 8 + 2 * t + (e & 1)]);

    // dK += dSᵀ·Q (scaled at the end)
    mma_regs<BQ / 16, HD>(dk, dpt, Qt, kStride);
    __syncthreads();  // the next iteration refills this buffer
  }

  const int row0 = k0 + warp * 16;
  store_rows<HD>(dk, p.scale, p.scale, p.dk32, p.dk16, p.lddk, b, row0, p.T, kvh, p.hd);
  store_rows<HD>(dv, 1.0f, 1.0f, p.dv32, p.dv16, p.lddv, b, row0, p.T, kvh, p.hd);
}

// dQ of 64 queries of one head; warp w owns queries 16w .. 16w+15. Key blocks 0 .. the diagonal
// stream through double-buffered shared memory, P and dS recomputed from lse and D.
template <int HD>
__global__ void __launch_bounds__(kThreads) dq_kernel(const Params p) {
  constexpr int kStride = HD + 8, kTile = kBlockRows * kStride;
  extern __shared__ __align__(16) uint16_t smem[];
  uint16_t* Qs = smem;
  uint16_t* dOs = Qs + kTile;
  uint16_t* Ks = dOs + kTile;     // 2 buffers
  uint16_t* Vs = Ks + 2 * kTile;  // 2 buffers

  const int qb = gridDim.x - 1 - blockIdx.x;  // the longest rows start first
  const int b = blockIdx.y / p.H, h = blockIdx.y % p.H, kvh = h / p.group;
  const int q0 = qb * kBlockRows;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int row0 = q0 + warp * 16 + g, row1 = row0 + 8;
  const int nkb = qb + 1;

  const int64_t stat = (int64_t(b) * p.H + h) * p.T;
  const float lse0 = row0 < p.T ? p.lse[stat + row0] * kLog2e : INFINITY;
  const float lse1 = row1 < p.T ? p.lse[stat + row1] * kLog2e : INFINITY;
  const float d0 = row0 < p.T ? p.delta[stat + row0] : 0.0f;
  const float d1 = row1 < p.T ? p.delta[stat + row1] : 0.0f;

  load_tile<kBlockRows, HD>(Qs, p.q, p.ldq, b, q0, p.T, h, p.hd);
  load_tile<kBlockRows, HD>(dOs, p.dout, p.lddo, b, q0, p.T, h, p.hd);
  load_tile<kBlockRows, HD>(Ks, p.k, p.ldk, b, 0, p.T, kvh, p.hd);
  load_tile<kBlockRows, HD>(Vs, p.v, p.ldv, b, 0, p.T, kvh, p.hd);
  cp_async_commit();

  float dq[HD / 8][4];
  zero(dq);

  for (int kb = 0; kb < nkb; ++kb) {
    const int buf = kb & 1;
    next_kv_block<HD>(Ks, Vs, kTile, kb, nkb, p.k, p.ldk, p.v, p.ldv, b, p.T, kvh, p.hd);
    const uint16_t* Kt = Ks + buf * kTile;
    const uint16_t* Vt = Vs + buf * kTile;

    // S = Q·Kᵀ and dP = dO·Vᵀ for the warp's 16 queries × 64 keys.
    float s[8][4], dp[8][4];
    zero(s);
    zero(dp);
    mma_rows<HD / 16, 4>(s, Qs, warp * 16, Kt, kStride);
    mma_rows<HD / 16, 4>(dp, dOs, warp * 16, Vt, kStride);
    // dS = P ∘ (dP − D), P = exp2(S·scale − lse), zero after the diagonal and past T.
    const int k0 = kb * kBlockRows;
#pragma unroll
    for (int j = 0; j < 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int key = k0 + j * 8 + 2 * t + (e & 1);
        const int row = e < 2 ? row0 : row1;
        const float pr = key > row || key >= p.T ? 0.0f : exp2f(s[j][e] * p.scale_log2 - (e < 2 ? lse0 : lse1));
        s[j][e] = pr * (dp[j][e] - (e < 2 ? d0 : d1));
      }

    // dQ += dS·K (scaled at the end)
    mma_regs<4, HD>(dq, s, Kt, kStride);
    __syncthreads();
  }
  store_rows<HD>(dq, p.scale, p.scale, p.dq32, p.dq16, p.lddq, b, q0 + warp * 16, p.T, h, p.hd);
}

// 128-wide heads take 32 queries per dK/dV iteration to keep the accumulators in registers.
template <int HD> void launch_backward_hd(const Params& p, cudaStream_t stream) {
  constexpr int BQ = HD == 128 ? 32 : 64;
  constexpr size_t smem_dkdv = size_t(2 * kBlockRows + 4 * BQ) * (HD + 8) * sizeof(uint16_t) + 4 * BQ * sizeof(float);
  constexpr size_t smem_dq = size_t(6) * kBlockRows * (HD + 8) * sizeof(uint16_t);
  static const bool configured =
      (allow_smem(dkdv_kernel<HD, BQ>, smem_dkdv), allow_smem(dq_kernel<HD>, smem_dq), true);
  (void)configured;
  const unsigned blocks = unsigned(dev::div_up(p.T, kBlockRows));
  dkdv_kernel<HD, BQ><<<dim3(blocks, unsigned(p.B * p.KV)), kThreads, smem_dkdv, stream>>>(p);
  LT_CUDA_LAUNCHED("flash_attention_backward (dK, dV)");
  dq_kernel<HD><<<dim3(blocks, unsigned(p.B * p.H)), kThreads, smem_dq, stream>>>(p);
  LT_CUDA_LAUNCHED("flash_attention_backward (dQ)");
}

}  // namespace

void launch_backward(const Params& p, cudaStream_t stream) {
  const int64_t warps = int64_t(p.B) * p.T * p.H;
  delta_kernel<<<unsigned(dev::div_up(warps * 32, 256)), 256, 0, stream>>>(p);
  LT_CUDA_LAUNCHED("flash_attention_backward (D)");
  with_head_dim(p.hd, [&](auto hd) { launch_backward_hd<decltype(hd)::value>(p, stream); });
}

}  // namespace attn

}  // namespace lt::cuda
