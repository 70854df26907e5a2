// Training plan: what a job layout costs before it runs — per-rank memory (weights,
// gradients, optimizer state, activations with and without recomputation, workspace), FLOPs,
// communication and an estimated step time. Backs `llamatrain plan`.
//
// Memory is the sum of the chosen backend's stage size table (model/stage_sizes.h: the same
// table the stage allocates from, so the estimate is what the trainer allocates; checked
// against peak RSS by tests/parallel/plan_rss_test.cpp) for tp rank 0 of every stage, with
// min(pp − stage, micro-batches) micro-batches in flight (1F1B), plus what lives outside the
// stage: the communicator's scratch, the loader's samples, and the process baseline. Device
// cpu uses the CPU stage's table, h100 / h200 the CUDA stage's (trn1, which has no backend of
// ours, is estimated with the CUDA stage's table). The reported rank is the stage with the
// largest total.
//
// Layers are cut as the trainer cuts them (parallel.stage_starts, stage_balance.h: by cost by
// default); each stage's cost per token is reported. With interleaving (virtual_stages = v)
// a rank holds v chunks: its memory, cost and traffic are their sums, its activation slots
// those of the interleaved program (parallel/pipeline_program.h).
//
// Time: the slowest stage's FLOPs / (peak x efficiency), stretched by the 1F1B schedule to
// (m + pp - 1) / m; communication is assumed hidden (not modelled). MFU is reported back.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/layout.h"
#include "model/stage_sizes.h"
#include "parallel/job_layout.h"
#include "parallel/stage_balance.h"

namespace lt {

struct PlanOptions {
  JobShape shape;
  bool zero1 = true;
  bool recompute = false;
  bool pack_weights = true;  // cpu fp32: packed GEMM copies of the weights (train.pack_weights)
  bool sequence_parallel = false;
  StageCut cut;                    // parallel.stage_starts (default auto: by cost)
  bool overlap_grad_reduce = true;  // parallel.overlap_grad_reduce
  double grad_bucket_bytes = 8.0 * 1048576;  // parallel.grad_bucket_mb
  int virtual_stages = 1;           // parallel.virtual_stages (interleaved 1F1B)
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
  int first_layer = 0, layers = 0;
  std::vector<std::pair<int, int>> chunks;  // (first layer, layers) of each model chunk of the rank
  double cost = 0;     // FLOPs per token, forward + backward, of the whole stage (stage_balance.h)
  int64_t params = 0;  // this rank's parameters
  int in_flight = 0;   // micro-batches whose activations are held (interleaved: chunk passes)
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
// With o.overlap_grad_reduce and without ZeRO-1 the dp all-reduce is a bucketed sum to the
// range owners plus an all-gather: the same bytes sent, twice the payload handed to the comm.
StageComm stage_comm_bytes(const LlamaConfig& c, const JobLayout& L, int stage, const PlanOptions& o,
                           const std::vector<int>& stage_starts = {});

struct TrainPlan {
  std::string model;
  JobLayout layout;
  PlanOptions options;
  int64_t tokens_per_step = 0;
  std::vector<int> stage_starts;    // the cut the trainer makes for these options (empty: even)
  std::vector<StageMemory> stages;  // one per pipeline stage (tp rank 0)
  std::vector<StageComm> comm;      // the same stages' communication per step
  std::vector<StageSizes> tables;   // the same stages' buffer tables (as planned)
  int peak_stage = 0;               // the stage with the largest total
  double bubble = 0;                // (pp − 1) / (v·m + pp − 1)
  double model_flops_per_step = 0;     // 6·N·params + attention (config.h), per step
  double hardware_flops_per_step = 0;  // + the recomputed forward
  double peak_flops_per_rank = 0;
  double step_seconds = 0, total_seconds = 0, mfu = 0;
  std::vector<std::string> notes;
};

// Overlapped gradient reduction (train/grad_reducer.h): buckets pending at once per reducer.
// A range owner receives each pending bucket of its own from dp − 2 peers into scratch (dp − 1
// without ZeRO-1; the first arrives in place), which plan counts as workspace.
constexpr int kMaxGradBucketsInFlight = 8;

// Idle share of a pipeline step: (pp − 1) / (v·m + pp − 1) (1F1B at v = 1, interleaved above).
double pipeline_bubble(int pp, int micro_batches, int v);
// Per-rank peak FLOP/s of a device for a precision; throws listing the devices.
double device_peak_flops(const std::string& device, const std::string& precision, int cores_per_rank);
TrainPlan make_train_plan(const LlamaConfig& c, const PlanOptions& o);
// The backend whose stage table a plan device uses (cpu -> cpu; h100, h200, trn1 -> cuda).
Device plan_backend(const std::string& device);

}  // namespace lt
