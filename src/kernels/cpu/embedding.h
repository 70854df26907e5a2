// Token embedding over a vocabulary range [vocab_begin, vocab_begin + V) (vocab-parallel:
// rows of other ranks give zeros here and are summed across tensor-parallel ranks).
#pragma once
#include <cstdint>

namespace lt::cpu {

void embedding_forward(const int32_t* tokens, const float* table, float* out, int64_t N, int D, int vocab_begin,
                       int V);
// dtable[tok] += dout[n]; columns are split across threads so each row's sum runs in token order.
void embedding_backward(const int32_t* tokens, const float* dout, float* dtable, int64_t N, int D, int vocab_begin,
                        int V);

}  // namespace lt::cpu
