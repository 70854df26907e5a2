#include "data/batch.h"

#include "core/error.h"

namespace lt {

namespace {
int64_t shift(const int32_t* samples, const int32_t* doc_start, int count, int sample_tokens, int seq_len,
              int32_t* inputs, int32_t* targets, int32_t* doc_in) {
  LT_CHECK(seq_len <= sample_tokens, "samples of {} tokens are shorter than the sequence length {}", sample_tokens,
           seq_len);
  const int T = seq_len, L = sample_tokens;
  int64_t counted = 0;
  for (int b = 0; b < count; ++b) {
    const int32_t* s = samples + int64_t(b) * L;
    const int32_t* d = doc_start ? doc_start + int64_t(b) * L : nullptr;
    for (int t = 0; t < T; ++t) {
      inputs[int64_t(b) * T + t] = s[t];
      int32_t target = t + 1 < L ? s[t + 1] : -1;
      if (d) {
        doc_in[int64_t(b) * T + t] = d[t];
        if (t + 1 < L && d[t + 1] == t + 1) target = -1;  // the next document's first token
      }
      targets[int64_t(b) * T + t] = target;
      counted += target >= 0;
    }
  }
  return counted;
}
}  // namespace

int64_t samples_to_inputs_targets(const int32_t* samples, int count, int sample_tokens, int seq_len, int32_t* inputs,
                                  int32_t* targets) {
  return shift(samples, nullptr, count, sample_tokens, seq_len, inputs, targets, nullptr);
}

int64_t samples_to_inputs_targets(const int32_t* samples, const int32_t* doc_start, int count, int sample_tokens,
                                  int seq_len, int32_t* inputs, int32_t* targets, int32_t* doc_in) {
  LT_CHECK(doc_start && doc_in, "document masking needs the document starts of the samples");
  return shift(samples, doc_start, count, sample_tokens, seq_len, inputs, targets, doc_in);
}

void document_start_of_tokens(const std::vector<int32_t>& starts, int sample_tokens, int32_t* out) {
  size_t next = 0;
  int32_t cur = 0;
  for (int32_t t = 0; t < sample_tokens; ++t) {
    while (next < starts.size() && starts[next] <= t) cur = starts[next++];
    out[t] = cur;
  }
}

}  // namespace lt
