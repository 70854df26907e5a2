// Rotary position embedding, Hugging Face convention ("rotate half"): within each head of
// size hd, element i pairs with i + hd/2 (i < hd/2) and rotates by pos · inv_freq[i]
// (theta^(-2i/hd), scaled as the model's rope_scaling says: model/config.h rope_inv_freq).
// (Meta's original and llama2.c pair (2i, 2i+1) instead; HF checkpoints store q/k rows
// permuted so that both give the same model. docs/FORMATS.md gives the permutation.)
#pragma once
#include <cstdint>

namespace lt::cpu {

// cos/sin tables [T, hd/2] of the angles t · inv_freq[i], computed in double and rounded to fp32.
void rope_tables(float* cos_t, float* sin_t, int T, int hd, const double* inv_freq);
// x: [B·T, H·hd] rows (token-major, heads contiguous). Token row n has position n % T, or with
// `doc_start` (positions restarting per document) n % T − doc_start[n].
void rope_forward(float* x, const float* cos_t, const float* sin_t, int64_t BT, int T, int H, int hd,
                  const int32_t* doc_start = nullptr);
// The inverse rotation, applied to the gradient in place.
void rope_backward(float* dx, const float* cos_t, const float* sin_t, int64_t BT, int T, int H, int hd,
                   const int32_t* doc_start = nullptr);

}  // namespace lt::cpu
