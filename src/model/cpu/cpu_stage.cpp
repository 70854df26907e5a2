#include "model/cpu/cpu_stage.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/convert.h"
#include "kernels/cpu/cross_entropy.h"
#include "kernels/cpu/embedding.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/norm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/swiglu.h"
#include "model/buffer_carver.h"

namespace lt {

using cpu::matmul;

namespace {
void add_inplace(float* y, const float* x, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}
}  // namespace

CpuStage::CpuStage(const ParamLayout& layout, const StageGeometry& g, TensorParallelOps* tp)
    : Stage(layout, g.options, cpu_stage_sizes(g), lt::padded_params(layout.total(), g.dp)),
      c_(layout.config()),
      ld_(local_dims(layout.config(), layout.shard())),
      tp_(tp ? tp : &default_tp_),
      bf16_(g.options.precision == Precision::bf16) {
  const StageOptions& opt = opt_;
  LT_CHECK(opt.micro_batch >= 1 && opt.seq_len >= 1 && opt.slots >= 1, "stage: bad micro-batch shape");
  LT_CHECK(opt.seq_len <= c_.max_seq_len, "train.seq_len = {} exceeds the model's max_position_embeddings = {}",
           opt.seq_len, c_.max_seq_len);
  const StageDims d = stage_dims(g);
  B_ = opt.micro_batch;
  T_ = opt.seq_len;
  N_ = B_ * T_;
  D_ = c_.dim;
  hd_ = c_.head_dim();
  qdim_ = ld_.n_heads * hd_;
  kvdim_ = ld_.n_kv_heads * hd_;
  F_ = ld_.hidden;
  sp_ = d.sp;
  Nl_ = int(d.Nr);
  head_rows_ = d.head_rows;

  // Every buffer below comes from the size table (cpu_sizes.cpp); the carvers check that what
  // is taken is exactly what the table lists.
  weights_ = Buffer(size_t(sizes_.carved_bytes(MemKind::weights)));
  grads_ = Buffer(size_t(sizes_.carved_bytes(MemKind::gradients)));
  acts_ = Buffer(size_t(sizes_.carved_bytes(MemKind::activations)));
  work_ = Buffer(size_t(sizes_.carved_bytes(MemKind::workspace)));
  BufferCarver wc(sizes_, MemKind::weights, weights_.data()), gc(sizes_, MemKind::gradients, grads_.data());
  wc.floats("weights");
  w_ = make_views(layout, weights());
  if (!opt.forward_only) g_ = make_views(layout, gc.floats("grads"));
  BufferCarver ac(sizes_, MemKind::activations, acts_.data()), kc(sizes_, MemKind::workspace, work_.data());
  auto record = [&](BufferCarver& c, const std::string& prefix, float* x) {
    LayerActs a;
    a.x = x;
    a.ln1 = c.floats(prefix + "ln1");
    a.rstd1 = c.floats(prefix + "rstd1");
    a.q = c.floats(prefix + "q");
    a.k = c.floats(prefix + "k");
    a.v = c.floats(prefix + "v");
    a.att = c.floats(prefix + "att");
    a.lse = c.floats(prefix + "lse");
    a.x_mid = c.floats(prefix + "x_mid");
    a.ln2 = c.floats(prefix + "ln2");
    a.rstd2 = c.floats(prefix + "rstd2");
    a.gate = c.floats(prefix + "gate");
    a.up = c.floats(prefix + "up");
    a.h = c.floats(prefix + "h");
    return a;
  };
  if (opt.recompute && d.layers > 0) {
    recompute_ = record(kc, "recompute.", nullptr);
    recompute_out_ = kc.floats("recompute.out");
  }
  slots_.resize(size_t(opt.slots));
  for (auto& s : slots_) {
    s.tokens = ac.take<int32_t>("tokens");
    if (opt.document_mask) s.doc_start = ac.take<int32_t>("doc_start");
    for (int l = 0; l < d.layers; ++l) {
      float* x = ac.floats("layer.x");
      if (opt.recompute) {
        LayerActs a{};
        a.x = x;
        s.layers.push_back(a);
      } else {
        s.layers.push_back(record(ac, "layer.", x));
      }
    }
    s.x_final = ac.floats("x_final");
    s.lnf = ac.floats("lnf");
    s.rstdf = ac.floats("rstdf");
    if (!opt.forward_only && opt.slot_grads) s.d_out = ac.floats("slot.d_out");
  }
  if (sp_) full_ = kc.floats("sp.rows");
  if (!opt.forward_only) {
    d_res_ = kc.floats("d_res");
    d_ln_ = kc.floats("d_ln");
    d_q_ = kc.floats("d_q");
    d_att_ = kc.floats("d_att");
    d_k_ = kc.floats("d_k");
    d_v_ = kc.floats("d_v");
    d_gate_ = kc.floats("d_gate");
    d_up_ = kc.floats("d_up");
    d_h_ = kc.floats("d_h");
  }
  if (d.last) {
    logits_ = kc.floats("head.logits");
    ce_mx_ = kc.floats("head.max");
    ce_lse_ = kc.floats("head.lse");
    ce_st_ = kc.floats("head.stats");
  }
  rope_cos_ = kc.floats("rope.cos");
  rope_sin_ = kc.floats("rope.sin");
  cpu::rope_tables(rope_cos_, rope_sin_, T_, hd_, rope_inv_freq(c_).data());
  if (bf16_) {
    cvt_[0] = kc.take<bf16>("bf16.a");
    cvt_[1] = kc.take<bf16>("bf16.b");
    cvt_[2] = kc.take<bf16>("bf16.shared");
    cvt_dyt_ = kc.take<bf16>("bf16.dyt");
  }
  for (const BufferCarver* c : {&wc, &gc, &ac, &kc}) c->finish();
  if (bf16_ || opt.pack_weights) plan_packed();
  layer_grads_.resize(size_t(d.layers));
  for (const ParamInfo& p : layout.params()) {
    FlatRange& r = p.layer >= 0 ? layer_grads_[size_t(p.layer - layout.layers().begin)]
                   : p.kind == ParamKind::embedding ? embed_grads_
                                                    : head_grads_;
    if (r.end == r.begin) r.begin = p.offset;
    r.end = p.offset + p.numel;
  }
}

void CpuStage::refresh_weights() {
  for (auto& [key, g] : packed_) g->pack(key.first);
  packed_fresh_ = true;
}

CpuStage::Mat CpuStage::wmat(const float* w) const { return {w, nullptr, true}; }

void CpuStage::plan_packed() {
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

CpuStage::Mat CpuStage::cvt(const float* x, int64_t n, int buf) {
  if (!bf16_) return {x, nullptr};
  cpu::to_bf16(x, cvt_[buf], n);
  return {x, cvt_[buf]};
}

void CpuStage::mm(Mat A, Mat B, float* C, int64_t M, int64_t N, int64_t K, bool ta, bool tb, bool acc) {
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

void CpuStage::wgrad(const float* x, int64_t in, std::initializer_list<WGrad> parts) {
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

CpuStage::Mat CpuStage::cvt_dy(const float* dy, int64_t cols, int buf, int64_t row) {
  if (!bf16_) return {dy, nullptr};
  cpu::to_bf16_transposed(dy, N_, cols, cvt_dyt_ + row * N_, N_, cvt_[buf]);
  return {dy, cvt_[buf]};
}

void CpuStage::logits(int slot, float* out) {
  LT_CHECK(layout_.last_stage(), "logits: only the last pipeline stage has the LM head");
  const float* lnf = gather_rows(slots_[size_t(slot)].lnf);
  for (int64_t r0 = 0; r0 < N_; r0 += head_rows_) {  // the head's chunks: its packed shapes
    const int64_t R = std::min<int64_t>(head_rows_, N_ - r0);
    mm(cvt(lnf + r0 * D_, R * D_, 2), wmat(w_.lm_head), out + r0 * ld_.vocab, R, ld_.vocab, D_, false, true, false);
  }
}

const float* CpuStage::gather_rows(const float* local) {
  if (!sp_) return local;
  tp_->all_gather_rows(local, full_, int64_t(Nl_) * D_);
  return full_;
}

void CpuStage::sum_partial(float* partial, float* out) {
  if (sp_)
    tp_->reduce_scatter_rows(partial, out, int64_t(Nl_) * D_);
  else
    tp_->reduce_partial(out, int64_t(N_) * D_);
}

const float* CpuStage::sum_input_grad() {
  if (!sp_) {
    tp_->reduce_input_grad(d_ln_, int64_t(N_) * D_);
    return d_ln_;
  }
  tp_->reduce_scatter_rows(d_ln_, full_, int64_t(Nl_) * D_);
  return full_;
}

float* CpuStage::stage_input(int slot) const {
  const Slot& s = slots_[size_t(slot)];
  return s.layers.empty() ? s.x_final : s.layers[0].x;
}
StageMessage CpuStage::input_message(int slot) { return {stage_input(slot), size_t(Nl_) * size_t(D_) * sizeof(float)}; }
StageMessage CpuStage::output_message(int slot) {
  return {slots_[size_t(slot)].x_final, size_t(Nl_) * size_t(D_) * sizeof(float)};
}
// The received output gradient is backward's starting point, and backward leaves the input
// gradient in the same buffer: the pipeline never has both in flight at once.
StageMessage CpuStage::output_grad_message() { return {d_res_, size_t(Nl_) * size_t(D_) * sizeof(float)}; }
StageMessage CpuStage::input_grad_message() { return {d_res_, size_t(Nl_) * size_t(D_) * sizeof(float)}; }
StageMessage CpuStage::slot_grad_message(int slot) {
  float* d = slots_[size_t(slot)].d_out;
  return d ? StageMessage{d, size_t(Nl_) * size_t(D_) * sizeof(float)} : output_grad_message();
}

void CpuStage::zero_grads() {
  if (!grads_.empty()) std::memset(grads_.data(), 0, grads_.size());
}

double CpuStage::take_loss() {
  const double l = loss_;
  loss_ = 0;
  return l;
}

void CpuStage::set_inputs(int slot, const MicroBatchInputs& in) {
  Slot& s = slots_[size_t(slot)];
  s.masked = in.doc_start != nullptr;
  s.restart = s.masked && in.restart_positions;
  if (!s.masked) return;
  LT_CHECK(s.doc_start, "stage: document starts given to a stage built without StageOptions::document_mask");
  for (int64_t n = 0; n < N_; ++n)
    LT_CHECK(in.doc_start[n] >= 0 && in.doc_start[n] <= n % T_ && (n % T_ == 0 || in.doc_start[n] >= in.doc_start[n - 1]),
             "stage: document start {} of token {} is not a non-decreasing position at or before it", in.doc_start[n], n);
  std::memcpy(s.doc_start, in.doc_start, sizeof(int32_t) * size_t(N_));
}

void CpuStage::layer_forward(const LayerWeights& w, const LayerActs& a, float* x_out, const Slot& s) {
  // With sequence parallelism full_ takes in turn the gathered ln1, o_proj's partial output,
  // the gathered ln2 and down_proj's partial output.
  const int64_t N = N_, Nl = Nl_, D = D_;
  cpu::rmsnorm_forward(a.x, w.attn_norm, a.ln1, a.rstd1, Nl, D_, c_.norm_eps);
  const Mat ln1 = cvt(gather_rows(a.ln1), N * D, 2);
  mm(ln1, wmat(w.wq), a.q, N, qdim_, D, false, true, false);
  mm(ln1, wmat(w.wk), a.k, N, kvdim_, D, false, true, false);
  mm(ln1, wmat(w.wv), a.v, N, kvdim_, D, false, true, false);
  const int32_t* docs = s.masked ? s.doc_start : nullptr;
  const int32_t* pos = s.restart ? s.doc_start : nullptr;
  cpu::rope_forward(a.q, rope_cos_, rope_sin_, N, T_, ld_.n_heads, hd_, pos);
  cpu::rope_forward(a.k, rope_cos_, rope_sin_, N, T_, ld_.n_kv_heads, hd_, pos);
  // bf16 mode: attention's matmuls take bf16 operands too (fp32 softmax and accumulation).
  (bf16_ ? cpu::attention_forward_bf16 : cpu::attention_forward)(a.q, a.k, a.v, a.att, a.lse,
                                                                 {B_, T_, ld_.n_heads, ld_.n_kv_heads, hd_, docs});
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
void CpuStage::layer_backward(const LayerWeights& w, const LayerWeights& g, const LayerActs& a, const Slot& s) {
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
  const cpu::AttnShape shape{B_, T_, ld_.n_heads, ld_.n_kv_heads, hd_, s.masked ? s.doc_start : nullptr};
  (bf16_ ? cpu::attention_backward_bf16 : cpu::attention_backward)(a.q, a.k, a.v, a.att, d_att_, a.lse, d_q_, d_k_,
                                                                   d_v_, shape);
  const int32_t* pos = s.restart ? s.doc_start : nullptr;
  cpu::rope_backward(d_q_, rope_cos_, rope_sin_, N, T_, ld_.n_heads, hd_, pos);
  cpu::rope_backward(d_k_, rope_cos_, rope_sin_, N, T_, ld_.n_kv_heads, hd_, pos);
  const float* ln1 = gather_rows(a.ln1);
  mm(cvt_dy(d_q_, Q, 0, 0), wmat(w.wq), d_ln_, N, D, Q, false, false, false);
  mm(cvt_dy(d_k_, KV, 0, Q), wmat(w.wk), d_ln_, N, D, KV, false, false, true);
  mm(cvt_dy(d_v_, KV, 0, Q + KV), wmat(w.wv), d_ln_, N, D, KV, false, false, true);
  wgrad(ln1, D, {{d_q_, g.wq, Q}, {d_k_, g.wk, KV}, {d_v_, g.wv, KV}});
  cpu::rmsnorm_backward(sum_input_grad(), a.x, w.attn_norm, a.rstd1, d_res_, g.attn_norm, Nl, D_, true);
}

double CpuStage::head_forward_backward(const Slot& s, const int32_t* targets, float loss_scale, bool need_grad) {
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

void CpuStage::forward(int slot, const int32_t* tokens, const int32_t* targets, float loss_scale, bool need_grad) {
  LT_CHECK(!need_grad || !opt_.forward_only, "stage: a forward-only stage cannot compute gradients");
  Slot& s = slots_[size_t(slot)];
  const int64_t N = N_;
  const int nl = int(s.layers.size());
  float* x0 = stage_input(slot);  // non-first stages: the pipeline received the input here
  if (layout_.first_stage()) {
    std::memcpy(s.tokens, tokens, sizeof(int32_t) * size_t(N));
    float* emb = sp_ ? full_ : x0;  // vocab-parallel partial rows
    cpu::embedding_forward(tokens, w_.embed, emb, N, D_, ld_.vocab_begin, ld_.vocab);
    sum_partial(emb, x0);
  }
  for (int l = 0; l < nl; ++l) {
    float* x_out = l + 1 < nl ? s.layers[size_t(l) + 1].x : s.x_final;
    if (opt_.recompute) {
      recompute_.x = s.layers[size_t(l)].x;
      layer_forward(w_.layers[size_t(l)], recompute_, x_out, s);
    } else {
      layer_forward(w_.layers[size_t(l)], s.layers[size_t(l)], x_out, s);
    }
  }
  if (!layout_.last_stage()) return;
  // The head's backward runs here, fused with the loss; backward() continues from d_res_.
  loss_ += head_forward_backward(s, targets, loss_scale, need_grad);
  if (!need_grad) return;
  report(head_grads_);
  if (s.d_out) std::memcpy(s.d_out, d_res_, sizeof(float) * size_t(Nl_) * size_t(D_));  // until its backward
}

// Non-last stages: d_res_ holds the gradient of the output (the pipeline received it there).
void CpuStage::backward(int slot) {
  LT_CHECK(!opt_.forward_only, "stage: a forward-only stage has no backward");
  Slot& s = slots_[size_t(slot)];
  if (s.d_out) std::memcpy(d_res_, s.d_out, sizeof(float) * size_t(Nl_) * size_t(D_));
  for (int l = int(s.layers.size()) - 1; l >= 0; --l) {
    const LayerWeights& w = w_.layers[size_t(l)];
    if (opt_.recompute) {
      recompute_.x = s.layers[size_t(l)].x;
      layer_forward(w, recompute_, recompute_out_, s);
      layer_backward(w, g_.layers[size_t(l)], recompute_, s);
    } else {
      layer_backward(w, g_.layers[size_t(l)], s.layers[size_t(l)], s);
    }
    report(layer_grads_[size_t(l)]);
  }
  if (layout_.first_stage()) {
    cpu::embedding_backward(s.tokens, gather_rows(d_res_), g_.embed, N_, D_, ld_.vocab_begin, ld_.vocab);
    report(embed_grads_);
  }
}

}  // namespace lt
