// Causal GQA flash attention on the GPU (our own FlashAttention-2-style kernels): bf16 tensor
// cores (mma.sync m16n8k16, fp32 accumulation) for Q·Kᵀ, P·V, dO·Vᵀ, Pᵀ·dO, dSᵀ·Q and dS·K;
// the online softmax, lse, D = rowsum(dO∘O) and every accumulator in fp32. The semantics are
// kernels/cpu/attention.h's bf16 variant: layout [B, T, H, hd] rows (token-major, heads
// contiguous; row stride `ld`, 0 meaning dense), query head h reads KV head h / (H/KV), scores
// scaled by 1/√hd, causal (key j ≤ query i), lse [B, H, T] in natural log.
//
// Tiles of 64 queries × 64 keys; head sizes that are multiples of 16 up to 128 (each padded up
// to 32, 64 or 128 inside the kernel, so 64 and 128 run with no padding); any T.
// The backward is deterministic without atomics: one kernel owns a block of keys of one KV head
// and loops over every query head of its group and every query block in a fixed order (dK, dV);
// a second owns a block of queries and loops over the key blocks (dQ), recomputing P.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/bf16.h"
#include "kernels/cpu/attention.h"

namespace lt::cuda {

using cpu::AttnShape;

// Row strides in elements; 0 means dense (H·hd for q, out, dout, dq; KV·hd for k, v, dk, dv).
struct AttnStrides {
  int64_t q = 0, k = 0, v = 0, o = 0, dout = 0, dq = 0, dk = 0, dv = 0;
};

// Whether the kernels take this shape (and the reason when not): hd a multiple of 16 up to 128,
// H a multiple of KV, rows 16-byte aligned (strides multiples of 8).
bool flash_attention_supported(const AttnShape& s, const AttnStrides& ld, std::string* why);

// out (bf16) and/or out_f32 [B·T, H·hd], lse [B, H, T].
void flash_attention_forward(const bf16* q, const bf16* k, const bf16* v, bf16* out, float* out_f32, float* lse,
                             const AttnShape& s, cudaStream_t stream, const AttnStrides& ld = {});

// Bytes of scratch the backward needs (D = rowsum(dO∘O) per query row and head).
size_t flash_attention_backward_workspace_bytes(const AttnShape& s);
// The forward's output as bf16 `out` or fp32 `out_f32` (one of them); dq, dk, dv written (=) as
// fp32 and/or bf16 (null pointers are skipped).
void flash_attention_backward(const bf16* q, const bf16* k, const bf16* v, const bf16* out, const float* out_f32,
                              const bf16* dout, const float* lse, float* dq, float* dk, float* dv, bf16* dq_bf16,
                              bf16* dk_bf16, bf16* dv_bf16, void* workspace, const AttnShape& s, cudaStream_t stream,
                              const AttnStrides& ld = {});

}  // namespace lt::cuda
