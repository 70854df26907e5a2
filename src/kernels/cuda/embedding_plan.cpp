#include <algorithm>
#include <numeric>

#include "core/error.h"
#include "kernels/cuda/embedding.h"

namespace lt::cuda {

EmbeddingGradPlan plan_embedding_backward(const int32_t* tokens, int64_t N, int vocab_begin, int V) {
  LT_CHECK(N < (int64_t(1) << 31), "embedding backward: {} tokens in one micro-batch exceed 2^31", N);
  // Counting sort by local row: stable, so each row's positions stay in token order.
  std::vector<int32_t> count(size_t(V) + 1, 0);
  for (int64_t n = 0; n < N; ++n) {
    const int64_t r = int64_t(tokens[n]) - vocab_begin;
    if (r >= 0 && r < V) ++count[size_t(r) + 1];
  }
  std::partial_sum(count.begin(), count.end(), count.begin());
  EmbeddingGradPlan p;
  p.positions.resize(size_t(count[size_t(V)]));
  std::vector<int32_t> next(count.begin(), count.end() - 1);
  for (int64_t n = 0; n < N; ++n) {
    const int64_t r = int64_t(tokens[n]) - vocab_begin;
    if (r >= 0 && r < V) p.positions[size_t(next[size_t(r)]++)] = int32_t(n);
  }
  for (int r = 0; r < V; ++r)
    if (count[size_t(r) + 1] > count[size_t(r)]) {
      p.rows.push_back(r);
      p.offsets.push_back(count[size_t(r)]);
    }
  p.offsets.push_back(count[size_t(V)]);
  return p;
}

std::vector<int32_t> EmbeddingGradPlan::packed() const {
  std::vector<int32_t> v;
  v.reserve(rows.size() + offsets.size() + positions.size());
  v.insert(v.end(), rows.begin(), rows.end());
  v.insert(v.end(), offsets.begin(), offsets.end());
  v.insert(v.end(), positions.begin(), positions.end());
  return v;
}

}  // namespace lt::cuda
