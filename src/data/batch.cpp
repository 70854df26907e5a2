#include "data/batch.h"

#include "core/error.h"

namespace lt {

int64_t samples_to_inputs_targets(const int32_t* samples, int count, int sample_tokens, int seq_len, int32_t* inputs,
                                  int32_t* targets) {
  LT_CHECK(seq_len <= sample_tokens, "samples of {} tokens are shorter than the sequence length {}", sample_tokens,
           seq_len);
  const int T = seq_len, L = sample_tokens;
  int64_t counted = 0;
  for (int b = 0; b < count; ++b) {
    const int32_t* s = samples + int64_t(b) * L;
    for (int t = 0; t < T; ++t) {
      inputs[int64_t(b) * T + t] = s[t];
      const int32_t target = t + 1 < L ? s[t + 1] : -1;
      targets[int64_t(b) * T + t] = target;
      counted += target >= 0;
    }
  }
  return counted;
}

}  // namespace lt
