#include "kernels/cpu/embedding.h"

#include <cstring>

namespace lt::cpu {

void embedding_forward(const int32_t* tokens, const float* table, float* out, int64_t N, int D, int vocab_begin,
                       int V) {
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    int64_t row = int64_t(tokens[n]) - vocab_begin;
    if (row >= 0 && row < V)
      std::memcpy(out + n * D, table + row * D, sizeof(float) * size_t(D));
    else
      std::memset(out + n * D, 0, sizeof(float) * size_t(D));
  }
}

void embedding_backward(const int32_t* tokens, const float* dout, float* dtable, int64_t N, int D, int vocab_begin,
                        int V) {
  constexpr int kCols = 16;
#pragma omp parallel for schedule(static)
  for (int c0 = 0; c0 < D; c0 += kCols) {
    int c1 = c0 + kCols < D ? c0 + kCols : D;
    for (int64_t n = 0; n < N; ++n) {
      int64_t row = int64_t(tokens[n]) - vocab_begin;
      if (row < 0 || row >= V) continue;
      float* dst = dtable + row * D;
      const float* src = dout + n * D;
      for (int i = c0; i < c1; ++i) dst[i] += src[i];
    }
  }
}

}  // namespace lt::cpu
