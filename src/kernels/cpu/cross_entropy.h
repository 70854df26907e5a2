// Cross-entropy over (a range of) the vocabulary, in the pieces that vocab-parallel
// training needs: each tensor-parallel rank holds logits for vocabulary rows
// [vocab_begin, vocab_begin + V); the caller combines the row maxima (max), the row sums
// of exponentials (rescaled, sum) and the target logits (sum) across ranks between the steps.
// Targets < 0 are ignored (no loss, no gradient). Rows are R, logits are [R, V].
#pragma once
#include <cstdint>

#include "core/bf16.h"

namespace lt::cpu {

// One pass over each row: mx[r] = max_j logits[r, j], sumexp[r] = Σ_j exp(logits[r, j] − mx[r]),
// tlogit[r] = logits[r, target − vocab_begin], or 0 when the target lies outside this rank's
// range (or is ignored). Across tp ranks the caller takes the max M of the mx, rescales each
// rank's sumexp by exp(mx − M) and sums sumexp and tlogit.
void ce_row_stats(const float* logits, int64_t R, int V, int vocab_begin, const int32_t* targets, float* mx,
                  float* sumexp, float* tlogit);
// In place: logits → scale · (softmax − onehot(target)) with lse[r] = mx[r] + log(sumexp[r]);
// rows with an ignored target become 0. Returns Σ_r (lse[r] − tlogit[r]) over non-ignored rows
// (tlogit already summed over ranks), in double.
// With `grad_bf16` set, the gradient goes there rounded to bf16 instead (logits are left as they
// are): the bf16 LM-head backward then skips a separate conversion pass over R×V.
double ce_loss_and_grad(float* logits, int64_t R, int V, int vocab_begin, const int32_t* targets, const float* lse,
                        const float* tlogit, float scale, bf16* grad_bf16 = nullptr);

}  // namespace lt::cpu
