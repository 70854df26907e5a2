// AdamW with decoupled weight decay, PyTorch's torch.optim.AdamW semantics, fused over a
// flat range: p ← p·(1 − lr·wd); m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²;
// p ← p − lr/(1−β1^t) · m / (√v/√(1−β2^t) + eps).  g is multiplied by grad_scale first
// (the clipping coefficient), t is the 1-based update count.
#pragma once
#include <cstdint>

namespace lt::cpu {

struct AdamWParams {
  double lr, beta1, beta2, eps, weight_decay;
  int64_t step;  // 1-based
  float grad_scale;
};

void adamw_update(float* p, const float* g, float* m, float* v, int64_t n, const AdamWParams& a);
// Σ g² over n elements, in double (for the global gradient norm).
double sum_squares(const float* g, int64_t n);

}  // namespace lt::cpu
