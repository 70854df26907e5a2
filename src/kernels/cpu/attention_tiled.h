// The fast path of the attention kernels (attention.h) for head sizes that are whole 16-lane
// AVX-512 vectors (16 .. 128: every Llama model's). Queries and keys are visited in 64 × 64
// blocks and every product of a block — QKᵀ, P·V, dO·Vᵀ, Pᵀ·dO, dSᵀ·Q, dS·K — runs through one
// register-blocked micro-kernel (rows × whole vectors of accumulators, the A operand
// broadcast, the B operand read as rows), the way a GEMM library tiles a matrix product.
// The forward keeps its scores transposed ([key][query]) so the online softmax runs down
// columns of 16 queries with no horizontal reductions. Same contract as attention.h:
// deterministic for any thread count, no T×T matrix, no atomics.
#pragma once
#include "kernels/cpu/attention.h"

namespace lt::cpu::tiled {

// Whether this build and shape take the tiled path (hd a multiple of 16, at most 128, AVX-512;
// bf16 also needs AVX512_BF16).
bool supported(const AttnShape& s, bool bf16);

// What backward / backward_bf16 keep per thread for shape s (attention_backward_scratch_bytes).
size_t backward_scratch_bytes(const AttnShape& s, bool bf16);

void forward(const float* q, const float* k, const float* v, float* out, float* lse, const AttnShape& s);
void backward(const float* q, const float* k, const float* v, const float* out, const float* dout,
              const float* lse, float* dq, float* dk, float* dv, const AttnShape& s);
// bf16 products (attention_forward_bf16's numerics); only when supported(s, true).
void forward_bf16(const float* q, const float* k, const float* v, float* out, float* lse, const AttnShape& s);
void backward_bf16(const float* q, const float* k, const float* v, const float* out, const float* dout,
                   const float* lse, float* dq, float* dk, float* dv, const AttnShape& s);

}  // namespace lt::cpu::tiled
