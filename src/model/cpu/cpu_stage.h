// CpuStage: the CPU backend's Stage (model/stage.h) — the explicit forward and backward of one
// pipeline stage on host memory, no autograd. Weights, gradients, activations and workspace are
// carved once from the buffers its size table (cpu_sizes.cpp) lists, for `slots` micro-batches
// in flight; the kernels are kernels/cpu/*.
//
// Sequence parallelism: outside the tensor-parallel regions the N = B·T rows are split over
// the tp ranks, rank r holding rows [r·N/tp, (r+1)·N/tp) ("local rows", Nl = N/tp): the
// residual stream x / x_mid, the norms ln1 / ln2 / final norm and their rstd, the stage's input,
// output and input gradient. Each region is entered with all_gather_rows (ln1 / ln2 / final
// norm [Nl,D] -> [N,D] in a shared workspace) and left with reduce_scatter_rows (the
// row-parallel partial [N,D] -> summed [Nl,D]) instead of g's all-reduce; backward mirrors it
// (all-gather the output gradient, reduce-scatter the column-parallel input gradient instead
// of f's all-reduce). Slots keep only the local ln1 / ln2; backward gathers them again for the
// weight gradients.
//
// Weight GEMMs read packed copies of the weights (oneDNN's blocked layout for each GEMM shape,
// made on first use; refresh_weights() re-packs them after each change of the weights).
//
// Precision bf16 (mixed precision as GPU training does it): every GEMM takes bf16 inputs and
// accumulates in fp32 (oneDNN, AVX512_BF16); the packed weight copies are bf16 (rounded to
// nearest even from the fp32 master weights); GEMM activation inputs (normed x, attention
// output, SwiGLU output, and the gradients fed to GEMMs) are rounded to bf16 just before the
// GEMM. Norms, RoPE, softmax/attention, the residual stream, the loss and every parameter
// gradient stay fp32.
#pragma once
#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "core/bf16.h"
#include "core/buffer.h"
#include "kernels/cpu/gemm.h"
#include "model/layout.h"
#include "model/stage.h"

namespace lt {

// bf16 mode's conversion buffers, in bf16 elements, each a whole number of 64-byte lines (the
// transposed conversions stream whole lines): `a` takes GEMM A operands and one LM-head chunk
// of logits gradients, `b` wgrad's transposed x, `shared` activations converted once for
// several GEMMs, `dyt` wgrad's transposed dy of all parts stacked.
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

class CpuStage final : public Stage {
 public:
  CpuStage(const ParamLayout& layout, const StageGeometry& g, TensorParallelOps* tp = nullptr);

  float* weights() override { return weights_.as<float>(); }
  float* grads() override { return grads_.as<float>(); }  // nullptr for a forward-only stage
  void zero_grads() override;
  void refresh_weights() override;
  void set_inputs(int slot, const MicroBatchInputs& in) override;
  void forward(int slot, const int32_t* tokens, const int32_t* targets, float loss_scale, bool need_grad) override;
  void backward(int slot) override;
  double take_loss() override;
  StageMessage input_message(int slot) override;
  StageMessage output_message(int slot) override;
  StageMessage output_grad_message() override;
  StageMessage input_grad_message() override;
  StageMessage slot_grad_message(int slot) override;
  void logits(int slot, float* host_out) override;
  void set_grad_ready_hook(GradReadyHook* hook) override { grad_hook_ = hook; }
  double activation_bytes() const override { return double(acts_.size() + work_.size()); }

 private:
  struct LayerActs {
    float *x, *ln1, *rstd1, *q, *k, *v, *att, *lse, *x_mid, *ln2, *rstd2, *gate, *up, *h;
  };
  struct Slot {
    int32_t* tokens;
    int32_t* doc_start = nullptr;  // document masking: the micro-batch's document starts
    bool masked = false, restart = false;  // set_inputs gave document starts; positions restart
    std::vector<LayerActs> layers;
    float *x_final, *lnf, *rstdf;
    float* d_out = nullptr;  // StageOptions::slot_grads: this slot's output gradient
  };
  // A GEMM operand: fp32 data and, in bf16 mode, its bf16 copy (nullptr: converted on use).
  struct Mat {
    const float* f;
    const bf16* h;
    bool weight = false;  // a weight of this stage: its GEMMs read a packed copy
  };
  Mat wmat(const float* w) const;              // a weight (its GEMMs read the packed copy)
  Mat cvt(const float* x, int64_t n, int buf);  // bf16 mode: convert into buffer `buf`
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
  // `s` gives the micro-batch's document starts (document masking) to RoPE and attention.
  void layer_forward(const LayerWeights& w, const LayerActs& a, float* x_out, const Slot& s);
  void layer_backward(const LayerWeights& w, const LayerWeights& g, const LayerActs& a, const Slot& s);
  double head_forward_backward(const Slot& s, const int32_t* targets, float loss_scale, bool need_grad);
  float* stage_input(int slot) const;  // the first layer's input (x_final when the stage has no layers)

  LlamaConfig c_;
  LocalDims ld_;
  StageWeights w_, g_;
  TensorParallelOps default_tp_;
  TensorParallelOps* tp_;
  int B_, T_, N_, D_, hd_, qdim_, kvdim_, F_;
  bool sp_ = false;
  int Nl_;                 // local rows: N_, or N_ / tp with sequence parallelism
  float* full_ = nullptr;  // sequence parallelism: [N,D] gathered rows / row-parallel partial sums
  int64_t head_rows_;      // rows per LM-head chunk
  Buffer weights_, grads_, acts_, work_;
  bool bf16_ = false;
  double loss_ = 0;
  // Packed copies of the weights: one per (weight, orientation), planned at construction in
  // one buffer, packed before the first GEMM and re-packed by refresh_weights(); bf16 mode
  // keeps no other bf16 copy of the weights.
  void plan_packed();
  std::map<std::pair<const float*, bool>, std::unique_ptr<cpu::PackedGemm>> packed_;
  Buffer packed_store_;
  bool packed_fresh_ = false;
  bf16* cvt_[3] = {};  // bf16 conversion buffers a, b, shared (bf16_buffers())
  bf16* cvt_dyt_ = nullptr;
  std::vector<Slot> slots_;
  LayerActs recompute_{};  // shared workspace when recomputing
  float* recompute_out_ = nullptr;
  float *d_res_ = nullptr, *d_ln_ = nullptr, *d_q_ = nullptr, *d_k_ = nullptr, *d_v_ = nullptr, *d_att_ = nullptr,
        *d_gate_ = nullptr, *d_up_ = nullptr, *d_h_ = nullptr;  // backward workspace (none forward-only)
  float *logits_, *ce_mx_, *ce_lse_, *ce_st_;  // head chunk workspace; ce_st_ = [sumexp | tlogit]
  float *rope_cos_, *rope_sin_;
  // Gradient ranges reported to grad_hook_ as they complete: each local layer's, the head's
  // (final norm + untied LM head) and the embedding's; {0, 0} when the stage has none.
  struct FlatRange {
    size_t begin = 0, end = 0;
  };
  void report(FlatRange r) const {
    if (grad_hook_ && r.end > r.begin) grad_hook_->grads_ready(r.begin, r.end);
  }
  GradReadyHook* grad_hook_ = nullptr;
  std::vector<FlatRange> layer_grads_;
  FlatRange head_grads_, embed_grads_;
};

}  // namespace lt
