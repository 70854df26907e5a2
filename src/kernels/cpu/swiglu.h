// SwiGLU: h = silu(g) · u,  silu(g) = g · sigmoid(g).  Over n elements.
#pragma once
#include <cstdint>

namespace lt::cpu {

void swiglu_forward(const float* g, const float* u, float* h, int64_t n);
// dg = dh · u · silu'(g),  du = dh · silu(g)   (written, not accumulated)
void swiglu_backward(const float* dh, const float* g, const float* u, float* dg, float* du, int64_t n);

}  // namespace lt::cpu
