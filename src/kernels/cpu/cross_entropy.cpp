#include "kernels/cpu/cross_entropy.h"

#include <cmath>
#include <limits>

#include "kernels/cpu/vec_math.h"

namespace lt::cpu {

void ce_row_max(const float* logits, int64_t R, int V, float* mx) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < R; ++r) {
    const float* l = logits + r * V;
    float m = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : m)
    for (int j = 0; j < V; ++j) m = l[j] > m ? l[j] : m;
    mx[r] = m;
  }
}

void ce_row_sumexp(const float* logits, int64_t R, int V, int vocab_begin, const int32_t* targets, const float* mx,
                   float* sumexp, float* tlogit) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < R; ++r) {
    const float* l = logits + r * V;
    sumexp[r] = sum_exp(l, V, mx[r]);
    int64_t t = int64_t(targets[r]) - vocab_begin;
    tlogit[r] = (targets[r] >= 0 && t >= 0 && t < V) ? l[t] : 0.0f;
  }
}

double ce_loss_and_grad(float* logits, int64_t R, int V, int vocab_begin, const int32_t* targets, const float* lse,
                        const float* tlogit, float scale) {
  double total = 0.0;
  // Per-row losses are summed in row order after the parallel loop (deterministic).
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < R; ++r) {
    float* l = logits + r * V;
    if (targets[r] < 0) {
#pragma omp simd
      for (int j = 0; j < V; ++j) l[j] = 0.0f;
      continue;
    }
    exp_shift_scale(l, V, lse[r], scale);
    int64_t t = int64_t(targets[r]) - vocab_begin;
    if (t >= 0 && t < V) l[t] -= scale;
  }
  for (int64_t r = 0; r < R; ++r)
    if (targets[r] >= 0) total += double(lse[r]) - double(tlogit[r]);
  return total;
}

}  // namespace lt::cpu
