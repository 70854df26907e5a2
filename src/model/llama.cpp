#include "model/llama.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/rng.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/convert.h"
#include "kernels/cpu/cross_entropy.h"
#include "kernels/cpu/embedding.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/norm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/swiglu.h"

namespace lt {

using cpu::matmul;

namespace {
void add_inplace(float* y, const float* x, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}
}  // namespace

LlamaStage::LlamaStage(const ParamLayout& layout, const StageOptions& opt, float* weights, float* grads,
                       TensorParallelOps* tp)
    : layout_(layout), c_(layout.config()), ld_(local_dims(layout.config(), layout.shard())), opt_(opt),
      tp_(tp ? tp : &default_tp_), weights_(weights), bf16_(opt.precision == Precision::bf16) {
  LT_CHECK(opt.micro_batch >= 1 && opt.seq_len >= 1 && opt.slots >= 1, "stage: bad micro-batch shape");
  LT_CHECK(opt.seq_len <= c_.max_seq_len, "train.seq_len = {} exceeds the model's max_position_embeddings = {}",
           opt.seq_len, c_.max_seq_len);
  w_ = make_views(layout, weights);
  g_ = make_views(layout, grads);
  B_ = opt.micro_batch;
  T_ = opt.seq_len;
  N_ = B_ * T_;
  D_ = c_.dim;
  hd_ = c_.head_dim();
  qdim_ = ld_.n_heads * hd_;
  kvdim_ = ld_.n_kv_heads * hd_;
  F_ = ld_.hidden;
  const int tp_size = layout.shard().tp;
  sp_ = opt.sequence_parallel && tp_size > 1;
  LT_CHECK(!sp_ || N_ % tp_size == 0,
           "parallel.sequence_parallel: train.micro_batch_size x train.seq_len = {} x {} = {} tokens per micro-batch "
           "must be divisible by parallel.tp = {}",
           B_, T_, N_, tp_size);
  Nl_ = sp_ ? N_ / tp_size : N_;
  // Nr: rows of the residual stream and the norms (split over tp with sequence parallelism).
  const int64_t N = N_, Nr = Nl_, D = D_, Q = qdim_, KV = kvdim_, F = F_, Hl = ld_.n_heads;
  const int nl = layout.layers().end - layout.layers().begin;
  const bool last = layout.last_stage();
  head_rows_ = last ? head_chunk_rows(N, ld_.vocab) : 0;

  // Sizes of one layer's full activation record.
  const int64_t layer_full = 2 * Nr * D + Nr + N * Q + 2 * N * KV + N * Q + N * Hl + 2 * Nr * D + Nr + 3 * N * F;
  auto round16 = [](int64_t n) { return (n + 15) / 16 * 16; };
  int64_t per_slot = round16(N) /*tokens*/ + 2 * round16(Nr * D) + round16(Nr);
  per_slot += nl * (opt.recompute ? round16(Nr * D) : layer_full + 16 * 16);
  int64_t acts_floats = per_slot * opt.slots;
  int64_t work_floats = (opt.recompute ? layer_full + 16 * 16 + round16(Nr * D) : 0) + round16(Nr * D) +
                        round16(N * D) + (sp_ ? round16(N * D) : 0) +
                        2 * round16(N * Q) + 2 * round16(N * KV) + 3 * round16(N * F) +
                        round16(head_rows_ * ld_.vocab) + 4 * round16(head_rows_) + 2 * round16(T_ * hd_ / 2);
  acts_ = Buffer(size_t(acts_floats) * sizeof(float));
  work_ = Buffer(size_t(work_floats) * sizeof(float));

  float* ap = acts_.as<float>();
  float* wp = work_.as<float>();
  auto take = [](float*& p, int64_t n) {
    float* r = p;
    p += (n + 15) / 16 * 16;
    return r;
  };
  auto full_layer = [&](float*& p) {
    LayerActs a;
    a.x = take(p, Nr * D);
    a.ln1 = take(p, Nr * D);
    a.rstd1 = take(p, Nr);
    a.q = take(p, N * Q);
    a.k = take(p, N * KV);
    a.v = take(p, N * KV);
    a.att = take(p, N * Q);
    a.lse = take(p, N * Hl);
    a.x_mid = take(p, Nr * D);
    a.ln2 = take(p, Nr * D);
    a.rstd2 = take(p, Nr);
    a.gate = take(p, N * F);
    a.up = take(p, N * F);
    a.h = take(p, N * F);
    return a;
  };
  if (opt.recompute) {
    recompute_ = full_layer(wp);
    recompute_out_ = take(wp, Nr * D);
  }
  slots_.resize(size_t(opt.slots));
  for (auto& s : slots_) {
    s.tokens = reinterpret_cast<int32_t*>(take(ap, N));
    for (int l = 0; l < nl; ++l) {
      if (opt.recompute) {
        LayerActs a{};
        a.x = take(ap, Nr * D);
        s.layers.push_back(a);
      } else {
        s.layers.push_back(full_layer(ap));
      }
    }
    s.x_final = take(ap, Nr * D);
    s.lnf = take(ap, Nr * D);
    s.rstdf = take(ap, Nr);
  }
  d_res_ = take(wp, Nr * D);
  d_ln_ = take(wp, N * D);
  if (sp_) full_ = take(wp, N * D);
  d_q_ = take(wp, N * Q);
  d_att_ = take(wp, N * Q);
  d_k_ = take(wp, N * KV);
  d_v_ = take(wp, N * KV);
  d_gate_ = take(wp, N * F);
  d_up_ = take(wp, N * F);
  d_h_ = take(wp, N * F);
  logits_ = take(wp, head_rows_ * ld_.vocab);
  ce_mx_ = take(wp, head_rows_);
  ce_lse_ = take(wp, head_rows_);
  ce_st_ = take(wp, 2 * head_rows_);
  rope_cos_ = take(wp, T_ * hd_ / 2);
  rope_sin_ = take(wp, T_ * hd_ / 2);
  cpu::rope_tables(rope_cos_, rope_sin_, T_, hd_, rope_inv_freq(c_).data());
  if (bf16_) {
    const Bf16Buffers sz = bf16_buffers(N, D, Q, KV, F, head_rows_, ld_.vocab);
    bf16_work_ = Buffer(size_t(sz.total()) * sizeof(bf16));
    cvt_[0] = bf16_work_.as<bf16>();
    cvt_[1] = cvt_[0] + sz.a;
    cvt_[2] = cvt_[1] + sz.b;
    cvt_dyt_ = cvt_[2] + sz.shared;
  }
  if (bf16_ || opt.pack_weights) plan_packed();
}

void TensorParallelOps::all_gather_rows(const float* local, float* full, int64_t n_local) {
  if (full != local) std::memcpy(full, local, sizeof(float) * size_t(n_local));
}
void TensorParallelOps::reduce_scatter_rows(const float* full, float* local, int64_t n_local) {
  if (full != local) std::memcpy(local, full, sizeof(float) * size_t(n_local));
}

Precision parse_precision(const std::string& name) {
  if (name == "fp32") return Precision::fp32;
  if (name == "bf16") return Precision::bf16;
  fail("train.precision: expected fp32 or bf16, got '{}'", name);
}

void LlamaStage::refresh_weights() {
  for (auto& [key, g] : packed_) g->pack(key.first);
  packed_fresh_ = true;
}

LlamaStage::Mat LlamaStage::wmat(const float* w) const { return {w, nullptr, true}; }

void LlamaStage::plan_packed() {
  struct Use {
    const float* w;
    int64_t M, N, K;
    bool tb;
    int64_t tail;
  };
  std::vector<Use> uses;
  // A Linear layer's forward x·W^T and input gradient dy·W.
  auto linear = [&](const float* w, int64_t rows, int64_t out, int64_t in, int64_t tail) {
    uses.push_back({w, rows, out, in, true, tail});
    uses.push_back({w, rows, in, out, false, tail});
  };
  for (const LayerWeights& w : w_.layers) {
    linear(w.wq, N_, qdim_, D_, 0);
    linear(w.wk, N_, kvdim_, D_, 0);
    linear(w.wv, N_, kvdim_, D_, 0);
    linear(w.wo, N_, D_, qdim_, 0);
    linear(w.w_gate, N_, F_, D_, 0);
    linear(w.w_up, N_, F_, D_, 0);
    linear(w.w_down, N_, D_, F_, 0);
  }
  if (layout_.last_stage()) linear(w_.lm_head, head_rows_, ld_.vocab, D_, N_ % head_rows_);
  std::vector<size_t> offsets;
  size_t total = 0;
  for (const Use& u : uses) {
    auto g = std::make_unique<cpu::PackedGemm>(u.M, u.N, u.K, u.tb, bf16_, u.tail);
    offsets.push_back(total);
    total += (g->packed_bytes() + 63) / 64 * 64;
    packed_[{u.w, u.tb}] = std::move(g);
  }
  packed_store_ = Buffer(std::max<size_t>(total, 64));
  for (size_t i = 0; i < uses.size(); ++i)
    packed_[{uses[i].w, uses[i].tb}]->bind(static_cast<char*>(packed_store_.data()) + offsets[i]);
}

LlamaStage::Mat LlamaStage::cvt(const float* x, int64_t n, int buf) {
  if (!bf16_) return {x, nullptr};
  cpu::to_bf16(x, cvt_[buf], n);
  return {x, cvt_[buf]};
}

void LlamaStage::mm(Mat A, Mat B, float* C, int64_t M, int64_t N, int64_t K, bool ta, bool tb, bool acc) {
  if (B.weight && !ta && !packed_.empty()) {
    if (!packed_fresh_) refresh_weights();
    auto it = packed_.find({B.f, tb});
    LT_CHECK(it != packed_.end(), "stage: no packed copy planned for this weight GEMM");
    if (bf16_ && !A.h) A = cvt(A.f, M * K, 0);
    return it->second->run(bf16_ ? static_cast<const void*>(A.h) : A.f, C, M, acc);
  }
  if (!bf16_) return matmul(A.f, B.f, C, M, N, K, ta, tb, acc);
  // bf16 without a weight: the LM head's weight gradient, both operands converted by then (the
  // layers' weight gradients go through wgrad, which owns conversion buffer 1).
  LT_CHECK(A.h && B.h, "stage: a bf16 GEMM without a weight needs both operands converted first");
  cpu::matmul_bf16(A.h, B.h, C, M, N, K, ta, tb, acc);
}

void LlamaStage::wgrad(const float* x, int64_t in, std::initializer_list<WGrad> parts) {
  if (!bf16_) {
    for (const WGrad& p : parts) mm({p.dy, nullptr}, {x, nullptr}, p.dw, p.out, in, N_, true, false, true);
    return;
  }
  cpu::to_bf16_transposed(x, N_, in, cvt_[1], N_);
  const WGrad* it = parts.begin();
  int64_t row = 0;
  while (it != parts.end()) {
    float* dw = it->dw;
    const int64_t first = row;
    do {  // the run of parts whose gradients follow each other in memory
      row += it->out;
      ++it;
    } while (it != parts.end() && it->dw == dw + (row - first) * in);
    cpu::matmul_bf16(cvt_dyt_ + first * N_, cvt_[1], dw, row - first, in, N_, false, true, true);
  }
}

LlamaStage::Mat LlamaStage::cvt_dy(const float* dy, int64_t cols, int buf, int64_t row) {
  if (!bf16_) return {dy, nullptr};
  cpu::to_bf16_transposed(dy, N_, cols, cvt_dyt_ + row * N_, N_, cvt_[buf]);
  return {dy, cvt_[buf]};
}

void LlamaStage::logits(int slot, float* out) const {
  LT_CHECK(layout_.last_stage(), "logits: only the last pipeline stage has the LM head");
  auto* self = const_cast<LlamaStage*>(this);  // gather and conversion scratch, packed weights
  const float* lnf = self->gather_rows(slots_[size_t(slot)].lnf);
  for (int64_t r0 = 0; r0 < N_; r0 += head_rows_) {  // the head's chunks: its packed shapes
    const int64_t R = std::min<int64_t>(head_rows_, N_ - r0);
    self->mm(self->cvt(lnf + r0 * D_, R * D_, 2), wmat(w_.lm_head), out + r0 * ld_.vocab, R, ld_.vocab, D_, false,
             true, false);
  }
}

const float* LlamaStage::gather_rows(const float* local) {
  if (!sp_) return local;
  tp_->all_gather_rows(local, full_, int64_t(Nl_) * D_);
  return full_;
}

void LlamaStage::sum_partial(float* partial, float* out) {
  if (sp_)
    tp_->reduce_scatter_rows(partial, out, int64_t(Nl_) * D_);
  else
    tp_->reduce_partial(out, int64_t(N_) * D_);
}

const float* LlamaStage::sum_input_grad() {
  if (!sp_) {
    tp_->reduce_input_grad(d_ln_, int64_t(N_) * D_);
    return d_ln_;
  }
  tp_->reduce_scatter_rows(d_ln_, full_, int64_t(Nl_) * D_);
  return full_;
}

const float* LlamaStage::output(int slot) const { return slots_[size_t(slot)].x_final; }

void LlamaStage::layer_forward(const LayerWeights& w, const LayerActs& a, float* x_out) {
  // With sequence parallelism full_ takes in turn the gathered ln1, o_proj's partial output,
  // the gathered ln2 and down_proj's partial output.
  const int64_t N = N_, Nl = Nl_, D = D_;
  cpu::rmsnorm_forward(a.x, w.attn_norm, a.ln1, a.rstd1, Nl, D_, c_.norm_eps);
  const Mat ln1 = cvt(gather_rows(a.ln1), N * D, 2);
  mm(ln1, wmat(w.wq), a.q, N, qdim_, D, false, true, false);
  mm(ln1, wmat(w.wk), a.k, N, kvdim_, D, false, true, false);
  mm(ln1, wmat(w.wv), a.v, N, kvdim_, D, false, true, false);
  cpu::rope_forward(a.q, rope_cos_, rope_sin_, N, T_, ld_.n_heads, hd_);
  cpu::rope_forward(a.k, rope_cos_, rope_sin_, N, T_, ld_.n_kv_heads, hd_);
  // bf16 mode: attention's matmuls take bf16 operands too (fp32 softmax and accumulation).
  (bf16_ ? cpu::attention_forward_bf16 : cpu::attention_forward)(a.q, a.k, a.v, a.att, a.lse,
                                                                 {B_, T_, ld_.n_heads, ld_.n_kv_heads, hd_});
  float* attn_out = sp_ ? full_ : a.x_mid;
  mm({a.att, nullptr}, wmat(w.wo), attn_out, N, D, qdim_, false, true, false);
  sum_partial(attn_out, a.x_mid);
  cpu::add_rmsnorm_forward(a.x_mid, a.x, w.ffn_norm, a.ln2, a.rstd2, Nl, D_, c_.norm_eps);
  const Mat ln2 = cvt(gather_rows(a.ln2), N * D, 2);
  mm(ln2, wmat(w.w_gate), a.gate, N, F_, D, false, true, false);
  mm(ln2, wmat(w.w_up), a.up, N, F_, D, false, true, false);
  cpu::swiglu_forward(a.gate, a.up, a.h, N * F_);
  float* mlp_out = sp_ ? full_ : x_out;
  mm({a.h, nullptr}, wmat(w.w_down), mlp_out, N, D, F_, false, true, false);
  sum_partial(mlp_out, x_out);
  add_inplace(x_out, a.x_mid, Nl * D);
}

// On entry d_res_ holds the gradient of the layer output; on exit that of its input.
// With sequence parallelism d_res_ holds this rank's rows and full_ takes in turn the gathered
// output gradient, the gathered ln2, the summed input gradient of gate/up, and the same for ln1.
void LlamaStage::layer_backward(const LayerWeights& w, const LayerWeights& g, const LayerActs& a) {
  const int64_t N = N_, Nl = Nl_, D = D_, Q = qdim_, KV = kvdim_, F = F_;
  // x_out = x_mid + h·Wd^T
  Mat dres = cvt_dy(gather_rows(d_res_), D, 2, 0);
  mm(dres, wmat(w.w_down), d_h_, N, F, D, false, false, false);
  wgrad(a.h, F, {{dres.f, g.w_down, D}});
  cpu::swiglu_backward(d_h_, a.gate, a.up, d_gate_, d_up_, N * F);
  const float* ln2 = gather_rows(a.ln2);
  mm(cvt_dy(d_gate_, F, 0, 0), wmat(w.w_gate), d_ln_, N, D, F, false, false, false);
  mm(cvt_dy(d_up_, F, 0, F), wmat(w.w_up), d_ln_, N, D, F, false, false, true);
  wgrad(ln2, D, {{d_gate_, g.w_gate, F}, {d_up_, g.w_up, F}});
  cpu::rmsnorm_backward(sum_input_grad(), a.x_mid, w.ffn_norm, a.rstd2, d_res_, g.ffn_norm, Nl, D_, true);
  // x_mid = x + att·Wo^T
  dres = cvt_dy(gather_rows(d_res_), D, 2, 0);
  mm(dres, wmat(w.wo), d_att_, N, Q, D, false, false, false);
  wgrad(a.att, Q, {{dres.f, g.wo, D}});
  (bf16_ ? cpu::attention_backward_bf16 : cpu::attention_backward)(a.q, a.k, a.v, a.att, d_att_, a.lse, d_q_, d_k_,
                                                                   d_v_, {B_, T_, ld_.n_heads, ld_.n_kv_heads, hd_});
  cpu::rope_backward(d_q_, rope_cos_, rope_sin_, N, T_, ld_.n_heads, hd_);
  cpu::rope_backward(d_k_, rope_cos_, rope_sin_, N, T_, ld_.n_kv_heads, hd_);
  const float* ln1 = gather_rows(a.ln1);
  mm(cvt_dy(d_q_, Q, 0, 0), wmat(w.wq), d_ln_, N, D, Q, false, false, false);
  mm(cvt_dy(d_k_, KV, 0, Q), wmat(w.wk), d_ln_, N, D, KV, false, false, true);
  mm(cvt_dy(d_v_, KV, 0, Q + KV), wmat(w.wv), d_ln_, N, D, KV, false, false, true);
  wgrad(ln1, D, {{d_q_, g.wq, Q}, {d_k_, g.wk, KV}, {d_v_, g.wv, KV}});
  cpu::rmsnorm_backward(sum_input_grad(), a.x, w.attn_norm, a.rstd1, d_res_, g.attn_norm, Nl, D_, true);
}

double LlamaStage::head_forward_backward(const Slot& s, const int32_t* targets, float loss_scale, bool need_grad) {
  const int64_t N = N_, D = D_;
  const int V = ld_.vocab, vb = ld_.vocab_begin;
  cpu::rmsnorm_forward(s.x_final, w_.final_norm, s.lnf, s.rstdf, Nl_, D_, c_.norm_eps);
  const float* lnf_rows = gather_rows(s.lnf);  // all N rows: the LM head is vocab-parallel
  double loss = 0.0;
  const Mat head = wmat(w_.lm_head);
  for (int64_t r0 = 0; r0 < N; r0 += head_rows_) {
    const int64_t R = std::min(head_rows_, N - r0);
    const int32_t* tg = targets + r0;
    const Mat lnf = cvt(lnf_rows + r0 * D, R * D, 2);
    mm(lnf, head, logits_, R, V, D, false, true, false);
    float* sumexp = ce_st_;
    float* tlogit = ce_st_ + R;
    cpu::ce_row_stats(logits_, R, V, vb, tg, ce_mx_, sumexp, tlogit);  // this rank's max and sum
    std::copy(ce_mx_, ce_mx_ + R, ce_lse_);
    tp_->vocab_max(ce_lse_, R);  // the row max over the whole vocabulary
    for (int64_t r = 0; r < R; ++r) sumexp[r] *= std::exp(ce_mx_[r] - ce_lse_[r]);  // 1 on one rank
    tp_->vocab_sum(ce_st_, 2 * R);
    for (int64_t r = 0; r < R; ++r) ce_lse_[r] += std::log(sumexp[r]);
    if (!need_grad) {
      for (int64_t r = 0; r < R; ++r)
        if (tg[r] >= 0) loss += double(ce_lse_[r]) - double(tlogit[r]);
      continue;
    }
    // bf16: the loss kernel writes the logits' gradient straight into conversion buffer 0.
    loss += cpu::ce_loss_and_grad(logits_, R, V, vb, tg, ce_lse_, tlogit, loss_scale, bf16_ ? cvt_[0] : nullptr);
    const Mat dlogits{logits_, bf16_ ? cvt_[0] : nullptr};
    mm(dlogits, head, d_ln_ + r0 * D, R, D, V, false, false, false);
    mm(dlogits, lnf, g_.lm_head, V, D, R, true, false, true);
  }
  if (need_grad) {
    cpu::rmsnorm_backward(sum_input_grad(), s.x_final, w_.final_norm, s.rstdf, d_res_, g_.final_norm, Nl_, D_, false);
  }
  return loss;
}

double LlamaStage::forward(int slot, const int32_t* tokens, const float* x_in, const int32_t* targets,
                           float loss_scale, bool need_grad) {
  Slot& s = slots_[size_t(slot)];
  const int64_t N = N_, D = D_;
  const int nl = int(s.layers.size());
  float* x0 = nl > 0 ? s.layers[0].x : s.x_final;
  if (layout_.first_stage()) {
    std::memcpy(s.tokens, tokens, sizeof(int32_t) * size_t(N));
    float* emb = sp_ ? full_ : x0;  // vocab-parallel partial rows
    cpu::embedding_forward(tokens, w_.embed, emb, N, D_, ld_.vocab_begin, ld_.vocab);
    sum_partial(emb, x0);
  } else {
    std::memcpy(x0, x_in, sizeof(float) * size_t(int64_t(Nl_) * D));
  }
  for (int l = 0; l < nl; ++l) {
    float* x_out = l + 1 < nl ? s.layers[size_t(l) + 1].x : s.x_final;
    if (opt_.recompute) {
      recompute_.x = s.layers[size_t(l)].x;
      layer_forward(w_.layers[size_t(l)], recompute_, x_out);
    } else {
      layer_forward(w_.layers[size_t(l)], s.layers[size_t(l)], x_out);
    }
  }
  if (!layout_.last_stage()) return 0.0;
  // The head's backward runs here, fused with the loss; backward() continues from d_res_.
  return head_forward_backward(s, targets, loss_scale, need_grad);
}

void LlamaStage::backward(int slot, const float* dy) {
  Slot& s = slots_[size_t(slot)];
  const int64_t N = N_, D = D_;
  if (!layout_.last_stage()) std::memcpy(d_res_, dy, sizeof(float) * size_t(int64_t(Nl_) * D));
  for (int l = int(s.layers.size()) - 1; l >= 0; --l) {
    const LayerWeights& w = w_.layers[size_t(l)];
    if (opt_.recompute) {
      recompute_.x = s.layers[size_t(l)].x;
      layer_forward(w, recompute_, recompute_out_);
      layer_backward(w, g_.layers[size_t(l)], recompute_);
    } else {
      layer_backward(w, g_.layers[size_t(l)], s.layers[size_t(l)]);
    }
  }
  if (layout_.first_stage())
    cpu::embedding_backward(s.tokens, gather_rows(d_res_), g_.embed, N, D_, ld_.vocab_begin, ld_.vocab);
}

namespace {
uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : s) h = (h ^ ch) * 1099511628211ull;
  return h;
}
// The value of global element `index` of the tensor whose stream is `stream`.
float normal_at(uint64_t seed, uint64_t stream, uint64_t index) {
  Rng r(seed ^ (stream * 0x9e3779b97f4a7c15ull), 2 * index);
  return r.normal();
}
}  // namespace

void init_weights(const ParamLayout& layout, float* weights, uint64_t seed) {
  const double std_base = 0.02;
  const double std_out = 0.02 / std::sqrt(2.0 * layout.config().n_layers);
  for (const auto& p : layout.params()) {
    float* dst = weights + p.offset;
    if (p.kind == ParamKind::norm) {
      for (size_t i = 0; i < p.numel; ++i) dst[i] = 1.0f;
      continue;
    }
    const double sd = (p.kind == ParamKind::attn_o || p.kind == ParamKind::mlp_down) ? std_out : std_base;
    const uint64_t stream = fnv1a(p.tied_copy ? "model.embed_tokens.weight" : p.name);
    const int64_t rows = p.shape[0], cols = p.shape[1], gcols = p.global_shape[1];
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j) {
        int64_t gi = p.split_dim == 0 ? p.split_begin + i : i;
        int64_t gj = p.split_dim == 1 ? p.split_begin + j : j;
        dst[i * cols + j] = float(sd * normal_at(seed, stream, uint64_t(gi * gcols + gj)));
      }
  }
}

}  // namespace lt
