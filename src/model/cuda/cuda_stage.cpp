#include "model/cuda/cuda_stage.h"

#include <algorithm>
#include <cstring>

#include "core/env.h"
#include "core/error.h"
#include "core/log.h"
#include "kernels/cpu/rope.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/cross_entropy.h"
#include "kernels/cuda/embedding.h"
#include "kernels/cuda/norm.h"
#include "kernels/cuda/pointwise.h"
#include "model/buffer_carver.h"

namespace lt {

using cuda::GemmOut;
using cuda::GemmShape;

namespace {
constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

// A forward GEMM y = x·Wᵀ, its input gradient dx = dy·W, its weight gradient dW += dyᵀ·x.
GemmShape linear_forward(int64_t rows, int64_t out, int64_t in, GemmOut o = GemmOut::f32) {
  return {rows, out, in, false, true, 0, 0, 0, o, false};
}
GemmShape linear_input_grad(int64_t rows, int64_t in, int64_t out, GemmOut o = GemmOut::f32, int64_t ld_dy = 0) {
  return {rows, in, out, false, false, ld_dy, 0, 0, o, false};
}
}  // namespace

CudaStage::CudaStage(const ParamLayout& layout, const StageGeometry& g, TensorParallelOps* tp, cudaStream_t stream)
    : Stage(layout, g.options, cuda_stage_sizes(g), lt::padded_params(layout.total(), g.dp)),
      stream_(stream),
      c_(layout.config()),
      ld_(local_dims(layout.config(), layout.shard())),
      tp_(tp ? tp : &default_tp_) {
  const StageOptions& opt = opt_;
  LT_CHECK(opt.precision == Precision::bf16,
           "train.device=cuda computes in bf16 mixed precision (fp32 master weights, gradients and optimizer state): "
           "set train.precision=bf16");
  LT_CHECK(!sequence_parallel(), "parallel.sequence_parallel is not supported with train.device=cuda yet");
  LT_CHECK(!opt.document_mask, "train.document_mask is not supported with train.device=cuda yet");
  LT_CHECK(opt.micro_batch >= 1 && opt.seq_len >= 1 && opt.slots >= 1, "stage: bad micro-batch shape");
  LT_CHECK(opt.seq_len <= c_.max_seq_len, "train.seq_len = {} exceeds the model's max_position_embeddings = {}",
           opt.seq_len, c_.max_seq_len);
  const StageDims d = stage_dims(g);
  B_ = opt.micro_batch;
  T_ = opt.seq_len;
  N_ = B_ * T_;
  D_ = c_.dim;
  hd_ = c_.head_dim();
  Q_ = int(d.Q);
  KV_ = int(d.KV);
  F_ = int(d.F);
  QKV_ = Q_ + 2 * KV_;
  head_rows_ = d.head_rows;

  // Say how much memory the layout needs before allocating any of it.
  int device = 0;
  LT_CUDA(cudaGetDevice(&device));
  const cuda::DeviceInfo info = cuda::device_info(device);
  const double need = sizes_.total();
  if (need > double(info.free_bytes))
    fail("train.device=cuda: this rank's stage needs {:.2f} GiB of GPU memory (weights {:.2f}, gradients {:.2f}, "
         "optimizer {:.2f}, activations {:.2f}, workspace {:.2f}) but GPU {} ({}) has {:.2f} GiB free of {:.2f}: use "
         "more pipeline or tensor parallelism, train.recompute=true or a smaller train.micro_batch_size "
         "(`llamatrain plan --device h100 --buffers` shows where it goes)",
         need / kGiB, sizes_.bytes(MemKind::weights) / kGiB, sizes_.bytes(MemKind::gradients) / kGiB,
         sizes_.bytes(MemKind::optimizer) / kGiB, sizes_.bytes(MemKind::activations) / kGiB,
         sizes_.bytes(MemKind::workspace) / kGiB, device, info.name, double(info.free_bytes) / kGiB,
         double(info.total_bytes) / kGiB);

  auto region = [&](cuda::DeviceBuffer& mem, MemKind kind) {
    const size_t bytes = size_t(sizes_.carved_bytes(kind));
    if (bytes == 0) return;
    mem = cuda::DeviceBuffer(bytes);
    LT_CUDA(cudaMemsetAsync(mem.data(), 0, bytes, stream_));
  };
  region(weights_mem_, MemKind::weights);
  region(grads_mem_, MemKind::gradients);
  region(acts_mem_, MemKind::activations);
  region(work_mem_, MemKind::workspace);
  BufferCarver wc(sizes_, MemKind::weights, weights_mem_.data()), gc(sizes_, MemKind::gradients, grads_mem_.data());
  BufferCarver ac(sizes_, MemKind::activations, acts_mem_.data()), kc(sizes_, MemKind::workspace, work_mem_.data());
  w_base_ = wc.floats("weights");
  w_ = make_views(layout, w_base_);
  if (!opt.forward_only) {
    g_base_ = gc.floats("grads");
    g_ = make_views(layout, g_base_);
  }
  // The bf16 compute copy: every matrix a GEMM reads, densely, in layout order (so q|k|v and
  // gate|up stay adjacent), and the embedding when it is this stage's LM head (tied, one stage).
  bf16* h = wc.take<bf16>("weights.bf16");
  bool has_head = false;
  for (const auto& p : layout.params()) has_head = has_head || p.kind == ParamKind::lm_head;
  for (const auto& p : layout.params()) {
    const bool matrix = p.kind != ParamKind::embedding && p.kind != ParamKind::norm;
    const bool tied_head = p.kind == ParamKind::embedding && d.last && !has_head;
    if (!matrix && !tied_head) continue;
    matrices_.push_back({w_base_ + p.offset, h, p.numel});
    h += p.numel;
  }

  auto record = [&](BufferCarver& c, const std::string& prefix, float* x) {
    LayerActs a;
    a.x = x;
    a.ln1 = c.take<bf16>(prefix + "ln1");
    a.rstd1 = c.floats(prefix + "rstd1");
    a.qkv = c.take<bf16>(prefix + "qkv");
    a.att = c.take<bf16>(prefix + "att");
    a.lse = c.floats(prefix + "lse");
    a.x_mid = c.floats(prefix + "x_mid");
    a.ln2 = c.take<bf16>(prefix + "ln2");
    a.rstd2 = c.floats(prefix + "rstd2");
    a.gate_up = c.floats(prefix + "gate_up");
    a.h = c.take<bf16>(prefix + "h");
    return a;
  };
  if (opt.recompute && d.layers > 0) {
    recompute_ = record(kc, "recompute.", nullptr);
    recompute_out_ = kc.floats("recompute.out");
  }
  slots_.resize(size_t(opt.slots));
  for (Slot& s : slots_) {
    if (d.first) s.tokens = ac.take<int32_t>("tokens");
    if (d.last) s.targets = ac.take<int32_t>("targets");
    if (d.first && !opt.forward_only) s.embed_plan = ac.take<int32_t>("embed.plan");
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
    s.lnf = ac.take<bf16>("lnf");
    s.rstdf = ac.floats("rstdf");
    if (!opt.forward_only && opt.slot_grads) s.d_out = ac.floats("slot.d_out");
  }
  if (d.layers > 0) qkv_f32_ = kc.floats("qkv.f32");
  if (!opt.forward_only) {
    d_res_ = kc.floats("d_res");
    d_res_h_ = kc.take<bf16>("d_res.bf16");
    d_ln_ = kc.floats("d_ln");
    d_qkv_ = kc.take<bf16>("d_qkv");
    d_att_ = kc.take<bf16>("d_att");
    d_h_ = kc.floats("d_h");
    d_gate_up_ = kc.take<bf16>("d_gate_up");
    norm_partials_ = kc.floats("norm.partials");
    LT_CHECK(cuda::rmsnorm_backward_workspace_floats(N_, D_) <= size_t(sizes_.find("norm.partials")->count),
             "stage: the RMSNorm backward needs more scratch than the size table lists");
  }
  if (d.last) {
    logits_ = kc.floats("head.logits");
    ce_stats_ = kc.floats("head.stats");
    row_loss_ = kc.take<double>("head.row_loss");
    loss_ = kc.take<double>("loss");
  }
  rope_cos_ = kc.floats("rope.cos");
  rope_sin_ = kc.floats("rope.sin");
  for (const BufferCarver* c : {&wc, &gc, &ac, &kc}) c->finish();

  // RoPE tables: the one frequency rule (model/config.h), computed on the host once.
  std::vector<float> cos_t(size_t(T_) * hd_ / 2), sin_t(cos_t.size());
  cpu::rope_tables(cos_t.data(), sin_t.data(), T_, hd_, rope_inv_freq(c_).data());
  cuda::copy_to_device(rope_cos_, cos_t.data(), cos_t.size() * sizeof(float), stream_);
  cuda::copy_to_device(rope_sin_, sin_t.data(), sin_t.size() * sizeof(float), stream_);

  prof_ = std::make_unique<CudaProfile>(stream_, env_flag("LT_CUDA_PROFILE", false));
  gemm_ = std::make_unique<cuda::Gemm>();
  if (d.layers > 0) {
    attention_ = std::make_unique<cuda::Attention>(true, true);
    attn_shape_ = {B_, T_, ld_.n_heads, ld_.n_kv_heads, hd_};
    attn_strides_.q = attn_strides_.k = attn_strides_.v = QKV_;
    attn_strides_.o = attn_strides_.dout = Q_;
    attn_strides_.dq = attn_strides_.dk = attn_strides_.dv = QKV_;
    attention_choice_ = attention_->choose(attn_shape_, attn_strides_).reason;  // plans and workspace, once
  }
  LT_CUDA(cudaStreamSynchronize(stream_));
}

CudaStage::~CudaStage() = default;

const bf16* CudaStage::compute_copy(const float* w) const {
  for (const Matrix& m : matrices_)
    if (m.f32 == w) return m.h;
  fail("stage: no bf16 compute copy of this weight");
}

float* CudaStage::stage_input(int slot) const {
  const Slot& s = slots_[size_t(slot)];
  return s.layers.empty() ? s.x_final : s.layers[0].x;
}

StageMessage CudaStage::input_message(int slot) { return {stage_input(slot), size_t(N_) * size_t(D_) * sizeof(float)}; }
StageMessage CudaStage::output_message(int slot) {
  return {slots_[size_t(slot)].x_final, size_t(N_) * size_t(D_) * sizeof(float)};
}
// As on the CPU: the received output gradient is backward's starting point, and backward
// leaves the input gradient in the same buffer.
StageMessage CudaStage::output_grad_message() { return {d_res_, size_t(N_) * size_t(D_) * sizeof(float)}; }
StageMessage CudaStage::input_grad_message() { return {d_res_, size_t(N_) * size_t(D_) * sizeof(float)}; }
StageMessage CudaStage::slot_grad_message(int slot) {
  float* d = slots_[size_t(slot)].d_out;
  return d ? StageMessage{d, size_t(N_) * size_t(D_) * sizeof(float)} : output_grad_message();
}

double CudaStage::activation_bytes() const { return double(acts_mem_.bytes() + work_mem_.bytes()); }

void CudaStage::zero_grads() {
  if (g_base_) LT_CUDA(cudaMemsetAsync(g_base_, 0, grads_mem_.bytes(), stream_));
}

void CudaStage::refresh_weights() {
  // Runs adjacent in both copies convert in one launch.
  for (size_t i = 0; i < matrices_.size();) {
    size_t j = i + 1, n = matrices_[i].n;
    while (j < matrices_.size() && matrices_[j].f32 == matrices_[i].f32 + n && matrices_[j].h == matrices_[i].h + n)
      n += matrices_[j++].n;
    cuda::to_bf16(matrices_[i].f32, matrices_[i].h, int64_t(n), stream_);
    i = j;
  }
}

// Every category the profile reports: "gemm" and "attention" inside "layer forward" /
// "layer backward" / "head" (so the rest of a layer is its total minus those), "embedding".
void CudaStage::gemm(const bf16* A, const bf16* B, void* C, const GemmShape& s) {
  const auto t = prof_->scope("gemm");
  gemm_->run(A, B, C, s, stream_);
}

void CudaStage::wgrad(const bf16* dy, int64_t ld_dy, const bf16* x, int64_t in, std::initializer_list<WGrad> parts) {
  const WGrad* it = parts.begin();
  int64_t col = 0;
  while (it != parts.end()) {
    float* dw = it->dw;
    const int64_t first = col;
    do {  // the run of parts whose gradients follow each other in memory
      col += it->out;
      ++it;
    } while (it != parts.end() && it->dw == dw + (col - first) * in);
    // dW [rows, in] += dy[:, first:col]ᵀ · x
    gemm(dy + first, x, dw, {col - first, in, N_, true, false, ld_dy, 0, 0, GemmOut::f32, true});
  }
}

const bf16* CudaStage::d_res_bf16() {
  cuda::to_bf16(d_res_, d_res_h_, int64_t(N_) * D_, stream_);
  return d_res_h_;
}

void CudaStage::layer_forward(const LayerWeights& w, const LayerActs& a, float* x_out) {
  const auto t = prof_->scope("layer forward");
  const int64_t N = N_, D = D_, F = F_, Q = Q_, KV = KV_, QKV = QKV_;
  cuda::rmsnorm_forward(a.x, w.attn_norm, nullptr, a.ln1, a.rstd1, N, D_, c_.norm_eps, stream_);
  gemm(a.ln1, compute_copy(w.wq), qkv_f32_, linear_forward(N, QKV, D));
  cuda::rope_forward(qkv_f32_, QKV, nullptr, a.qkv, QKV, rope_cos_, rope_sin_, N, T_, ld_.n_heads, hd_, stream_);
  cuda::rope_forward(qkv_f32_ + Q, QKV, nullptr, a.qkv + Q, QKV, rope_cos_, rope_sin_, N, T_, ld_.n_kv_heads, hd_,
                     stream_);
  cuda::to_bf16_2d(qkv_f32_ + Q + KV, QKV, a.qkv + Q + KV, QKV, N, KV, stream_);
  {
    const auto ta = prof_->scope("attention");
    attention_->forward(a.qkv, a.qkv + Q, a.qkv + Q + KV, a.att, a.lse, attn_shape_, stream_, attn_strides_);
  }
  gemm(a.att, compute_copy(w.wo), a.x_mid, linear_forward(N, D, Q));
  tp_->reduce_partial(a.x_mid, N * D);
  cuda::add_rmsnorm_forward(a.x_mid, a.x, w.ffn_norm, nullptr, a.ln2, a.rstd2, N, D_, c_.norm_eps, stream_);
  gemm(a.ln2, compute_copy(w.w_gate), a.gate_up, linear_forward(N, 2 * F, D));
  cuda::swiglu_forward(a.gate_up, a.gate_up + F, 2 * F, nullptr, a.h, F, N, F_, stream_);
  gemm(a.h, compute_copy(w.w_down), x_out, linear_forward(N, D, F));
  tp_->reduce_partial(x_out, N * D);
  cuda::add_inplace(x_out, a.x_mid, N * D, stream_);
}

// On entry d_res_ holds the gradient of the layer output; on exit that of its input.
void CudaStage::layer_backward(const LayerWeights& w, const LayerWeights& g, const LayerActs& a) {
  const auto t = prof_->scope("layer backward");
  const int64_t N = N_, D = D_, F = F_, Q = Q_, KV = KV_, QKV = QKV_;
  // x_out = x_mid + h·Wd^T
  const bf16* dres = d_res_bf16();
  gemm(dres, compute_copy(w.w_down), d_h_, linear_input_grad(N, F, D));
  wgrad(dres, D, a.h, F, {{g.w_down, D}});
  cuda::swiglu_backward(d_h_, F, a.gate_up, a.gate_up + F, 2 * F, nullptr, nullptr, d_gate_up_, d_gate_up_ + F, 2 * F,
                        N, F_, stream_);
  gemm(d_gate_up_, compute_copy(w.w_gate), d_ln_, linear_input_grad(N, D, 2 * F));
  wgrad(d_gate_up_, 2 * F, a.ln2, D, {{g.w_gate, F}, {g.w_up, F}});
  tp_->reduce_input_grad(d_ln_, N * D);
  cuda::rmsnorm_backward(d_ln_, a.x_mid, w.ffn_norm, a.rstd2, d_res_, g.ffn_norm, N, D_, true, norm_partials_, stream_);
  // x_mid = x + att·Wo^T
  dres = d_res_bf16();
  gemm(dres, compute_copy(w.wo), d_att_, linear_input_grad(N, Q, D, GemmOut::bf16));
  wgrad(dres, D, a.att, Q, {{g.wo, D}});
  {
    const auto ta = prof_->scope("attention");
    attention_->backward(a.qkv, a.qkv + Q, a.qkv + Q + KV, a.att, d_att_, a.lse, d_qkv_, d_qkv_ + Q, d_qkv_ + Q + KV,
                         attn_shape_, stream_, attn_strides_);
  }
  cuda::rope_backward(d_qkv_, QKV, nullptr, d_qkv_, QKV, rope_cos_, rope_sin_, N, T_, ld_.n_heads, hd_, stream_);
  cuda::rope_backward(d_qkv_ + Q, QKV, nullptr, d_qkv_ + Q, QKV, rope_cos_, rope_sin_, N, T_, ld_.n_kv_heads, hd_,
                      stream_);
  gemm(d_qkv_, compute_copy(w.wq), d_ln_, linear_input_grad(N, D, QKV));
  wgrad(d_qkv_, QKV, a.ln1, D, {{g.wq, Q}, {g.wk, KV}, {g.wv, KV}});
  tp_->reduce_input_grad(d_ln_, N * D);
  cuda::rmsnorm_backward(d_ln_, a.x, w.attn_norm, a.rstd1, d_res_, g.attn_norm, N, D_, true, norm_partials_, stream_);
}

void CudaStage::head_forward_backward(const Slot& s, float loss_scale, bool need_grad) {
  const auto t = prof_->scope("head");
  const int64_t N = N_, D = D_, V = ld_.vocab;
  const int vb = ld_.vocab_begin;
  cuda::rmsnorm_forward(s.x_final, w_.final_norm, nullptr, s.lnf, s.rstdf, N, D_, c_.norm_eps, stream_);
  const bf16* head = compute_copy(w_.lm_head);
  bf16* dlogits = reinterpret_cast<bf16*>(logits_);  // written over the chunk's fp32 logits, row stride 2V
  float *mx = ce_stats_, *lse = ce_stats_ + head_rows_, *sumexp = ce_stats_ + 2 * head_rows_;
  for (int64_t r0 = 0; r0 < N; r0 += head_rows_) {
    const int64_t R = std::min(head_rows_, N - r0);
    float* tlogit = sumexp + R;  // [sumexp | tlogit] contiguous: one sum over tp
    const int32_t* tg = s.targets + r0;
    gemm(s.lnf + r0 * D, head, logits_, linear_forward(R, V, D));
    cuda::ce_row_stats(logits_, V, R, int(V), vb, tg, mx, sumexp, tlogit, stream_);
    LT_CUDA(cudaMemcpyAsync(lse, mx, size_t(R) * sizeof(float), cudaMemcpyDeviceToDevice, stream_));
    tp_->vocab_max(lse, R);  // the row max over the whole vocabulary
    cuda::ce_rescale_sumexp(mx, lse, sumexp, R, stream_);
    tp_->vocab_sum(sumexp, 2 * R);
    cuda::ce_finish_lse(lse, sumexp, lse, R, stream_);
    cuda::ce_row_losses(tg, lse, tlogit, row_loss_, R, stream_);
    cuda::sum_rows(row_loss_, R, loss_, true, stream_);
    if (!need_grad) continue;
    cuda::ce_logits_grad(logits_, V, R, int(V), vb, tg, lse, loss_scale, dlogits, 2 * V, stream_);
    gemm(dlogits, head, d_ln_ + r0 * D, linear_input_grad(R, D, V, GemmOut::f32, 2 * V));
    gemm(dlogits, s.lnf + r0 * D, g_.lm_head, {V, D, R, true, false, 2 * V, 0, 0, GemmOut::f32, true});
  }
  if (!need_grad) return;
  tp_->reduce_input_grad(d_ln_, N * D);
  cuda::rmsnorm_backward(d_ln_, s.x_final, w_.final_norm, s.rstdf, d_res_, g_.final_norm, N, D_, false, norm_partials_,
                         stream_);
}

void CudaStage::forward(int slot, const int32_t* tokens, const int32_t* targets, float loss_scale, bool need_grad) {
  LT_CHECK(!need_grad || !opt_.forward_only, "stage: a forward-only stage cannot compute gradients");
  Slot& s = slots_[size_t(slot)];
  const int64_t N = N_;
  float* x0 = stage_input(slot);  // non-first stages: the pipeline received the input here
  if (layout_.first_stage()) {
    // Host -> device from pageable memory: the call returns once the host data is staged.
    const auto t = prof_->scope("embedding");
    cuda::copy_to_device(s.tokens, tokens, size_t(N) * sizeof(int32_t), stream_);
    cuda::embedding_forward(s.tokens, w_.embed, x0, N, D_, ld_.vocab_begin, ld_.vocab, stream_);
    tp_->reduce_partial(x0, N * D_);
    if (need_grad) {  // the deterministic embedding backward's plan, from the host tokens
      const cuda::EmbeddingGradPlan plan = cuda::plan_embedding_backward(tokens, N, ld_.vocab_begin, ld_.vocab);
      const std::vector<int32_t> packed = plan.packed();
      cuda::copy_to_device(s.embed_plan, packed.data(), packed.size() * sizeof(int32_t), stream_);
      s.embed_rows = int(plan.rows.size());
      s.embed_positions = int64_t(plan.positions.size());
    }
  }
  if (layout_.last_stage()) cuda::copy_to_device(s.targets, targets, size_t(N) * sizeof(int32_t), stream_);
  const int nl = int(s.layers.size());
  for (int l = 0; l < nl; ++l) {
    float* x_out = l + 1 < nl ? s.layers[size_t(l) + 1].x : s.x_final;
    if (opt_.recompute) {
      recompute_.x = s.layers[size_t(l)].x;
      layer_forward(w_.layers[size_t(l)], recompute_, x_out);
    } else {
      layer_forward(w_.layers[size_t(l)], s.layers[size_t(l)], x_out);
    }
  }
  // The head's backward runs here, fused with the loss; backward() continues from d_res_.
  if (layout_.last_stage()) head_forward_backward(s, loss_scale, need_grad);
  if (layout_.last_stage() && need_grad && s.d_out)  // interleaved: kept until this slot's backward
    LT_CUDA(cudaMemcpyAsync(s.d_out, d_res_, size_t(N_) * size_t(D_) * sizeof(float), cudaMemcpyDeviceToDevice,
                            stream_));
}

// Non-last stages: d_res_ holds the gradient of the output (the pipeline received it there).
void CudaStage::backward(int slot) {
  LT_CHECK(!opt_.forward_only, "stage: a forward-only stage has no backward");
  Slot& s = slots_[size_t(slot)];
  if (s.d_out)
    LT_CUDA(cudaMemcpyAsync(d_res_, s.d_out, size_t(N_) * size_t(D_) * sizeof(float), cudaMemcpyDeviceToDevice,
                            stream_));
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
  if (layout_.first_stage()) {
    const auto t = prof_->scope("embedding");
    cuda::embedding_backward(s.embed_plan, s.embed_rows, s.embed_positions, d_res_, g_.embed, D_, stream_);
  }
}

double CudaStage::take_loss() {
  double host = 0;
  if (loss_) {
    cuda::copy_to_host(&host, loss_, sizeof host, stream_);
    LT_CUDA(cudaMemsetAsync(loss_, 0, sizeof(double), stream_));
  }
  if (loss_ || prof_->on()) {
    LT_CUDA(cudaStreamSynchronize(stream_));
    prof_->collect();
  }
  return host;
}

void CudaStage::logits(int slot, float* host_out) {
  LT_CHECK(layout_.last_stage(), "logits: only the last pipeline stage has the LM head");
  const Slot& s = slots_[size_t(slot)];
  const int64_t V = ld_.vocab;
  for (int64_t r0 = 0; r0 < N_; r0 += head_rows_) {
    const int64_t R = std::min<int64_t>(head_rows_, N_ - r0);
    gemm(s.lnf + r0 * D_, compute_copy(w_.lm_head), logits_, linear_forward(R, V, D_));
    cuda::copy_to_host(host_out + r0 * V, logits_, size_t(R * V) * sizeof(float), stream_);
    LT_CUDA(cudaStreamSynchronize(stream_));
  }
}

}  // namespace lt
