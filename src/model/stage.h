// Stage: one pipeline stage of a Llama model on one rank — the seam between the training code
// (pipeline schedule, trainer, evaluator, checkpoints) and a backend (model/cpu/, model/cuda/).
// Code above this header never includes a kernels/ header and never dereferences stage memory
// directly: weights and gradients live where the backend put them (host memory on CPU, device
// memory on GPU) and are reached through Backend::access (model/backend.h).
//
// One layer, N = B·T tokens, D model width, Hl/KVl local heads, Fl local MLP width:
//   ln1 = rmsnorm(x)                       q,k,v = ln1·Wq^T, ln1·Wk^T, ln1·Wv^T; rope(q,k)
//   att = causal_attention(q,k,v)          x_mid = x + g(att·Wo^T)
//   ln2 = rmsnorm(x_mid)                   h = silu(ln2·Wg^T) ⊙ (ln2·Wu^T)
//   x_out = x_mid + g(h·Wd^T)
// The first stage starts with the embedding; the last ends with rmsnorm, the LM head and the
// cross-entropy, run in row chunks fused with their backward, so the full logits never exist.
//
// Tensor parallelism stays outside the maths: the stage calls TensorParallelOps at the named
// points (Megatron's f and g, the vocab-parallel cross-entropy, and sequence parallelism's row
// gather / reduce-scatter); the default does nothing (one rank). Sequence parallelism
// (StageOptions::sequence_parallel) splits the residual stream's N rows over the tp ranks:
// rows() is then N / tp, and so are the pipeline messages.
//
// Gradient convention: parameter gradients accumulate (+=) over micro-batches until
// zero_grads(); with sequence parallelism norm weight gradients are partial per tp rank (the
// caller sums them over tp).
#pragma once
#include <cstddef>
#include <cstdint>

#include "model/layout.h"
#include "model/stage_sizes.h"

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

// Told which parameter gradients are complete, as a forward (the last stage's fused head
// backward) or a backward runs: elements [begin, end) of grads() hold their final values for
// the micro-batch being run. The pipeline sets it for a step's last micro-batch, so that the
// data-parallel reduction of those gradients can start while the rest of the backward runs
// (train/grad_reducer.h). Ranges may include the alignment padding between parameters.
class GradReadyHook {
 public:
  virtual ~GradReadyHook() = default;
  virtual void grads_ready(size_t begin, size_t end) = 0;
};

// A pipeline message: a region of the stage's (backend) memory, the same size on both ends.
struct StageMessage {
  void* data = nullptr;
  size_t bytes = 0;
};

// Optional per-micro-batch inputs beyond tokens and targets (document masking); the defaults
// mean "none": one causal sequence per row, positions 0 .. T-1.
struct MicroBatchInputs {
  // [B·T] host int32: for each token, the position (within its row, 0 .. T-1) of the first token
  // of its document. Attention of token t stays inside [doc_start[t], t]. nullptr: plain causal.
  const int32_t* doc_start = nullptr;
  bool restart_positions = false;  // RoPE position of token t = t - doc_start[t] (else t)
};

class Stage {
 public:
  virtual ~Stage() = default;

  // --- Memory (backend-owned). Flat fp32 arrays in ParamLayout order, padded_params() long
  // (the padding stays zero). On CPU they are host memory; elsewhere use Backend::access.
  virtual float* weights() = 0;
  virtual float* grads() = 0;
  virtual void zero_grads() = 0;
  // Re-derive the compute copies of the weights (packed GEMM operands, bf16 copies) after the
  // weights changed (an optimizer step, a reload), before the next forward.
  virtual void refresh_weights() = 0;

  // --- One micro-batch, in activation slot `slot` (0 <= slot < options().slots).
  // `tokens` / `targets`: host int32 [B·T]; the first stage reads tokens, the last targets
  // (negative = ignored). Other stages read their input from input_message(slot), where the
  // pipeline received it. The last stage adds the summed cross-entropy of its tokens to the
  // loss accumulator (take_loss) and, with need_grad, runs the head's backward scaled by
  // `loss_scale` (1 / counted tokens of the global batch).
  virtual void forward(int slot, const int32_t* tokens, const int32_t* targets, float loss_scale,
                       bool need_grad) = 0;
  // The extra inputs of the next forward(slot, ...) and its backward; the caller sets them
  // before every forward while it uses any (copied: `in` need not outlive the call). The
  // default accepts only "none": a backend without document masking says so.
  virtual void set_inputs(int slot, const MicroBatchInputs& in);
  // Backward of `slot`. Non-last stages read the gradient of their output from
  // output_grad_message(), where the pipeline received it.
  virtual void backward(int slot) = 0;
  // Σ loss of the forwards since the last call (last stage; 0 elsewhere). May wait for the device.
  virtual double take_loss() = 0;
  // Where forward/backward report gradient ranges as they complete (nullptr: nowhere). A stage
  // that never reports is correct too: its gradients then count as complete when the pipeline
  // returns, and nothing overlaps. On a device, report once the producing work is enqueued on
  // the stream the communicator orders after.
  virtual void set_grad_ready_hook(GradReadyHook* hook) { (void)hook; }

  // --- Pipeline messages (rows() x D values each).
  virtual StageMessage input_message(int slot) = 0;  // receive the stage input of `slot` here
  virtual StageMessage output_message(int slot) = 0;  // the stage output of `slot`, after forward
  virtual StageMessage output_grad_message() = 0;     // receive the gradient of the output here
  virtual StageMessage input_grad_message() = 0;      // the gradient of the input, after backward
  // Where the output gradient of `slot` is received when the stage keeps one buffer per slot
  // (StageOptions::slot_grads): an interleaved pipeline receives one micro-batch's gradient
  // while sending another's input gradient from input_grad_message(), and the last stage's
  // head gradient must wait there for its backward. Default: the shared output_grad_message().
  virtual StageMessage slot_grad_message(int slot) {
    (void)slot;
    return output_grad_message();
  }

  // Last stage, after forward(slot): the logits [B·T, Vl] of this rank's vocabulary range,
  // copied to the host (evaluation and tests; training never materialises them).
  virtual void logits(int slot, float* host_out) = 0;

  // --- What it is.
  const ParamLayout& layout() const { return layout_; }
  const StageOptions& options() const { return opt_; }
  const StageSizes& sizes() const { return sizes_; }
  size_t padded_params() const { return padded_; }
  int tokens_per_micro_batch() const { return opt_.micro_batch * opt_.seq_len; }
  // Rows of the residual stream this rank holds: B·T, or B·T / tp with sequence parallelism.
  int rows() const { return sequence_parallel() ? tokens_per_micro_batch() / layout_.shard().tp : tokens_per_micro_batch(); }
  bool sequence_parallel() const { return opt_.sequence_parallel && layout_.shard().tp > 1; }
  // Bytes of activations and workspace the stage allocated (what it got, for reports and the
  // tests that hold the size table to it).
  virtual double activation_bytes() const = 0;

 protected:
  Stage(const ParamLayout& layout, const StageOptions& opt, StageSizes sizes, size_t padded)
      : layout_(layout), opt_(opt), sizes_(std::move(sizes)), padded_(padded) {}
  const ParamLayout& layout_;
  StageOptions opt_;
  StageSizes sizes_;
  size_t padded_;
};

}  // namespace lt
