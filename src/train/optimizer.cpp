#include "train/optimizer.h"

#include <algorithm>

namespace lt {

ShardedAdamW::ShardedAdamW(const ParamLayout& layout, const AdamWConfig& cfg, int dp_rank, int dp_size, bool zero1,
                           Backend& backend)
    : cfg_(cfg), padded_(padded_params(layout.total(), dp_size)), zero1_(zero1), backend_(backend) {
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
    segments_.push_back({b - begin_, e - begin_, decay, counted});
  }
  m_ = backend.alloc(end_ - begin_);
  v_ = backend.alloc(end_ - begin_);
}

double ShardedAdamW::range_sum_squares(const float* grad_range) const {
  return backend_.sum_squares(grad_range, segments_);
}

void ShardedAdamW::update(float* weights, const float* grad_range, double lr, float grad_scale, int64_t t) {
  const AdamWHyper h{lr, cfg_.beta1, cfg_.beta2, cfg_.eps, cfg_.weight_decay, t, grad_scale};
  backend_.adamw(weights + begin_, grad_range, m_.data(), v_.data(), segments_, h);
}

}  // namespace lt
