// Causal self-attention with grouped KV heads, flash-style: queries and keys are visited in
// tiles with an online softmax, so no T×T matrix is ever stored. The forward keeps only the
// output and each row's log-sum-exp; the backward recomputes the probabilities tile by tile.
//
// Layouts (token-major rows, as the projections produce them; N = B·T):
//   q, out, dq: [N, H·hd]      k, v, dk, dv: [N, KV·hd]      lse: [B, H, T]
// Query head h reads KV head h / (H/KV). Scores are scaled by 1/√hd.
#pragma once
#include <cstddef>
#include <cstdint>

namespace lt::cpu {

// Document masking: with `doc_start` ([B·T]; doc_start[b·T + i] is the position in row b of the
// first token of query i's document, non-decreasing along a row) query i attends to keys
// doc_start .. i only — a block-diagonal causal mask; key tiles that no query of a tile may see
// are skipped. nullptr: plain causal.
struct AttnShape {
  int B, T, H, KV, hd;
  const int32_t* doc_start = nullptr;
};

void attention_forward(const float* q, const float* k, const float* v, float* out, float* lse, const AttnShape& s);
// Writes dq, dk, dv (=).
void attention_backward(const float* q, const float* k, const float* v, const float* out, const float* dout,
                        const float* lse, float* dq, float* dk, float* dv, const AttnShape& s);

// bf16 compute, fp32 interface: Q·Kᵀ, P·V, dO·Vᵀ, dS·K, dSᵀ·Q and Pᵀ·dO take bf16 operands
// (rounded to nearest even when packed) with fp32 accumulation (vdpbf16ps); softmax
// statistics, lse, D and all accumulators are fp32. A build without AVX512_BF16 code
// generation runs the fp32 kernels instead. Deterministic like the fp32 kernels.
void attention_forward_bf16(const float* q, const float* k, const float* v, float* out, float* lse,
                            const AttnShape& s);
void attention_backward_bf16(const float* q, const float* k, const float* v, const float* out, const float* dout,
                             const float* lse, float* dq, float* dk, float* dv, const AttnShape& s);

// Bytes each calling thread keeps for the backward of shape s (per-thread buffers, grown once
// to the largest shape seen and reused: the group's per-row D = rowsum(dO∘O) and, in bf16, the
// group's q and dO packed as bf16 words). `plan` counts them once per core.
size_t attention_backward_scratch_bytes(const AttnShape& s, bool bf16);

// Plain reference: materialises the full score matrix per head (tests only).
void attention_forward_ref(const float* q, const float* k, const float* v, float* out, float* lse,
                           const AttnShape& s);
void attention_backward_ref(const float* q, const float* k, const float* v, const float* dout, float* dq, float* dk,
                            float* dv, const AttnShape& s);

}  // namespace lt::cpu
