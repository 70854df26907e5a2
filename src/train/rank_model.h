// RankModel: the part of the model this rank trains — one pipeline stage, or with an
// interleaved pipeline (parallel.virtual_stages = v) v model chunks. Chunk c of pipeline rank r
// is virtual stage c·pp + r of a v·pp-stage cut of the layers (parallel.stage_starts resolved
// over v·pp stages), so each chunk is an ordinary Stage of that cut, with its own flat
// weights and gradients, ZeRO-1 optimizer range and gradient reducer; checkpoints store the
// chunks as the shards of a v·pp-stage pipeline (the same format, loadable at any layout).
// The step's model-side work runs over every chunk here: zero the gradients, reduce them,
// Σg², AdamW, the ZeRO-1 all-gather, the stages' compute copies.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "model/backend.h"
#include "parallel/stage_balance.h"
#include "parallel/topology.h"
#include "train/grad_reducer.h"
#include "train/optimizer.h"
#include "train/run_config.h"

namespace lt {

struct ModelChunk {
  std::unique_ptr<ParamLayout> layout;
  std::unique_ptr<Stage> stage;
  std::unique_ptr<ShardedAdamW> opt;
  std::unique_ptr<GradientReducer> reducer;
};

struct RankModelOptions {
  StageGeometry geometry;  // config, options (slots and slot_grads are set per chunk), dp, zero1, threads
  StageCut cut;            // parallel.stage_starts
  int virtual_stages = 1;
  int micro_batches = 1;   // per replica and step (the pipeline's M)
  AdamWConfig adam;
  GradReduceOptions reduce;
};

// The options a run's config gives (dp: data-parallel size; micro_batches per replica and step).
RankModelOptions rank_model_options(const RunConfig& cfg, const LlamaConfig& model, int dp, int micro_batches);

class RankModel {
 public:
  RankModel(ProcessGroups& groups, Backend& backend, TensorParallelOps* tp, const RankModelOptions& o);

  int chunks() const { return int(chunks_.size()); }
  ModelChunk& chunk(int c) { return chunks_[size_t(c)]; }
  const ModelChunk& chunk(int c) const { return chunks_[size_t(c)]; }
  std::vector<Stage*> stages() const;
  // The first layer of each of the v·pp virtual stages (empty: the even cut).
  const std::vector<int>& stage_starts() const { return starts_; }

  void zero_grads();
  // Every chunk's reduction; grad_range(c) then holds chunk c's summed range (backend memory).
  void reduce();
  float* grad_range(int c) const { return ranges_[size_t(c)]; }
  // Σg² of this rank's ranges (each parameter counted once over the job, see optimizer.h).
  double range_sum_squares() const;
  // AdamW step t on every range with gradient scale `coef`, then the ZeRO-1 all-gather of the
  // weights and the stages' compute copies.
  void update(double lr, float coef, int64_t t);

  // The gradient reducers' statistics summed over chunks (grad_reducer.h), and their reset.
  nlohmann::json reduce_stats(int64_t steps) const;
  void reset_stats();
  double activation_bytes() const;
  // Bytes of one memory kind over every chunk's size table.
  double bytes(MemKind kind) const;
  // "weights … MiB, gradients …, optimizer …, activations …, workspace … (total … MiB)".
  std::string memory_report() const;

 private:
  ProcessGroups& groups_;
  std::vector<int> starts_;
  std::vector<ModelChunk> chunks_;
  std::vector<float*> ranges_;
};

}  // namespace lt
