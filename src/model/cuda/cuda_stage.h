// CudaStage: the CUDA backend's Stage (model/stage.h) — one pipeline stage on one GPU, the
// explicit forward and backward of model/cpu/cpu_stage.h in bf16 mixed precision, on the
// kernels of kernels/cuda. Every buffer lives in device memory, carved once from the regions
// its size table (cuda_sizes.cpp) lists; everything runs on the backend's one stream, and the
// host waits only where the Stage contract says a value comes back (take_loss, logits).
//
// Precision, as the CPU stage's bf16 mode: fp32 master weights, gradients (accumulated in fp32
// by the weight-gradient GEMMs with beta = 1), residual stream, norm statistics, softmax/lse
// and loss; bf16 GEMM operands (the normed activations, q|k|v after RoPE, the attention
// output, SwiGLU's output, the gradients fed to GEMMs) and a bf16 compute copy of every matrix
// weight, refreshed from the master weights by refresh_weights().
//
// Fused where the layout allows: q|k|v is one GEMM (their weights are adjacent in the flat
// buffer, and so are their gradients), gate|up one GEMM, the residual add with the next
// RMSNorm one kernel; the LM head and cross-entropy run in row chunks fused with their
// backward, the logits' bf16 gradient written over the chunk's fp32 logits (the full
// [N, V] logits never exist).
//
// Not supported (a clear error at construction): fp32 compute, sequence parallelism.
#pragma once
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/bf16.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/sdpa.h"
#include "model/cuda/cuda_profile.h"
#include "model/stage.h"

namespace lt {


class CudaStage final : public Stage {
 public:
  CudaStage(const ParamLayout& layout, const StageGeometry& g, TensorParallelOps* tp, cudaStream_t stream);
  ~CudaStage() override;

  float* weights() override { return w_base_; }
  float* grads() override { return g_base_; }
  void zero_grads() override;
  void refresh_weights() override;
  void forward(int slot, const int32_t* tokens, const int32_t* targets, float loss_scale, bool need_grad) override;
  void backward(int slot) override;
  double take_loss() override;
  StageMessage input_message(int slot) override;
  StageMessage output_message(int slot) override;
  StageMessage output_grad_message() override;
  StageMessage input_grad_message() override;
  StageMessage slot_grad_message(int slot) override;
  void logits(int slot, float* host_out) override;
  double activation_bytes() const override;

  // Which attention backend each shape took and why (logged once; for the device check).
  std::string attention_choice() const { return attention_choice_; }

 private:
  struct LayerActs {
    float* x;        // [Nl, D] layer input (fp32 residual)
    bf16* ln1;       // [Nl, D]
    float* rstd1;    // [Nl]
    bf16* qkv;       // [N, Q + 2KV] q, k after RoPE, v
    bf16* att;       // [N, Q]
    float* lse;      // [B, Hl, T]
    float* x_mid;    // [Nl, D]
    bf16* ln2;       // [Nl, D]
    float* rstd2;    // [Nl]
    float* gate_up;  // [N, 2F] fp32 pre-activations
    bf16* h;         // [N, F]
  };
  struct Slot {
    int32_t* tokens = nullptr;   // device [N] (first stage)
    int32_t* targets = nullptr;  // device [N] (last stage)
    int32_t* embed_plan = nullptr;
    int embed_rows = 0;          // rows of this micro-batch's embedding-gradient plan
    int64_t embed_positions = 0;
    std::vector<LayerActs> layers;
    float* x_final = nullptr;
    bf16* lnf = nullptr;
    float* rstdf = nullptr;
    float* d_out = nullptr;  // StageOptions::slot_grads: this slot's output gradient
  };
  // One matrix weight's bf16 compute copy: element i of the fp32 weight at `f32` is element i
  // of `bf16`. Runs that are adjacent in the flat buffer (q|k|v, gate|up) are adjacent here too.
  struct Matrix {
    const float* f32;
    bf16* h;
    size_t n;
  };
  const bf16* compute_copy(const float* w) const;  // the bf16 copy of the matrix starting at w
  float* stage_input(int slot) const;
  void gemm(const bf16* A, const bf16* B, void* C, const cuda::GemmShape& s);
  // Weight gradients sharing one input x [N, in] (bf16): parts[i].dw [out_i, in] += dy_iᵀ·x,
  // dy_i the column slice of dy [N, ld_dy] after the previous parts' columns; parts whose
  // gradients are adjacent in the flat buffer (q|k|v, gate|up) run as one GEMM.
  struct WGrad {
    float* dw;
    int64_t out;
  };
  void wgrad(const bf16* dy, int64_t ld_dy, const bf16* x, int64_t in, std::initializer_list<WGrad> parts);
  void layer_forward(const LayerWeights& w, const LayerActs& a, float* x_out);
  void layer_backward(const LayerWeights& w, const LayerWeights& g, const LayerActs& a);
  void head_forward_backward(const Slot& s, float loss_scale, bool need_grad);
  // The bf16 copy of d_res_, the gradient of a layer's output, as a GEMM operand.
  const bf16* d_res_bf16();

  cudaStream_t stream_;
  LlamaConfig c_;
  LocalDims ld_;
  TensorParallelOps default_tp_;
  TensorParallelOps* tp_;
  int B_, T_, N_, D_, hd_, Q_, KV_, F_, QKV_;
  int64_t head_rows_;
  StageWeights w_, g_;
  float *w_base_ = nullptr, *g_base_ = nullptr;
  cuda::DeviceBuffer weights_mem_, grads_mem_, acts_mem_, work_mem_;
  std::vector<Matrix> matrices_;
  std::vector<Slot> slots_;
  LayerActs recompute_{};
  float* recompute_out_ = nullptr;
  float* qkv_f32_ = nullptr;
  float *d_res_ = nullptr, *d_ln_ = nullptr, *d_h_ = nullptr, *norm_partials_ = nullptr;
  bf16 *d_res_h_ = nullptr, *d_qkv_ = nullptr, *d_att_ = nullptr, *d_gate_up_ = nullptr;
  float *logits_ = nullptr, *ce_stats_ = nullptr;
  double *row_loss_ = nullptr, *loss_ = nullptr;
  float *rope_cos_ = nullptr, *rope_sin_ = nullptr;
  std::unique_ptr<CudaProfile> prof_;  // LT_CUDA_PROFILE: time per kernel category
  std::unique_ptr<cuda::Gemm> gemm_;
  std::unique_ptr<cuda::Attention> attention_;
  cuda::AttnShape attn_shape_{};
  cuda::AttnStrides attn_strides_{};
  std::string attention_choice_;
};

}  // namespace lt
