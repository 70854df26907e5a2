#include "kernels/cpu/cross_entropy.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/cpu/convert.h"
#include "kernels/cpu/vec_math.h"

namespace lt::cpu {

namespace {
// o[j] = bf16(exp(x[j] − shift)·scale − (j == target ? scale : 0)) in one pass (the one-hot
// term is subtracted in fp32, then the value is rounded to nearest even once).
void exp_shift_scale_bf16(const float* x, bf16* o, int V, float shift, float scale, int64_t target) {
  int j = 0;
#if defined(__AVX512BF16__)
  const __m512 sh = _mm512_set1_ps(shift), sc = _mm512_set1_ps(scale);
  for (; j < V; j += 16) {
    const __mmask16 m = V - j >= 16 ? __mmask16(0xffff) : __mmask16((1u << (V - j)) - 1);
    __m512 e = _mm512_mul_ps(exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + j), sh)), sc);
    if (target >= j && target < j + 16) e = _mm512_mask_sub_ps(e, __mmask16(1u << (target - j)), e, sc);
    const __m256bh h = _mm512_cvtneps_pbh(e);
    __m256i w;
    std::memcpy(&w, &h, sizeof w);
    _mm256_mask_storeu_epi16(o + j, m, w);
  }
#else
  for (; j < V; ++j) o[j] = float_to_bf16(std::exp(x[j] - shift) * scale - (j == target ? scale : 0.0f));
#endif
}

// Max and Σ exp(x − max) of one row in a single pass: per lane a running max and a sum
// rescaled when the max grows, in blocks of 64 (one extra exp per block and lane).
void row_max_sumexp(const float* x, int V, float* max_out, float* sum_out) {
#if defined(__AVX512F__)
  const __m512 ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  __m512 m = ninf, s = _mm512_setzero_ps();  // exp512 maps the NaN of (−inf) − (−inf) to 0
  int j = 0;
  for (; j + 64 <= V; j += 64) {
    const __m512 a = _mm512_loadu_ps(x + j), b = _mm512_loadu_ps(x + j + 16);
    const __m512 c = _mm512_loadu_ps(x + j + 32), d = _mm512_loadu_ps(x + j + 48);
    const __m512 bm = _mm512_max_ps(m, _mm512_max_ps(_mm512_max_ps(a, b), _mm512_max_ps(c, d)));
    const __m512 ea = exp512(_mm512_sub_ps(a, bm)), eb = exp512(_mm512_sub_ps(b, bm));
    const __m512 ec = exp512(_mm512_sub_ps(c, bm)), ed = exp512(_mm512_sub_ps(d, bm));
    s = _mm512_fmadd_ps(s, exp512(_mm512_sub_ps(m, bm)), _mm512_add_ps(_mm512_add_ps(ea, eb), _mm512_add_ps(ec, ed)));
    m = bm;
  }
  for (; j < V; j += 16) {  // masked lanes read as −inf: no change to the max, exp 0
    const __mmask16 k = V - j >= 16 ? __mmask16(0xffff) : __mmask16((1u << (V - j)) - 1);
    const __m512 a = _mm512_mask_loadu_ps(ninf, k, x + j);
    const __m512 bm = _mm512_max_ps(m, a);
    s = _mm512_fmadd_ps(s, exp512(_mm512_sub_ps(m, bm)), exp512(_mm512_sub_ps(a, bm)));
    m = bm;
  }
  const float mx = _mm512_reduce_max_ps(m);
  *max_out = mx;
  *sum_out = _mm512_reduce_add_ps(_mm512_mul_ps(s, exp512(_mm512_sub_ps(m, _mm512_set1_ps(mx)))));
#else
  float mx = -std::numeric_limits<float>::infinity();
  for (int j = 0; j < V; ++j) mx = std::max(mx, x[j]);
  float sum = 0.0f;
  for (int j = 0; j < V; ++j) sum += std::exp(x[j] - mx);
  *max_out = mx;
  *sum_out = sum;
#endif
}
}  // namespace

void ce_row_stats(const float* logits, int64_t R, int V, int vocab_begin, const int32_t* targets, float* mx,
                  float* sumexp, float* tlogit) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < R; ++r) {
    const float* l = logits + r * V;
    row_max_sumexp(l, V, mx + r, sumexp + r);
    const int64_t t = int64_t(targets[r]) - vocab_begin;
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
