// Vocabulary-parallel cross-entropy on the GPU, in the pieces of kernels/cpu/cross_entropy.h:
// this rank holds the logits of vocabulary rows [vocab_begin, vocab_begin + V) for R rows (one
// LM-head chunk, row stride ld); targets < 0 are ignored. Between the pieces the caller combines
// across tensor-parallel ranks: the max of mx → M, then ce_rescale_sumexp, then the sums of
// sumexp and tlogit, then ce_finish_lse. One rank: M = mx, and the rescale multiplies by 1.
//
// Each row is one block with a fixed thread-to-element assignment and a fixed reduction tree,
// so the statistics are the same bits every run. The loss is never summed with atomics: each
// row's loss lands in `row_loss` (double), and sum_rows adds a buffer of them in a fixed order.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/bf16.h"

namespace lt::cuda {

// mx[r] = max_j logits[r, j]; sumexp[r] = Σ_j exp(logits[r, j] − mx[r]); tlogit[r] = the target's
// logit when it lies in this range (else 0), all fp32, in one pass over each row.
void ce_row_stats(const float* logits, int64_t ld, int64_t R, int V, int vocab_begin, const int32_t* targets, float* mx,
                  float* sumexp, float* tlogit, cudaStream_t stream);
// sumexp[r] *= exp(mx[r] − M[r]) (this rank's sum relative to the global max M).
void ce_rescale_sumexp(const float* mx, const float* M, float* sumexp, int64_t R, cudaStream_t stream);
// lse[r] = M[r] + log(sumexp[r]) (lse may alias M).
void ce_finish_lse(const float* M, const float* sumexp, float* lse, int64_t R, cudaStream_t stream);
// row_loss[r] = lse[r] − tlogit[r] in double (tlogit summed over ranks), 0 for ignored rows.
void ce_row_losses(const int32_t* targets, const float* lse, const float* tlogit, double* row_loss, int64_t R,
                   cudaStream_t stream);
// The logits' gradient, scale · (softmax − onehot(target)), rounded to bf16 into grad (row stride
// ldg); ignored rows get zeros. grad may alias logits in place: pass (bf16*)logits with
// ldg = 2·ld — each row's bf16 gradient then fills the first half of that row's fp32 storage
// (every element is read before the half-word it lands on is written).
void ce_logits_grad(const float* logits, int64_t ld, int64_t R, int V, int vocab_begin, const int32_t* targets,
                    const float* lse, float scale, bf16* grad, int64_t ldg, cudaStream_t stream);
// out[0] (+)= Σ x[0..n) in double, in a fixed order (one block).
void sum_rows(const double* x, int64_t n, double* out, bool accumulate, cudaStream_t stream);

}  // namespace lt::cuda
