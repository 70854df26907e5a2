// Training plan: what a job layout costs before it runs — per-rank memory (weights,
// gradients, optimizer state, activations with and without recomputation), FLOPs, and an
// estimated step time. Backs `llamatrain plan`; the trainer can log the same numbers.
//
// Memory follows what OUR trainer allocates, so the estimate can be checked against peak RSS:
// - weights: fp32 (4 B/param); bf16 keeps a bf16 compute copy (2 B) + fp32 master (4 B).
// - gradients: fp32, accumulated over micro-batches (4 B/param), plus the 1/dp range they
//   are reduce-scattered into under ZeRO-1.
// - optimizer: AdamW m and v (8 B/param) + the fp32 master under bf16; ZeRO-1 divides these
//   by dp (each replica keeps a 1/dp shard).
// - activations: LlamaStage's buffers (model/llama.h): per layer and micro-batch of N tokens
//   x, ln1, ln2, x_mid (4·N·D), rstd (2·N), q and the attention output (2·N·Hl·hd), k, v
//   (2·N·KVl·hd), logsumexp (N·Hl), gate, up, silu·up (3·N·Fl); with recomputation only x.
//   1F1B keeps min(pp - stage, micro-batches) micro-batches in flight on a stage. Plus one
//   layer's backward workspace and the LM head's chunked logits. fp32 (the CPU trainer);
//   GPU devices with bf16 store 2 B per value. Sequence parallelism divides the residual
//   stream and norm values (x, ln1, x_mid, ln2, their rstd, the stage output) by tp and adds
//   one [N, D] workspace of gathered rows (the trainer's parallel.sequence_parallel).
// The reported rank is the stage with the largest total.
//
// Time: the slowest stage's FLOPs / (peak x efficiency), stretched by the 1F1B schedule to
// (m + pp - 1) / m; communication is assumed hidden (not modelled). MFU is reported back.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/layout.h"
#include "parallel/job_layout.h"

namespace lt {

struct PlanOptions {
  JobShape shape;
  bool zero1 = true;
  bool recompute = false;
  bool pack_weights = true;  // cpu fp32: packed GEMM copies of the weights (train.pack_weights)
  bool sequence_parallel = false;
  std::string precision = "bf16";  // bf16 | fp32
  int64_t steps = 1500;
  std::string device = "cpu";      // cpu | h100 | h200 | trn1
  double efficiency = 0.40;        // fraction of peak the compute kernels reach
  double peak_flops = 0;           // per rank, FLOP/s; 0 = the device's
  int cores_per_rank = 1;          // cpu only
  double runtime_bytes = 0;        // per-rank baseline (binary, libraries, MPI); 0 = default
};

struct StageMemory {
  int stage = 0;
  int layers = 0;
  int64_t params = 0;  // this rank's parameters
  int in_flight = 1;   // micro-batches whose activations are held
  double weights = 0, gradients = 0, optimizer = 0;
  double activations = 0;              // as planned (with or without recomputation)
  double activations_full = 0;         // without recomputation
  double activations_recompute = 0;    // with full recomputation
  double workspace = 0;                // backward workspace, LM-head chunk, comm scratch
  double runtime = 0;
  double total() const { return weights + gradients + optimizer + activations + workspace + runtime; }
};

// Bytes one rank of a stage hands its tp / pp / dp communicators per optimizer step, counted
// as CommStats counts them (payload: the caller's buffers; sent: what goes on the wire with a
// bandwidth-optimal algorithm), from the calls the trainer makes: per micro-batch and layer
// two N·D all-reduces forward (after o_proj and down_proj), two backward (input gradients of
// q/k/v and gate/up), two more with recomputation; the embedding's and the LM head's N·D and
// the vocab-parallel cross-entropy's 3·N; activations and their gradients between stages;
// the gradient reduce-scatter + weight all-gather (ZeRO-1) or all-reduce over dp. With
// sequence parallelism the N·D all-reduces become all-gathers / reduce-scatters (see
// plan.cpp), the norm weights' gradients are all-reduced over tp once per step and the
// pipeline messages shrink to N·D / tp. Small reductions (loss, gradient norm, replicated KV
// heads, tied embeddings) are left out.
struct StageComm {
  double tp_payload = 0, tp_sent = 0;
  double pp_payload = 0, pp_sent = 0;
  double dp_payload = 0, dp_sent = 0;
};
StageComm stage_comm_bytes(const LlamaConfig& c, const JobLayout& L, int stage, bool zero1, bool recompute,
                           bool sequence_parallel = false);

struct TrainPlan {
  std::string model;
  JobLayout layout;
  PlanOptions options;
  int64_t tokens_per_step = 0;
  std::vector<StageMemory> stages;  // one per pipeline stage (tp rank 0)
  std::vector<StageComm> comm;      // the same stages' communication per step
  int peak_stage = 0;               // the stage with the largest total
  double model_flops_per_step = 0;     // 6·N·params + attention (config.h), per step
  double hardware_flops_per_step = 0;  // + the recomputed forward
  double peak_flops_per_rank = 0;
  double step_seconds = 0, total_seconds = 0, mfu = 0;
  std::vector<std::string> notes;
};

// Per-rank peak FLOP/s of a device for a precision; throws listing the devices.
double device_peak_flops(const std::string& device, const std::string& precision, int cores_per_rank);
TrainPlan make_train_plan(const LlamaConfig& c, const PlanOptions& o);
// Parameters of a stage that its GEMMs read (the CPU trainer keeps packed copies of them).
int64_t gemm_weight_params(const ParamLayout& layout);
// Activation bytes of one stage's LlamaStage buffers (see above), for tests and the trainer.
double stage_activation_bytes(const LlamaConfig& c, int tp, int pp, int stage, int micro_batch, int seq_len,
                              int in_flight, bool recompute, bool sequence_parallel, int bytes_per_value);
// The same stage's backward workspace, LM-head chunk and RoPE tables (no comm buffers).
double stage_workspace_bytes(const LlamaConfig& c, int tp, int pp, int stage, int micro_batch, int seq_len,
                             bool recompute, bool sequence_parallel, int bytes_per_value);
// The CPU stage's bf16 conversion buffers in bf16 mode (GEMM operands, the LM head chunk's
// logits gradient, weight gradients' transposed operands).
double stage_bf16_buffer_bytes(const LlamaConfig& c, int tp, int pp, int stage, int micro_batch, int seq_len);
// Bytes each CPU thread keeps for the attention backward of one micro-batch on a tp rank
// (cpu::attention_backward_scratch_bytes); the plan counts them cores_per_rank times.
double stage_attention_scratch_bytes(const LlamaConfig& c, int tp, int micro_batch, int seq_len, bool bf16);

}  // namespace lt
