#include "kernels/cpu/cross_entropy.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/cpu/convert.h"
#include "kernels/cpu/vec_math.h"

namespace lt::cpu {

namespace {
// o[j] = bf16(exp(x[j] − shift)·scale − (j == target ? scale : 0)), in 4096-element blocks
// through a small fp32 stack buffer (the target's one-hot term is subtracted in fp32).
void exp_shift_scale_bf16(const float* x, bf16* o, int V, float shift, float scale, int64_t target) {
  alignas(64) float buf[4096];
  for (int j0 = 0; j0 < V; j0 += 4096) {
    const int n = std::min(4096, V - j0);
    std::memcpy(buf, x + j0, sizeof(float) * size_t(n));
    exp_shift_scale(buf, n, shift, scale);
    if (target >= j0 && target < j0 + n) buf[target - j0] -= scale;
    to_bf16_serial(buf, o + j0, n);
  }
}
}  // namespace

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
                        const float* tlogit, float scale, bf16* grad_bf16) {
  double total = 0.0;
  // Per-row losses are summed in row order after the parallel loop (deterministic).
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < R; ++r) {
    float* l = logits + r * V;
    const int64_t t = int64_t(targets[r]) - vocab_begin;
    if (grad_bf16) {
      bf16* o = grad_bf16 + r * V;
      if (targets[r] < 0) {
        std::memset(o, 0, sizeof(bf16) * size_t(V));
        continue;
      }
      exp_shift_scale_bf16(l, o, V, lse[r], scale, t >= 0 && t < V ? t : -1);
      continue;
    }
    if (targets[r] < 0) {
#pragma omp simd
      for (int j = 0; j < V; ++j) l[j] = 0.0f;
      continue;
    }
    exp_shift_scale(l, V, lse[r], scale);
    if (t >= 0 && t < V) l[t] -= scale;
  }
  for (int64_t r = 0; r < R; ++r)
    if (targets[r] >= 0) total += double(lse[r]) - double(tlogit[r]);
  return total;
}

}  // namespace lt::cpu
