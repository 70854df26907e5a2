// Where every parameter of one (tp, pp) shard lives.
//
// Parameter names are the Hugging Face ones ("model.layers.3.self_attn.q_proj.weight"), and
// weights are stored as transformers stores them: Linear weights are [out, in] row-major and
// q/k rows are in HF's rotate-half RoPE order. So HF checkpoints load by name, without any
// permutation, and each local tensor records which slice of the global tensor it holds.
//
// Splits (Megatron): q/k/v, gate/up and the LM head by output rows (column parallel);
// o_proj and down_proj by input columns (row parallel); the embedding by vocabulary rows;
// norms replicated. When tp > num_key_value_heads each rank holds one KV head, shared by
// tp / num_key_value_heads ranks. The vocabulary is cut into tp contiguous ranges of
// ceil(V/tp) rows (the last may be shorter), so no padding rows exist.
// Layers are cut across pp stages evenly, earlier stages taking one more when uneven,
// unless explicit cut points are given.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"

namespace lt {

struct ShardSpec {
  int tp = 1, tp_rank = 0;
  int pp = 1, pp_rank = 0;
  // Optional first layer of each stage (pp entries, starting with 0); empty: even cut.
  std::vector<int> stage_starts;
};

// The layers [begin, end) that stage `pp_rank` of `pp` holds.
struct LayerRange {
  int begin = 0, end = 0;
};
LayerRange stage_layers(const LlamaConfig& c, const ShardSpec& s);
// Validates that tp/pp divide the model; throws naming the numbers and what would work.
void validate_shard(const LlamaConfig& c, const ShardSpec& s);

// Local sizes of one tensor-parallel rank.
struct LocalDims {
  int n_heads;      // query heads on this rank
  int n_kv_heads;   // KV heads on this rank
  int kv_head0;     // global index of the first local KV head
  int kv_replicas;  // how many tp ranks hold each of these KV heads (1 unless tp > kv heads)
  int hidden;       // local SwiGLU width
  int vocab_begin;  // first global vocabulary row on this rank
  int vocab;        // vocabulary rows on this rank
};
LocalDims local_dims(const LlamaConfig& c, const ShardSpec& s);

enum class ParamKind { embedding, norm, attn_q, attn_k, attn_v, attn_o, mlp_gate, mlp_up, mlp_down, lm_head };

struct ParamInfo {
  std::string name;                   // Hugging Face name
  ParamKind kind;
  int layer = -1;                     // global layer index, -1 for embedding/final norm/head
  std::vector<int64_t> shape;         // local shape
  std::vector<int64_t> global_shape;  // shape of the whole tensor
  int split_dim = -1;                 // -1: replicated over tp; 0: rows; 1: columns
  int64_t split_begin = 0;            // first index along split_dim held here
  size_t offset = 0;                  // element offset in the shard's flat buffer
  size_t numel = 0;
  bool tied_copy = false;             // LM head holding a copy of the tied embedding (pp > 1)
};

class ParamLayout {
 public:
  ParamLayout(const LlamaConfig& c, const ShardSpec& s);
  const std::vector<ParamInfo>& params() const { return params_; }
  size_t total() const { return total_; }
  // nullptr if this shard does not hold `name`.
  const ParamInfo* find(const std::string& name) const;
  const LlamaConfig& config() const { return config_; }
  const ShardSpec& shard() const { return shard_; }
  LayerRange layers() const { return layers_; }
  bool first_stage() const { return shard_.pp_rank == 0; }
  bool last_stage() const { return shard_.pp_rank == shard_.pp - 1; }

 private:
  void add(std::string name, ParamKind kind, int layer, std::vector<int64_t> shape,
           std::vector<int64_t> global_shape, int split_dim, int64_t split_begin);
  LlamaConfig config_;
  ShardSpec shard_;
  LayerRange layers_;
  std::vector<ParamInfo> params_;
  size_t total_ = 0;
};

// Named float views into one flat buffer laid out by a ParamLayout (weights or gradients).
struct LayerWeights {
  float* attn_norm;  // (D)
  float* wq;         // (Hl*hd, D)
  float* wk;         // (KVl*hd, D)
  float* wv;         // (KVl*hd, D)
  float* wo;         // (D, Hl*hd)
  float* ffn_norm;   // (D)
  float* w_gate;     // (Fl, D)
  float* w_up;       // (Fl, D)
  float* w_down;     // (D, Fl)
};
struct StageWeights {
  float* embed = nullptr;       // (Vl, D), first stage only
  std::vector<LayerWeights> layers;
  float* final_norm = nullptr;  // (D), last stage only
  float* lm_head = nullptr;     // (Vl, D), last stage only; == embed when tied on one stage
};
StageWeights make_views(const ParamLayout& layout, float* base);

}  // namespace lt
