// ShardedAdamW: AdamW over one (tp, pp) shard's flat parameter buffer, optionally with ZeRO-1.
//
// The flat buffer (ParamLayout order, padded to a multiple of dp) is cut into dp equal,
// contiguous ranges; with ZeRO-1 data-parallel rank d owns [begin, end) = [d·P/dp, (d+1)·P/dp),
// keeps AdamW's m and v for that range only, receives its range of the summed gradients by
// reduce-scatter, updates it and all-gathers the weights. Without ZeRO-1 every rank owns the
// whole buffer [0, P), all-reduces the whole gradient and updates everything; same maths.
//
// Weight decay is never applied to norm weights, and to the embedding / LM head only when
// decay_embeddings. The global gradient norm counts every parameter once: norm weights and
// replicated KV heads are identical on several tensor-parallel ranks, and a tied LM-head copy
// duplicates the embedding; `norm_weight` masks those out on all but one holder.
#pragma once
#include <cstdint>
#include <vector>

#include "core/buffer.h"
#include "model/layout.h"

namespace lt {

struct AdamWConfig {
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.1;
  bool decay_embeddings = true;
};

class ShardedAdamW {
 public:
  ShardedAdamW(const ParamLayout& layout, const AdamWConfig& cfg, int dp_rank, int dp_size, bool zero1);

  // Padded flat length (multiple of dp and 16); weight and gradient buffers must hold this many floats.
  static size_t padded_size(const ParamLayout& layout, int dp_size);
  size_t padded() const { return padded_; }
  size_t begin() const { return begin_; }
  size_t end() const { return end_; }
  bool zero1() const { return zero1_; }

  // Σ g² over this rank's range, counting only elements this rank "owns" for the norm.
  // `grad_range` holds the summed gradients of [begin, end).
  double range_sum_squares(const float* grad_range) const;
  // AdamW on [begin, end): weights + begin and grad_range are updated/read; t is 1-based.
  void update(float* weights, const float* grad_range, double lr, float grad_scale, int64_t t);

  float* exp_avg() { return m_.as<float>(); }
  float* exp_avg_sq() { return v_.as<float>(); }
  const float* exp_avg() const { return m_.as<float>(); }
  const float* exp_avg_sq() const { return v_.as<float>(); }

 private:
  struct Segment {
    size_t begin, end;  // within the flat buffer
    bool decay;
    bool count_in_norm;
  };
  std::vector<Segment> segments_;  // this rank's range, cut at parameter boundaries
  AdamWConfig cfg_;
  size_t padded_, begin_, end_;
  bool zero1_;
  Buffer m_, v_;
};

}  // namespace lt
