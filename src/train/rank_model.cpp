#include "train/rank_model.h"

#include <fmt/format.h>
#include <omp.h>

#include "core/error.h"
#include "train/pipeline.h"

namespace lt {

RankModel::RankModel(ProcessGroups& groups, Backend& backend, TensorParallelOps* tp, const RankModelOptions& o)
    : groups_(groups) {
  const ParallelDims& d = groups.dims();
  const RankCoords& rc = groups.coords();
  const int v = o.virtual_stages, stages = v * d.pp;
  const LlamaConfig& model = o.geometry.config;
  LT_CHECK(v == 1 || stages <= model.n_layers,
           "parallel.virtual_stages = {} x parallel.pp = {} = {} model chunks, more than the model's {} layers", v, d.pp,
           stages, model.n_layers);
  starts_ = resolve_stage_starts(o.cut, model, d.pp, v, o.geometry.options.seq_len, o.geometry.options.recompute);
  const std::vector<int> slots = PipelineSchedule::chunk_slots(d.pp, rc.pp_rank, o.micro_batches, v);
  for (int c = 0; c < v; ++c) {
    ModelChunk k;
    StageGeometry g = o.geometry;
    g.shard = {d.tp, rc.tp_rank, stages, c * d.pp + rc.pp_rank, starts_};
    g.options.slots = slots[size_t(c)];
    g.options.slot_grads = v > 1;
    k.layout = std::make_unique<ParamLayout>(model, g.shard);
    k.stage = backend.make_stage(*k.layout, g, tp);
    k.opt = std::make_unique<ShardedAdamW>(*k.layout, o.adam, rc.dp_rank, d.dp, g.zero1, backend);
    k.reducer = std::make_unique<GradientReducer>(groups, *k.stage, *k.opt, backend, o.reduce);
    chunks_.push_back(std::move(k));
  }
  ranges_.assign(chunks_.size(), nullptr);
}

std::vector<Stage*> RankModel::stages() const {
  std::vector<Stage*> s;
  for (const ModelChunk& c : chunks_) s.push_back(c.stage.get());
  return s;
}

void RankModel::zero_grads() {
  for (ModelChunk& c : chunks_) c.stage->zero_grads();
}

void RankModel::reduce() {
  for (size_t c = 0; c < chunks_.size(); ++c) ranges_[c] = chunks_[c].reducer->reduce();
}

double RankModel::range_sum_squares() const {
  double s = 0;
  for (size_t c = 0; c < chunks_.size(); ++c) s += chunks_[c].opt->range_sum_squares(ranges_[c]);
  return s;
}

void RankModel::update(double lr, float coef, int64_t t) {
  for (size_t c = 0; c < chunks_.size(); ++c) {
    ModelChunk& k = chunks_[c];
    float* w = k.stage->weights();
    k.opt->update(w, ranges_[c], lr, coef, t);
    if (k.opt->zero1()) groups_.dp().all_gather(w + k.opt->begin(), w, k.opt->end() - k.opt->begin());
    k.stage->refresh_weights();
  }
}

nlohmann::json RankModel::reduce_stats(int64_t steps) const {
  nlohmann::json s = chunks_[0].reducer->stats(steps);
  for (size_t c = 1; c < chunks_.size(); ++c) {
    const nlohmann::json o = chunks_[c].reducer->stats(steps);
    for (const char* k : {"buckets", "wait_s_per_step", "started_in_backward_per_step"})
      s[k] = s[k].get<double>() + o[k].get<double>();
  }
  return s;
}

void RankModel::reset_stats() {
  for (ModelChunk& c : chunks_) c.reducer->reset_stats();
}

double RankModel::activation_bytes() const {
  double b = 0;
  for (const ModelChunk& c : chunks_) b += c.stage->activation_bytes();
  return b;
}

double RankModel::bytes(MemKind kind) const {
  double b = 0;
  for (const ModelChunk& c : chunks_) b += c.stage->sizes().bytes(kind);
  return b;
}

RankModelOptions rank_model_options(const RunConfig& cfg, const LlamaConfig& model, int dp, int micro_batches) {
  RankModelOptions ro;
  ro.geometry = {model, {}, {}, dp, cfg.zero1 && dp > 1, omp_get_max_threads()};
  StageOptions& so = ro.geometry.options;
  so.micro_batch = cfg.micro_batch_size;
  so.seq_len = cfg.seq_len;
  so.recompute = cfg.recompute;
  so.pack_weights = cfg.pack_weights;
  so.precision = cfg.precision;
  so.sequence_parallel = cfg.sequence_parallel;
  so.document_mask = cfg.document_mask;
  ro.cut = cfg.stage_starts;
  ro.virtual_stages = cfg.virtual_stages;
  ro.micro_batches = micro_batches;
  ro.adam = {cfg.beta1, cfg.beta2, cfg.eps, cfg.weight_decay, cfg.decay_embeddings};
  ro.reduce = {cfg.overlap_grad_reduce, size_t(cfg.grad_bucket_mb * 1048576.0)};
  return ro;
}

std::string RankModel::memory_report() const {
  constexpr double MiB = 1024.0 * 1024.0;
  double total = 0;
  for (MemKind k : {MemKind::weights, MemKind::gradients, MemKind::optimizer, MemKind::activations, MemKind::workspace})
    total += bytes(k);
  return fmt::format("weights {:.1f} MiB, gradients {:.1f}, optimizer {:.1f}, activations {:.1f}, workspace {:.1f} "
                     "(total {:.1f} MiB)",
                     bytes(MemKind::weights) / MiB, bytes(MemKind::gradients) / MiB, bytes(MemKind::optimizer) / MiB,
                     bytes(MemKind::activations) / MiB, bytes(MemKind::workspace) / MiB, total / MiB);
}

}  // namespace lt
