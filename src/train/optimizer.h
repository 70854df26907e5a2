// ShardedAdamW: AdamW over one (tp, pp) shard's flat parameter buffer, optionally with ZeRO-1.
//
// The flat buffer (ParamLayout order, padded to a multiple of 16·dp: padded_params()) is cut
// into dp equal, contiguous ranges; with ZeRO-1 data-parallel rank d owns [begin, end) =
// [d·P/dp, (d+1)·P/dp), keeps AdamW's m and v for that range only, receives its range of the
// summed gradients by reduce-scatter, updates it and all-gathers the weights. Without ZeRO-1
// every rank owns the whole buffer [0, P), all-reduces the whole gradient and updates
// everything; same maths.
//
// Weight decay is never applied to norm weights, and to the embedding / LM head only when
// decay_embeddings. The global gradient norm counts every parameter once: norm weights and
// replicated KV heads are identical on several tensor-parallel ranks, and a tied LM-head copy
// duplicates the embedding; those are masked out on all but one holder.
//
// The state (m, v) lives in backend memory and the maths runs through the backend
// (model/backend.h), so the same optimizer drives CPU and GPU stages.
#pragma once
#include <cstdint>
#include <vector>

#include "model/backend.h"
#include "model/layout.h"

namespace lt {

struct AdamWConfig {
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.1;
  bool decay_embeddings = true;
};

class ShardedAdamW {
 public:
  ShardedAdamW(const ParamLayout& layout, const AdamWConfig& cfg, int dp_rank, int dp_size, bool zero1,
               Backend& backend);

  size_t padded() const { return padded_; }
  size_t begin() const { return begin_; }
  size_t end() const { return end_; }
  bool zero1() const { return zero1_; }

  // Σ g² over this rank's range, counting only elements this rank "owns" for the norm.
  // `grad_range` holds the summed gradients of [begin, end) (backend memory).
  double range_sum_squares(const float* grad_range) const;
  // AdamW on [begin, end): weights + begin and grad_range are updated/read; t is 1-based.
  void update(float* weights, const float* grad_range, double lr, float grad_scale, int64_t t);

  // AdamW's m and v of [begin, end), in backend memory.
  float* exp_avg() { return m_.data(); }
  float* exp_avg_sq() { return v_.data(); }

 private:
  std::vector<OptimSegment> segments_;  // this rank's range, cut at parameter boundaries
  AdamWConfig cfg_;
  size_t padded_, begin_, end_;
  bool zero1_;
  Backend& backend_;
  BackendArray m_, v_;
};

}  // namespace lt
