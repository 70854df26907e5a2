#include "train/grad_reducer.h"

#include <algorithm>

#include "core/timer.h"

namespace lt {

GradientReducer::GradientReducer(ProcessGroups& groups, Stage& stage, const ShardedAdamW& opt, Backend& backend,
                                 GradReduceOptions o)
    : groups_(groups), stage_(stage), opt_(opt) {
  const LocalDims ld = local_dims(stage.layout().config(), stage.layout().shard());
  const int tp_rank = groups.coords().tp_rank;
  if (ld.kv_replicas > 1) kv_group_ = groups.tp().split(tp_rank / ld.kv_replicas, tp_rank);
  if (opt.zero1()) shard_ = backend.alloc(opt.end() - opt.begin());
  overlap_ = o.overlap && groups.dims().dp > 1 && groups.dp().nonblocking_reduce();
  if (overlap_) plan_buckets(std::max<size_t>(16, o.bucket_bytes / sizeof(float)));
}

GradientReducer::~GradientReducer() = default;

float* GradientReducer::range() const { return opt_.zero1() ? shard_.data() : stage_.grads() + opt_.begin(); }

// Buckets tile each owner's range [q·n, (q+1)·n) of the padded buffer; a parameter's parts are
// its elements in each bucket it crosses.
void GradientReducer::plan_buckets(size_t bucket_elems) {
  const int dp = groups_.dims().dp;
  const size_t n = opt_.padded() / size_t(dp);
  for (int q = 0; q < dp; ++q)
    for (size_t b = size_t(q) * n; b < size_t(q + 1) * n; b += bucket_elems)
      buckets_.push_back({b, std::min(b + bucket_elems, size_t(q + 1) * n), q});
  const ParamLayout& layout = stage_.layout();
  Comm* emb = layout.config().tie_embeddings ? groups_.embedding() : nullptr;
  for (const ParamInfo& p : layout.params()) {
    Param s;
    s.tied = emb && (p.kind == ParamKind::embedding || p.tied_copy);
    for (int b = 0; b < int(buckets_.size()); ++b) {
      const size_t lo = std::max(p.offset, buckets_[size_t(b)].begin),
                   hi = std::min(p.offset + p.numel, buckets_[size_t(b)].end);
      if (lo >= hi) continue;
      s.parts.push_back({b, hi - lo});
      buckets_[size_t(b)].waiting += hi - lo;
      buckets_[size_t(b)].tied |= s.tied;
    }
    params_.push_back(std::move(s));
  }
}

void GradientReducer::sum_over_tp(const ParamInfo& p) {
  float* g = stage_.grads();
  if (stage_.sequence_parallel() && p.kind == ParamKind::norm) groups_.tp().all_reduce_sum(g + p.offset, p.numel);
  if (kv_group_ && (p.kind == ParamKind::attn_k || p.kind == ParamKind::attn_v))
    kv_group_->all_reduce_sum(g + p.offset, p.numel);
}

void GradientReducer::complete(size_t i) {
  Param& s = params_[i];
  if (s.done) return;
  s.done = true;
  if (!s.tied) sum_over_tp(stage_.layout().params()[i]);
  for (auto [b, n] : s.parts) {
    Bucket& k = buckets_[size_t(b)];
    k.waiting -= n;
    if (k.waiting == 0 && !k.tied) start(b);
  }
}

void GradientReducer::start(int b) {
  Bucket& k = buckets_[size_t(b)];
  if (k.started) return;
  if (int(in_flight_.size()) >= kMaxInFlight) {  // bounded receive buffers: the oldest first
    Timer t;
    in_flight_.front().second->wait();
    in_flight_.erase(in_flight_.begin());
    wait_s_ += t.seconds();
  }
  k.started = true;
  early_ += in_hook_;
  Comm& dp = groups_.dp();
  const bool mine = k.owner == dp.rank();
  float* g = stage_.grads();
  // ZeRO-1: into this rank's range of the shard; otherwise summed in place, gathered at the end.
  float* out = !mine ? nullptr : opt_.zero1() ? shard_.data() + (k.begin - opt_.begin()) : g + k.begin;
  in_flight_.push_back({b, dp.ireduce_sum(g + k.begin, out, k.end - k.begin, k.owner)});
}

void GradientReducer::progress() {
  for (size_t i = 0; i < in_flight_.size();)
    if (in_flight_[i].second->test())
      in_flight_.erase(in_flight_.begin() + std::ptrdiff_t(i));
    else
      ++i;
}

void GradientReducer::grads_ready(size_t begin, size_t end) {
  const auto& ps = stage_.layout().params();
  in_hook_ = true;
  for (size_t i = 0; i < ps.size(); ++i)
    if (ps[i].offset >= begin && ps[i].offset + ps[i].numel <= end) complete(i);
  in_hook_ = false;
  progress();
}

nlohmann::json GradientReducer::stats(int64_t steps) const {
  return {{"overlap", overlap_}, {"buckets", buckets_.size()}, {"wait_s_per_step", wait_s_ / double(steps)},
          {"started_in_backward_per_step", double(early_) / double(steps)}};
}

void GradientReducer::finish_pending() {
  const ParamLayout& layout = stage_.layout();
  // Whatever the stage did not report (a stage without the hook reports nothing).
  for (size_t i = 0; i < params_.size(); ++i) complete(i);
  if (Comm* emb = groups_.embedding(); emb && layout.config().tie_embeddings) {
    float* g = stage_.grads();
    for (size_t i = 0; i < params_.size(); ++i)
      if (params_[i].tied) emb->all_reduce_sum(g + layout.params()[i].offset, layout.params()[i].numel);
  }
  for (int b = 0; b < int(buckets_.size()); ++b) start(b);  // tied ones and padding alone
  for (auto& [b, r] : in_flight_) r->wait();
  in_flight_.clear();
  if (!opt_.zero1()) {
    Comm& dp = groups_.dp();
    const size_t n = opt_.padded() / size_t(dp.size());
    dp.all_gather(stage_.grads() + size_t(dp.rank()) * n, stage_.grads(), n);
  }
  // Ready for the next step.
  for (Param& s : params_) s.done = false;
  for (Bucket& k : buckets_) {
    k.started = false;
    k.waiting = 0;
  }
  for (const Param& s : params_)
    for (auto [b, n] : s.parts) buckets_[size_t(b)].waiting += n;
}

float* GradientReducer::reduce() {
  Timer t;
  if (overlap_) {
    finish_pending();
    wait_s_ += t.seconds();
    return range();
  }
  float* g = stage_.grads();
  const ParamLayout& layout = stage_.layout();
  for (const auto& p : layout.params()) sum_over_tp(p);
  if (Comm* emb = groups_.embedding(); emb && layout.config().tie_embeddings)
    for (const auto& p : layout.params())
      if (p.kind == ParamKind::embedding || p.tied_copy) emb->all_reduce_sum(g + p.offset, p.numel);
  if (groups_.dims().dp > 1) {
    if (opt_.zero1())
      groups_.dp().reduce_scatter_sum(g, shard_.data(), opt_.end() - opt_.begin());
    else
      groups_.dp().all_reduce_sum(g, opt_.padded());
  }
  wait_s_ += t.seconds();
  return range();
}

}  // namespace lt
