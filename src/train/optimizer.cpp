#include "train/optimizer.h"

#include <algorithm>

#include "kernels/cpu/adamw.h"

namespace lt {

size_t ShardedAdamW::padded_size(const ParamLayout& layout, int dp_size) {
  size_t unit = size_t(dp_size) * 16;
  return (layout.total() + unit - 1) / unit * unit;
}

ShardedAdamW::ShardedAdamW(const ParamLayout& layout, const AdamWConfig& cfg, int dp_rank, int dp_size, bool zero1)
    : cfg_(cfg), padded_(padded_size(layout, dp_size)), zero1_(zero1) {
  size_t part = padded_ / size_t(dp_size);
  begin_ = zero1 ? size_t(dp_rank) * part : 0;
  end_ = zero1 ? begin_ + part : padded_;
  const ShardSpec& s = layout.shard();
  const LocalDims ld = local_dims(layout.config(), s);
  for (const auto& p : layout.params()) {
    size_t b = std::max(begin_, p.offset), e = std::min(end_, p.offset + p.numel);
    if (b >= e) continue;
    bool is_norm = p.kind == ParamKind::norm;
    bool is_embed = p.kind == ParamKind::embedding || p.kind == ParamKind::lm_head;
    bool decay = !is_norm && (!is_embed || cfg.decay_embeddings);
    bool counted = true;
    if (p.split_dim < 0 && s.tp_rank != 0) counted = false;  // replicated over tp
    if ((p.kind == ParamKind::attn_k || p.kind == ParamKind::attn_v) && ld.kv_replicas > 1 &&
        s.tp_rank % ld.kv_replicas != 0)
      counted = false;  // the same KV head lives on kv_replicas ranks
    if (p.tied_copy) counted = false;  // the first stage counts the embedding
    segments_.push_back({b, e, decay, counted});
  }
  size_t n = end_ - begin_;
  m_ = Buffer(n * sizeof(float));
  v_ = Buffer(n * sizeof(float));
}

double ShardedAdamW::range_sum_squares(const float* grad_range) const {
  double total = 0;
  for (const auto& seg : segments_)
    if (seg.count_in_norm) total += cpu::sum_squares(grad_range + (seg.begin - begin_), int64_t(seg.end - seg.begin));
  return total;
}

void ShardedAdamW::update(float* weights, const float* grad_range, double lr, float grad_scale, int64_t t) {
  for (const auto& seg : segments_) {
    size_t off = seg.begin - begin_;
    cpu::AdamWParams a{lr, cfg_.beta1, cfg_.beta2, cfg_.eps, seg.decay ? cfg_.weight_decay : 0.0, t, grad_scale};
    cpu::adamw_update(weights + seg.begin, grad_range + off, m_.as<float>() + off, v_.as<float>() + off,
                      int64_t(seg.end - seg.begin), a);
  }
}

}  // namespace lt
