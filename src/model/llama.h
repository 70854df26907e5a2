// LlamaStage: the explicit forward and backward of one pipeline stage of a Llama model on
// the CPU (no autograd). It owns the activation buffers, allocated once for `slots`
// micro-batches in flight; weights and gradients are flat buffers laid out by ParamLayout
// and owned by the caller.
//
// One layer, N = B·T tokens, D model width, Hl/KVl local heads, Fl local MLP width:
//   ln1 = rmsnorm(x)                       q,k,v = ln1·Wq^T, ln1·Wk^T, ln1·Wv^T; rope(q,k)
//   att = causal_attention(q,k,v)          x_mid = x + g(att·Wo^T)
//   ln2 = rmsnorm(x_mid)                   h = silu(ln2·Wg^T) ⊙ (ln2·Wu^T)
//   x_out = x_mid + g(h·Wd^T)
// The last stage ends with rmsnorm, the LM head and the cross-entropy, run in row chunks
// fused with their backward, so the full logits never exist.
//
// Tensor parallelism stays outside the maths: the model calls TensorParallelOps at the named
// points (Megatron's f and g); the default does nothing (one rank).
//
// Sequence parallelism (StageOptions::sequence_parallel, tp > 1; Megatron's
// --sequence-parallel): outside the tensor-parallel regions the N = B·T rows are split over
// the tp ranks, rank r holding rows [r·N/tp, (r+1)·N/tp) ("local rows", Nl = N/tp): the
// residual stream x / x_mid, the norms ln1 / ln2 / final norm and their rstd, the stage's input,
// output and input gradient. Each region is entered with all_gather_rows (ln1 / ln2 / final
// norm [Nl,D] -> [N,D] in a shared workspace) and left with reduce_scatter_rows (the
// row-parallel partial [N,D] -> summed [Nl,D]) instead of g's all-reduce; backward mirrors it
// (all-gather the output gradient, reduce-scatter the column-parallel input gradient instead
// of f's all-reduce). Slots keep only the local ln1 / ln2; backward gathers them again for the
// weight gradients. Norm weight gradients are then partial per tp rank: the caller sums them
// over tp.
// Gradient convention: parameter gradients accumulate (+=) across micro-batches.
//
// Weight GEMMs read packed copies of the weights (oneDNN's blocked layout for each GEMM shape,
// made on first use; refresh_weights() re-packs them after each change of the weights).
//
// Precision bf16 (mixed precision as GPU training does it): every GEMM takes bf16 inputs and
// accumulates in fp32 (oneDNN, AVX512_BF16); the packed weight copies are bf16 (rounded to
// nearest even from the fp32 master weights); GEMM activation inputs
// (normed x, attention output, SwiGLU output, and the gradients fed to GEMMs) are rounded to
// bf16 just before the GEMM. Norms, RoPE, softmax/attention, the residual stream, the loss and
// every parameter gradient stay fp32.
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include <initializer_list>
#include <map>
#include <memory>
#include <utility>

#include "core/bf16.h"
#include "core/buffer.h"
#include "kernels/cpu/gemm.h"
#include "model/layout.h"

namespace lt {

class TensorParallelOps {
 public:
  virtual ~TensorParallelOps() = default;
  // g: sum the partial outputs of a row-parallel layer (o_proj, down_proj, embedding) over tp.
  virtual void reduce_partial(float* x, int64_t n) {}
  // f backward: sum the input gradients of column-parallel layers over tp.
  virtual void reduce_input_grad(float* dx, int64_t n) {}
  // Vocab-parallel cross-entropy: element-wise max / sum over the tp group.
  virtual void vocab_max(float* x, int64_t n) {}
  virtual void vocab_sum(float* x, int64_t n) {}
  // Sequence parallelism (g / g-bar of Megatron's SP): rank r's `n_local` values become block r
  // of `full` (tp·n_local values), and the tp-sum of `full`'s block r lands in `local`.
  // One rank: a copy.
  virtual void all_gather_rows(const float* local, float* full, int64_t n_local);
  virtual void reduce_scatter_rows(const float* full, float* local, int64_t n_local);
};

// Rows per LM-head chunk for N rows and a local vocabulary of V: 64 MiB of fp32 logits (~500
// rows at a 32k vocabulary). Larger chunks make the head's GEMMs more efficient (K = rows for
// its weight gradient) and read/write the head's gradient fewer times; smaller ones save memory.
inline int64_t head_chunk_rows(int64_t N, int64_t V) {
  constexpr int64_t kHeadChunkFloats = int64_t(16) << 20;
  return N < 1 ? 1 : std::max<int64_t>(1, std::min<int64_t>(N, kHeadChunkFloats / std::max<int64_t>(1, V)));
}

// bf16 mode's conversion buffers, in bf16 elements, each a whole number of 64-byte lines (the
// transposed conversions stream whole lines): `a` takes GEMM A operands and one LM-head chunk
// of logits gradients, `b` wgrad's transposed x, `shared` activations converted once for
// several GEMMs, `dyt` wgrad's transposed dy of all parts stacked. plan counts the same.
struct Bf16Buffers {
  int64_t a, b, shared, dyt;
  int64_t total() const { return a + b + shared + dyt; }
};
inline Bf16Buffers bf16_buffers(int64_t N, int64_t D, int64_t Q, int64_t KV, int64_t F, int64_t head_rows,
                                int64_t vocab) {
  auto lines = [](int64_t n) { return (n + 31) / 32 * 32; };
  const int64_t act = lines(std::max(N * std::max({D, Q, F}), int64_t(16)));  // largest [N, width] operand
  return {std::max(act, lines(head_rows * vocab)), act, act, lines(N * std::max({D, 2 * F, Q + 2 * KV}))};
}

enum class Precision { fp32, bf16 };
// "fp32" or "bf16"; throws naming train.precision otherwise.
Precision parse_precision(const std::string& name);

struct StageOptions {
  int micro_batch = 1;
  int seq_len = 1;
  bool recompute = false;  // keep only each layer's input; recompute the rest in backward
  int slots = 1;           // micro-batches whose activations are kept at once (pipeline)
  Precision precision = Precision::fp32;
  // fp32: weight GEMMs read packed copies of the weights (+8 B per GEMM weight parameter,
  // faster GEMMs); false reads the weights in place. bf16 always packs (its bf16 copies).
  bool pack_weights = true;
  // Split the residual stream over the tp ranks of layout.shard() (see above); no effect when
  // tp == 1. Needs micro_batch · seq_len divisible by tp.
  bool sequence_parallel = false;
};

class LlamaStage {
 public:
  LlamaStage(const ParamLayout& layout, const StageOptions& opt, float* weights, float* grads,
             TensorParallelOps* tp = nullptr);

  // Re-pack the GEMM copies of the weights (bf16 mode: converting them to bf16). Call after
  // every change of the weights once the stage has run (each optimizer step, a reload), before
  // forward; weights set before the first forward need no call.
  void refresh_weights();

  // Forward of one micro-batch into activation slot `slot`.
  // First stage reads `tokens` [B·T]; other stages read `x_in` [rows(), D].
  // Last stage: computes the cross-entropy against `targets` (negative = ignored) and returns
  // its sum; with need_grad it also runs the head's backward, scaling the gradient of each
  // token's loss by `loss_scale` (1 / number of counted tokens in the global batch).
  double forward(int slot, const int32_t* tokens, const float* x_in, const int32_t* targets, float loss_scale,
                 bool need_grad);
  // Last stage, after forward(slot): the full logits [B·T, Vl] of this rank's vocabulary range
  // (tests and inspection only; training never materialises them).
  void logits(int slot, float* out) const;
  // Stage output [rows(), D] of `slot` (non-last stages send it to the next stage).
  const float* output(int slot) const;
  // Backward of `slot`. Non-last stages read `dy` [rows(), D], the gradient of their output.
  void backward(int slot, const float* dy);
  // Gradient of the stage input [rows(), D] after backward (non-first stages send it back).
  const float* input_grad() const { return d_res_; }

  int tokens_per_micro_batch() const { return N_; }
  // Rows of the residual stream this rank holds: B·T, or B·T / tp with sequence parallelism.
  int rows() const { return Nl_; }
  bool sequence_parallel() const { return sp_; }
  const ParamLayout& layout() const { return layout_; }
  size_t activation_bytes() const { return acts_.size() + work_.size() + bf16_work_.size(); }

 private:
  struct LayerActs {
    float *x, *ln1, *rstd1, *q, *k, *v, *att, *lse, *x_mid, *ln2, *rstd2, *gate, *up, *h;
  };
  struct Slot {
    int32_t* tokens;
    std::vector<LayerActs> layers;
    float *x_final, *lnf, *rstdf;
  };
  // A GEMM operand: fp32 data and, in bf16 mode, its bf16 copy (nullptr: converted on use).
  struct Mat {
    const float* f;
    const bf16* h;
    bool weight = false;  // a weight of this stage: its GEMMs read a packed copy
  };
  Mat wmat(const float* w) const;                           // a weight (its GEMMs read the packed copy)
  Mat cvt(const float* x, int64_t n, int buf);               // bf16 mode: convert into buffer `buf`
  void mm(Mat A, Mat B, float* C, int64_t M, int64_t N, int64_t K, bool ta, bool tb, bool acc);
  // Weight gradients sharing one input x [N, in]: parts[i].dw [out_i, in] += dy_iᵀ·x. In bf16
  // mode both operands are read transposed ([features, tokens]: oneDNN's bf16 kernel is
  // fastest with the reduction contiguous in both): x is converted here, each dy_i must have
  // been converted by cvt_dy at row offset out_0 + … + out_{i−1}; parts whose gradients lie
  // next to each other in memory (q/k/v, gate/up) run as one GEMM.
  struct WGrad {
    const float* dy;
    float* dw;
    int64_t out;
  };
  void wgrad(const float* x, int64_t in, std::initializer_list<WGrad> parts);
  // A gradient dy [N, cols] feeding an input-gradient GEMM (plain bf16 copy in buffer `buf`)
  // and a wgrad (transposed copy at row `row` of the stacked buffer), converted in one pass.
  Mat cvt_dy(const float* dy, int64_t cols, int buf, int64_t row);
  // Sequence parallelism: `local` [Nl,D] gathered into full_ [N,D]; without it `local` itself.
  const float* gather_rows(const float* local);
  // The tp-sum of a row-parallel output `partial` [N,D] into `out` [Nl,D] (without sequence
  // parallelism partial == out, all-reduced in place).
  void sum_partial(float* partial, float* out);
  // The tp-sum of d_ln_ [N,D], the input gradient of column-parallel GEMMs, for this rank's rows.
  const float* sum_input_grad();
  void layer_forward(const LayerWeights& w, const LayerActs& a, float* x_out);
  void layer_backward(const LayerWeights& w, const LayerWeights& g, const LayerActs& a);
  double head_forward_backward(const Slot& s, const int32_t* targets, float loss_scale, bool need_grad);

  const ParamLayout& layout_;
  LlamaConfig c_;
  LocalDims ld_;
  StageOptions opt_;
  StageWeights w_, g_;
  TensorParallelOps default_tp_;
  TensorParallelOps* tp_;
  int B_, T_, N_, D_, hd_, qdim_, kvdim_, F_;
  bool sp_ = false;
  int Nl_;             // local rows: N_, or N_ / tp with sequence parallelism
  float* full_ = nullptr;  // sequence parallelism: [N,D] gathered rows / row-parallel partial sums
  int64_t head_rows_;  // rows per LM-head chunk
  Buffer acts_, work_;
  float* weights_;
  bool bf16_ = false;
  // Packed copies of the weights: one per (weight, orientation), planned at construction in
  // one buffer, packed before the first GEMM and re-packed by refresh_weights(); bf16 mode
  // keeps no other bf16 copy of the weights.
  void plan_packed();
  std::map<std::pair<const float*, bool>, std::unique_ptr<cpu::PackedGemm>> packed_;
  Buffer packed_store_;
  bool packed_fresh_ = false;
  Buffer bf16_work_;  // the conversion buffers of bf16_buffers(): cvt_ = {a, b, shared}, then dyt
  bf16* cvt_[3] = {};
  bf16* cvt_dyt_ = nullptr;
  std::vector<Slot> slots_;
  LayerActs recompute_{};  // shared workspace when recomputing
  float* recompute_out_ = nullptr;
  float *d_res_, *d_ln_, *d_q_, *d_k_, *d_v_, *d_att_, *d_gate_, *d_up_, *d_h_;
  float *logits_, *ce_mx_, *ce_lse_, *ce_st_;  // head chunk workspace; ce_st_ = [sumexp | tlogit]
  float *rope_cos_, *rope_sin_;
};

// Deterministic random init, independent of the layout: element (i, j) of a global tensor gets
// the same value whatever tp/pp cut it. Matrices ~ N(0, 0.02²), o_proj/down_proj scaled by
// 1/√(2·layers) (GPT-2/Megatron), norms 1.
void init_weights(const ParamLayout& layout, float* weights, uint64_t seed);

}  // namespace lt
