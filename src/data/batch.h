// From samples to a model's inputs and targets: the one place that shifts tokens by one.
#pragma once
#include <cstdint>
#include <vector>

namespace lt {

// `count` samples of `sample_tokens` tokens each give inputs s[0, T) and targets s[1, T] for
// T = seq_len (<= sample_tokens); when a sample holds exactly T tokens the last target is -1
// (ignored), the Hugging Face convention for blocks of exactly seq_len tokens. Returns the
// number of targets that count (>= 0).
int64_t samples_to_inputs_targets(const int32_t* samples, int count, int sample_tokens, int seq_len, int32_t* inputs,
                                  int32_t* targets);

// Document masking. `doc_start` [count, sample_tokens] gives each token's document start within
// its sample (document_start_of_tokens); doc_in [count, T] receives it for the input tokens, and
// a target that is the first token of a document is -1: the token before it ends another
// document, which under document masking cannot see the one that follows (so the loss of a
// packed sample is the sum of its documents' own losses).
int64_t samples_to_inputs_targets(const int32_t* samples, const int32_t* doc_start, int count, int sample_tokens,
                                  int seq_len, int32_t* inputs, int32_t* targets, int32_t* doc_in);

// out[t] (t < sample_tokens) = the position of the first token of token t's document: the last
// of `starts` (ascending document starts, TokenDataset::document_starts) at or before t, or 0
// for tokens of a document begun in an earlier sample.
void document_start_of_tokens(const std::vector<int32_t>& starts, int sample_tokens, int32_t* out);

}  // namespace lt
