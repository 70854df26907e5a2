// Where the pipeline stages cut the layers (parallel.stage_starts), and what each stage costs.
//
//   auto (default)   cut by cost: the largest stage cost as small as it can be, each stage
//                    holding at least one layer; among cuts with the same largest cost the one
//                    with the smallest sum of squared costs (so the other stages are even too)
//   even             the layout's own rule: L / S layers each, earlier stages one more when uneven
//   0,a,b,...        the first layer of each stage, as given
//
// Cost of a stage per token, forward + backward, in FLOPs (the numbers `plan` uses): a layer
// 6·(2D² + 2D·KV + 3D·F) + 6·T·D (causal attention), 4/3 of that with full recomputation; the
// embedding on the first stage 3·D (gather, scatter-add of the gradient: memory-bound, small);
// the LM head and the cross-entropy on the last 6·V·D + 5·V (max, exp, sum, gradient).
// At stories15M the head alone costs 8.6 layers: the even cut gives the last of 2 stages 79% of
// the FLOPs, the auto cut 66% (a stage keeps at least one layer).
//
// With interleaved pipelines (parallel.virtual_stages = v) the cut is over the v·S model chunks
// (chunk k of rank r is virtual stage k·S + r; the first chunk holds the embedding, the last the
// head), and it is the ranks that are balanced — a rank runs all its chunks for every
// micro-batch: each rank's layers (at least v) are chosen as above, then shared evenly by its
// chunks. At stories15M pp 2, v 2 that gives ranks 4 | 2 layers + head, against 5 | 1 + head
// at v 1: a head this heavy makes interleaving cost more than it saves there.
#pragma once
#include <string>
#include <vector>

#include "core/enum_names.h"
#include "model/config.h"

namespace lt {

enum class StageCutMode { cost, even, list };

struct StageCut {
  StageCutMode mode = StageCutMode::cost;
  std::vector<int> starts;  // mode list: the first layer of each stage
  bool operator==(const StageCut&) const = default;
};
// "auto", "even" or a comma-separated list of layer indices ("[0,3,5]" brackets allowed).
// Throws "<what>: expected ..." (what: "config key 'parallel.stage_starts'", "--stage-starts").
StageCut parse_stage_cut(const std::string& text, const std::string& what);
std::string stage_cut_text(const StageCut& cut);

// Per-token FLOPs (forward + backward) of the pieces a stage can hold.
struct StageCostModel {
  double layer = 0, embedding = 0, head = 0;
};
StageCostModel stage_cost_model(const LlamaConfig& c, int seq_len, bool recompute);
// Cost of stage `s` of `stages` holding `layers` layers.
double stage_cost(const StageCostModel& m, int layers, int s, int stages);

// The first layer of each of the ranks·v (virtual) stages, minimising the largest rank cost
// (see above). Throws when there are fewer layers than stages.
std::vector<int> balanced_stage_starts(const StageCostModel& m, int n_layers, int ranks, int v = 1);
// The layer count of each stage for `starts` (empty: the even cut).
std::vector<int> stage_layer_counts(const std::vector<int>& starts, int n_layers, int stages);

// The starts a run uses for its pp·v (virtual) stages: explicit for `cost` and `list`, empty
// (the even cut, which ParamLayout computes) for `even`.
std::vector<int> resolve_stage_starts(const StageCut& cut, const LlamaConfig& c, int pp, int v, int seq_len,
                                      bool recompute);

}  // namespace lt
