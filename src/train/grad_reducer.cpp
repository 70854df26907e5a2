#include "train/grad_reducer.h"

namespace lt {

GradientReducer::GradientReducer(ProcessGroups& groups, Stage& stage, const ShardedAdamW& opt, Backend& backend)
    : groups_(groups), stage_(stage), opt_(opt) {
  const LocalDims ld = local_dims(stage.layout().config(), stage.layout().shard());
  const int tp_rank = groups.coords().tp_rank;
  if (ld.kv_replicas > 1) kv_group_ = groups.tp().split(tp_rank / ld.kv_replicas, tp_rank);
  if (opt.zero1()) shard_ = backend.alloc(opt.end() - opt.begin());
}

float* GradientReducer::range() const { return opt_.zero1() ? shard_.data() : stage_.grads() + opt_.begin(); }

float* GradientReducer::reduce() {
  float* g = stage_.grads();
  const ParamLayout& layout = stage_.layout();
  if (stage_.sequence_parallel())
    for (const auto& p : layout.params())
      if (p.kind == ParamKind::norm) groups_.tp().all_reduce_sum(g + p.offset, p.numel);
  if (kv_group_)
    for (const auto& p : layout.params())
      if (p.kind == ParamKind::attn_k || p.kind == ParamKind::attn_v) kv_group_->all_reduce_sum(g + p.offset, p.numel);
  if (Comm* emb = groups_.embedding(); emb && layout.config().tie_embeddings)
    for (const auto& p : layout.params())
      if (p.kind == ParamKind::embedding || p.tied_copy) emb->all_reduce_sum(g + p.offset, p.numel);
  if (groups_.dims().dp > 1) {
    if (opt_.zero1())
      groups_.dp().reduce_scatter_sum(g, shard_.data(), opt_.end() - opt_.begin());
    else
      groups_.dp().all_reduce_sum(g, opt_.padded());
  }
  return range();
}

}  // namespace lt
