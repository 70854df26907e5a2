#include "model/layout.h"

#include <fmt/format.h>

#include "core/error.h"

namespace lt {

LayerRange stage_layers(const LlamaConfig& c, const ShardSpec& s) {
  if (!s.stage_starts.empty()) {
    int b = s.stage_starts[s.pp_rank];
    int e = s.pp_rank + 1 < s.pp ? s.stage_starts[s.pp_rank + 1] : c.n_layers;
    return {b, e};
  }
  int base = c.n_layers / s.pp, extra = c.n_layers % s.pp;
  int b = s.pp_rank * base + std::min(s.pp_rank, extra);
  return {b, b + base + (s.pp_rank < extra ? 1 : 0)};
}

void validate_shard(const LlamaConfig& c, const ShardSpec& s) {
  LT_CHECK(s.tp >= 1 && s.pp >= 1, "parallel: tp and pp must be >= 1 (got tp={}, pp={})", s.tp, s.pp);
  LT_CHECK(s.tp_rank >= 0 && s.tp_rank < s.tp && s.pp_rank >= 0 && s.pp_rank < s.pp, "parallel: rank out of range");
  LT_CHECK(c.n_heads % s.tp == 0, "parallel.tp = {} must divide num_attention_heads = {} (try tp in {{{}}})", s.tp,
           c.n_heads, [&] {
             std::string o;
             for (int t = 1; t <= c.n_heads; ++t)
               if (c.n_heads % t == 0 && (c.n_kv_heads % t == 0 || t % c.n_kv_heads == 0) && c.hidden_dim % t == 0)
                 o += (o.empty() ? "" : ", ") + std::to_string(t);
             return o;
           }());
  LT_CHECK(c.n_kv_heads % s.tp == 0 || s.tp % c.n_kv_heads == 0,
           "parallel.tp = {} and num_key_value_heads = {}: one must divide the other", s.tp, c.n_kv_heads);
  LT_CHECK(c.hidden_dim % s.tp == 0, "parallel.tp = {} must divide intermediate_size = {}", s.tp, c.hidden_dim);
  LT_CHECK(c.vocab_size >= s.tp, "parallel.tp = {} exceeds vocab_size = {}", s.tp, c.vocab_size);
  LT_CHECK(s.pp <= c.n_layers, "parallel.pp = {} exceeds num_hidden_layers = {}", s.pp, c.n_layers);
  if (!s.stage_starts.empty()) {
    LT_CHECK(int(s.stage_starts.size()) == s.pp && s.stage_starts[0] == 0,
             "parallel.stage_starts must list {} first layers starting with 0", s.pp);
    for (int i = 1; i < s.pp; ++i)
      LT_CHECK(s.stage_starts[i] > s.stage_starts[i - 1] && s.stage_starts[i] < c.n_layers,
               "parallel.stage_starts must be increasing and below num_hidden_layers = {}", c.n_layers);
  }
}

LocalDims local_dims(const LlamaConfig& c, const ShardSpec& s) {
  LocalDims d{};
  d.n_heads = c.n_heads / s.tp;
  if (s.tp <= c.n_kv_heads) {
    d.n_kv_heads = c.n_kv_heads / s.tp;
    d.kv_head0 = s.tp_rank * d.n_kv_heads;
    d.kv_replicas = 1;
  } else {
    d.n_kv_heads = 1;
    d.kv_replicas = s.tp / c.n_kv_heads;
    d.kv_head0 = s.tp_rank / d.kv_replicas;
  }
  d.hidden = c.hidden_dim / s.tp;
  int per = (c.vocab_size + s.tp - 1) / s.tp;
  d.vocab_begin = std::min(c.vocab_size, s.tp_rank * per);
  d.vocab = std::min(c.vocab_size, d.vocab_begin + per) - d.vocab_begin;
  return d;
}

ParamLayout::ParamLayout(const LlamaConfig& c, const ShardSpec& s) : config_(c), shard_(s) {
  c.validate();
  validate_shard(c, s);
  layers_ = stage_layers(c, s);
  LocalDims d = local_dims(c, s);
  const int64_t D = c.dim, hd = c.head_dim(), F = c.hidden_dim, V = c.vocab_size;
  const int64_t Hl = d.n_heads, KVl = d.n_kv_heads, Fl = d.hidden, Vl = d.vocab;
  const int tr = s.tp_rank;
  if (first_stage())
    add("model.embed_tokens.weight", ParamKind::embedding, -1, {Vl, D}, {V, D}, 0, d.vocab_begin);
  for (int l = layers_.begin; l < layers_.end; ++l) {
    std::string p = fmt::format("model.layers.{}.", l);
    add(p + "input_layernorm.weight", ParamKind::norm, l, {D}, {D}, -1, 0);
    add(p + "self_attn.q_proj.weight", ParamKind::attn_q, l, {Hl * hd, D}, {c.n_heads * hd, D}, 0, tr * Hl * hd);
    add(p + "self_attn.k_proj.weight", ParamKind::attn_k, l, {KVl * hd, D}, {c.n_kv_heads * hd, D}, 0, d.kv_head0 * hd);
    add(p + "self_attn.v_proj.weight", ParamKind::attn_v, l, {KVl * hd, D}, {c.n_kv_heads * hd, D}, 0, d.kv_head0 * hd);
    add(p + "self_attn.o_proj.weight", ParamKind::attn_o, l, {D, Hl * hd}, {D, c.n_heads * hd}, 1, tr * Hl * hd);
    add(p + "post_attention_layernorm.weight", ParamKind::norm, l, {D}, {D}, -1, 0);
    add(p + "mlp.gate_proj.weight", ParamKind::mlp_gate, l, {Fl, D}, {F, D}, 0, tr * Fl);
    add(p + "mlp.up_proj.weight", ParamKind::mlp_up, l, {Fl, D}, {F, D}, 0, tr * Fl);
    add(p + "mlp.down_proj.weight", ParamKind::mlp_down, l, {D, Fl}, {D, F}, 1, tr * Fl);
  }
  if (last_stage()) {
    add("model.norm.weight", ParamKind::norm, -1, {D}, {D}, -1, 0);
    if (!c.tie_embeddings) {
      add("lm_head.weight", ParamKind::lm_head, -1, {Vl, D}, {V, D}, 0, d.vocab_begin);
    } else if (!first_stage()) {
      add("lm_head.weight", ParamKind::lm_head, -1, {Vl, D}, {V, D}, 0, d.vocab_begin);
      params_.back().tied_copy = true;
    }
  }
}

void ParamLayout::add(std::string name, ParamKind kind, int layer, std::vector<int64_t> shape,
                      std::vector<int64_t> global_shape, int split_dim, int64_t split_begin) {
  ParamInfo p;
  p.name = std::move(name);
  p.kind = kind;
  p.layer = layer;
  p.numel = 1;
  for (auto x : shape) p.numel *= size_t(x);
  p.shape = std::move(shape);
  p.global_shape = std::move(global_shape);
  p.split_dim = split_dim;
  p.split_begin = split_begin;
  // Keep every tensor 64-byte aligned (16 floats) for vector loads.
  p.offset = total_;
  total_ += (p.numel + 15) / 16 * 16;
  params_.push_back(std::move(p));
}

const ParamInfo* ParamLayout::find(const std::string& name) const {
  for (const auto& p : params_)
    if (p.name == name) return &p;
  return nullptr;
}

StageWeights make_views(const ParamLayout& layout, float* base) {
  StageWeights w;
  auto at = [&](const ParamInfo& p) { return base + p.offset; };
  const auto& ps = layout.params();
  size_t i = 0;
  if (layout.first_stage()) w.embed = at(ps[i++]);
  for (int l = layout.layers().begin; l < layout.layers().end; ++l) {
    LayerWeights lw{};
    lw.attn_norm = at(ps[i++]);
    lw.wq = at(ps[i++]);
    lw.wk = at(ps[i++]);
    lw.wv = at(ps[i++]);
    lw.wo = at(ps[i++]);
    lw.ffn_norm = at(ps[i++]);
    lw.w_gate = at(ps[i++]);
    lw.w_up = at(ps[i++]);
    lw.w_down = at(ps[i++]);
    w.layers.push_back(lw);
  }
  if (layout.last_stage()) {
    w.final_norm = at(ps[i++]);
    w.lm_head = i < ps.size() ? at(ps[i++]) : w.embed;
  }
  return w;
}

}  // namespace lt
