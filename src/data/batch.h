// From samples to a model's inputs and targets: the one place that shifts tokens by one.
#pragma once
#include <cstdint>

namespace lt {

// `count` samples of `sample_tokens` tokens each give inputs s[0, T) and targets s[1, T] for
// T = seq_len (<= sample_tokens); when a sample holds exactly T tokens the last target is -1
// (ignored), the Hugging Face convention for blocks of exactly seq_len tokens. Returns the
// number of targets that count (>= 0).
int64_t samples_to_inputs_targets(const int32_t* samples, int count, int sample_tokens, int seq_len, int32_t* inputs,
                                  int32_t* targets);

}  // namespace lt
