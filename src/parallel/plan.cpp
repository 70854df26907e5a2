#include "parallel/plan.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "kernels/cpu/attention.h"
#include "model/layout.h"
#include "model/llama.h"

namespace lt {

namespace {
constexpr double kMiB = 1024.0 * 1024.0;
// MpiComm reduces in segments of at most this many bytes (parallel/mpi_comm.cpp).
constexpr double kCommSegmentBytes = 64.0 * kMiB;
// Resident size of a rank before it allocates anything: binary, libraries, MPI, OpenMP.
constexpr double kRuntimeBytes = 32.0 * kMiB;

int64_t round16(int64_t n) { return (n + 15) / 16 * 16; }

// Rows of the residual stream one rank holds: N, or N / tp with sequence parallelism (the
// trainer requires N divisible by tp).
int64_t residual_rows(int64_t N, int tp, bool sequence_parallel) {
  if (!sequence_parallel || tp <= 1) return N;
  LT_CHECK(N % tp == 0,
           "plan: --sequence-parallel needs --mbs x --seq = {} tokens per micro-batch divisible by --tp = {}", N, tp);
  return N / tp;
}
}  // namespace

double device_peak_flops(const std::string& device, const std::string& precision, int cores_per_rank) {
  LT_CHECK(precision == "bf16" || precision == "fp32", "plan: precision must be bf16 or fp32 (got '{}')", precision);
  const bool bf16 = precision == "bf16";
  // Per rank. cpu: measured on this project's build machine with oneDNN GEMMs (345 fp32 /
  // 700 bf16 GFLOP/s on 2 cores). h100/h200 (SXM, dense): 989 TFLOP/s bf16, 67 fp32; the
  // H200 has the H100's compute. trn1: 190 TFLOP/s bf16 / 47.5 fp32 per Trainium chip of 2
  // NeuronCores, one rank per NeuronCore (the seed's 32 processes per trn1.32xlarge).
  if (device == "cpu") {
    LT_CHECK(cores_per_rank >= 1, "plan: cores per rank must be >= 1 (got {})", cores_per_rank);
    return cores_per_rank * (bf16 ? 350e9 : 172.5e9);
  }
  if (device == "h100" || device == "h200") return bf16 ? 989e12 : 67e12;
  if (device == "trn1") return bf16 ? 95e12 : 23.75e12;
  fail("plan: unknown device '{}' (known: cpu, h100, h200, trn1)", device);
}

// Parameters of a stage that GEMMs read: every matrix but the embedding table, which is read
// by the LM head when the two are tied on this stage.
int64_t gemm_weight_params(const ParamLayout& layout) {
  int64_t n = 0;
  bool head = false;
  for (const auto& p : layout.params()) {
    if (p.kind == ParamKind::lm_head) head = true;
    if (p.kind != ParamKind::embedding && p.kind != ParamKind::norm) n += int64_t(p.numel);
  }
  if (layout.last_stage() && !head)
    for (const auto& p : layout.params())
      if (p.kind == ParamKind::embedding) n += int64_t(p.numel);
  return n;
}

double stage_activation_bytes(const LlamaConfig& c, int tp, int pp, int stage, int micro_batch, int seq_len,
                              int in_flight, bool recompute, bool sequence_parallel, int bytes_per_value) {
  ShardSpec s;
  s.tp = tp;
  s.pp = pp;
  s.pp_rank = stage;
  LocalDims ld = local_dims(c, s);
  LayerRange lr = stage_layers(c, s);
  const int64_t N = int64_t(micro_batch) * seq_len, D = c.dim, hd = c.head_dim();
  const int64_t Q = int64_t(ld.n_heads) * hd, KV = int64_t(ld.n_kv_heads) * hd, F = ld.hidden, Hl = ld.n_heads;
  // Sequence parallelism shards the residual stream and the norms (x, ln1, x_mid, ln2, rstd).
  const int64_t Nr = residual_rows(N, tp, sequence_parallel), ND = Nr * D;
  const int64_t layer_full = 4 * ND + 2 * Nr + 2 * N * Q + 2 * N * KV + N * Hl + 3 * N * F;
  const int nl = lr.end - lr.begin;
  int64_t per_slot = round16(N) + 2 * round16(ND) + round16(Nr);  // tokens, final x and norm, rstd
  per_slot += nl * (recompute ? round16(ND) : layer_full + 16 * 16);
  return double(per_slot) * in_flight * bytes_per_value;
}

// LlamaStage's workspace: one layer's backward gradients, the recompute record, the LM-head
// chunk, the RoPE tables and, with sequence parallelism, the [N, D] buffer of gathered rows
// (model/llama.cpp).
double stage_workspace_bytes(const LlamaConfig& c, int tp, int pp, int stage, int micro_batch, int seq_len,
                             bool recompute, bool sequence_parallel, int bytes_per_value) {
  ShardSpec s;
  s.tp = tp;
  s.pp = pp;
  s.pp_rank = stage;
  LocalDims ld = local_dims(c, s);
  const int64_t N = int64_t(micro_batch) * seq_len, D = c.dim, hd = c.head_dim();
  const int64_t Q = int64_t(ld.n_heads) * hd, KV = int64_t(ld.n_kv_heads) * hd, F = ld.hidden, Hl = ld.n_heads;
  const bool sp = sequence_parallel && tp > 1;
  const int64_t Nr = residual_rows(N, tp, sp);
  const int64_t layer_full = 4 * Nr * D + 2 * Nr + 2 * N * Q + 2 * N * KV + N * Hl + 3 * N * F;
  const bool last = stage == pp - 1;
  const int64_t head_rows = last ? head_chunk_rows(N, ld.vocab) : 0;
  return double((recompute ? layer_full + 16 * 16 + round16(Nr * D) : 0) + round16(Nr * D) + round16(N * D) +
                (sp ? round16(N * D) : 0) + 2 * round16(N * Q) +
                2 * round16(N * KV) + 3 * round16(N * F) + round16(head_rows * ld.vocab) + 4 * round16(head_rows) +
                2 * round16(int64_t(seq_len) * hd / 2)) * bytes_per_value;
}

double stage_bf16_buffer_bytes(const LlamaConfig& c, int tp, int pp, int stage, int micro_batch, int seq_len) {
  ShardSpec s;
  s.tp = tp;
  s.pp = pp;
  s.pp_rank = stage;
  const LocalDims ld = local_dims(c, s);
  const int64_t N = int64_t(micro_batch) * seq_len, D = c.dim, hd = c.head_dim();
  const int64_t Q = int64_t(ld.n_heads) * hd, KV = int64_t(ld.n_kv_heads) * hd, F = ld.hidden;
  const int64_t head_rows = stage == pp - 1 ? head_chunk_rows(N, ld.vocab) : 0;
  return double(bf16_buffers(N, D, Q, KV, F, head_rows, ld.vocab).total()) * sizeof(bf16);
}

double stage_attention_scratch_bytes(const LlamaConfig& c, int tp, int micro_batch, int seq_len, bool bf16) {
  ShardSpec s;
  s.tp = tp;
  const LocalDims ld = local_dims(c, s);
  return double(cpu::attention_backward_scratch_bytes({micro_batch, seq_len, ld.n_heads, ld.n_kv_heads, c.head_dim()},
                                                      bf16));
}

StageComm stage_comm_bytes(const LlamaConfig& c, const JobLayout& L, int stage, bool zero1, bool recompute,
                           bool sequence_parallel) {
  ShardSpec spec;
  spec.tp = L.tp;
  spec.pp = L.pp;
  spec.pp_rank = stage;
  ParamLayout layout(c, spec);
  const int nl = layout.layers().end - layout.layers().begin;
  const bool first = stage == 0, last = stage == L.pp - 1;
  const double ND = double(L.micro_batch) * L.seq_len * c.dim * 4.0, Nb = double(L.micro_batch) * L.seq_len * 4.0;
  const double m = L.micro_batches;
  const bool sp = sequence_parallel && L.tp > 1;
  StageComm r;
  if (L.tp > 1 && !sp) {
    double per_mb = nl * (recompute ? 6.0 : 4.0) * ND + (first ? ND : 0.0) + (last ? ND + 3.0 * Nb : 0.0);
    r.tp_payload = m * per_mb;
    r.tp_sent = r.tp_payload * 2.0 * (L.tp - 1) / L.tp;
  } else if (sp) {
    // All-gathers and reduce-scatters of N·D rows, each (tp-1)/tp of it on the wire: per layer
    // forward 2 + 2, backward 4 + 2 (ln1 and ln2 are gathered again), recomputation 2 + 2 more;
    // the embedding's reduce-scatter and gather; the final norm's gather and its gradient's
    // reduce-scatter. The cross-entropy's 3·N stay all-reduces.
    const double frac = double(L.tp - 1) / L.tp;
    double rows = nl * (recompute ? 14.0 : 10.0) * ND + (first ? 2.0 * ND : 0.0) + (last ? 2.0 * ND : 0.0);
    double ce = last ? 3.0 * Nb : 0.0;
    // Once per step: the norm weights' gradients, partial per tp rank, all-reduced over tp.
    const double norms = (2.0 * nl + (last ? 1.0 : 0.0)) * c.dim * 4.0;
    r.tp_payload = m * (rows + ce) + norms;
    r.tp_sent = m * (rows * frac + ce * 2.0 * frac) + norms * 2.0 * frac;
  }
  if (L.pp > 1) {
    const double msg = sp ? ND / L.tp : ND;  // the rows this rank holds
    double sends = (last ? 0.0 : 1.0) + (first ? 0.0 : 1.0);  // activations forward, gradients back
    r.pp_payload = m * 2.0 * sends * msg;                       // as many receives as sends
    r.pp_sent = m * sends * msg;
  }
  if (L.dp > 1) {
    // The optimizer pads the flat buffer to a multiple of 16 x dp (train/optimizer.h).
    const double unit = 16.0 * L.dp, padded = std::ceil(double(layout.total()) / unit) * unit * 4.0;
    const double frac = double(L.dp - 1) / L.dp;
    r.dp_payload = zero1 ? 2.0 * padded : padded;  // reduce-scatter + all-gather, or all-reduce
    r.dp_sent = 2.0 * padded * frac;
  }
  return r;
}

TrainPlan make_train_plan(const LlamaConfig& c, const PlanOptions& o) {
  TrainPlan p;
  p.model = c.name;
  p.options = o;
  LT_CHECK(o.shape.seq_len >= 1, "plan: the sequence length must be given (--seq)");
  LT_CHECK(o.efficiency > 0 && o.efficiency <= 1, "plan: efficiency (--mfu) must be in (0, 1] (got {})", o.efficiency);
  LT_CHECK(o.steps >= 0, "plan: steps must be >= 0 (got {})", o.steps);
  p.layout = derive_job_layout(o.shape, c);
  const JobLayout& L = p.layout;
  const bool bf16 = o.precision == "bf16";
  p.peak_flops_per_rank = o.peak_flops > 0 ? o.peak_flops : device_peak_flops(o.device, o.precision, o.cores_per_rank);
  // The CPU trainer keeps activations in fp32 whatever the weights' precision.
  const int act_bytes = (bf16 && o.device != "cpu") ? 2 : 4;
  const int64_t N = int64_t(L.micro_batch) * L.seq_len;
  p.tokens_per_step = int64_t(L.global_batch) * L.seq_len;

  // FLOPs per token of one layer (matmuls x 6, causal attention x 6 / 2) and of the LM head.
  const double D = c.dim, KVd = c.kv_dim(), F = c.hidden_dim, V = c.vocab_size, T = L.seq_len;
  const double layer_flops = 6.0 * (2 * D * D + 2 * D * KVd + 3 * D * F) + 6.0 * T * D;
  const double head_flops = 6.0 * V * D;
  p.model_flops_per_step = c.flops_per_token(L.seq_len) * double(p.tokens_per_step);
  const double recompute_factor = o.recompute ? 4.0 / 3.0 : 1.0;  // one more forward of every layer
  p.hardware_flops_per_step = (layer_flops * c.n_layers * recompute_factor + head_flops) * double(p.tokens_per_step);

  double slowest_stage_flops = 0;  // per replica and token, over the tp group
  for (int st = 0; st < L.pp; ++st) {
    ShardSpec spec;
    spec.tp = L.tp;
    spec.pp = L.pp;
    spec.pp_rank = st;
    ParamLayout layout(c, spec);
    StageMemory m;
    m.stage = st;
    m.layers = layout.layers().end - layout.layers().begin;
    m.params = int64_t(layout.total());
    m.in_flight = std::min(L.pp - st, L.micro_batches);
    const double P = double(m.params), shard = std::ceil(P / (o.zero1 ? L.dp : 1));
    m.gradients = 4.0 * P;
    if (o.zero1 && L.dp > 1) m.gradients += 4.0 * shard;  // the reduce-scattered gradient range
    if (o.device == "cpu") {
      // The CPU trainer computes from its fp32 weights (they are the master copy) and keeps a
      // packed copy of every GEMM weight per orientation (forward, input gradient); bf16 in
      // bf16 mode (LlamaStage).
      const double packed = bf16 ? 4.0 : (o.pack_weights ? 8.0 : 0.0);
      m.weights = 4.0 * P + packed * double(gemm_weight_params(layout));
      m.optimizer = 8.0 * shard;
    } else {
      m.weights = (bf16 ? 2.0 : 4.0) * P;
      m.optimizer = (bf16 ? 12.0 : 8.0) * shard;
    }
    m.activations_full = stage_activation_bytes(c, L.tp, L.pp, st, L.micro_batch, L.seq_len, m.in_flight, false,
                                                o.sequence_parallel, act_bytes);
    m.activations_recompute = stage_activation_bytes(c, L.tp, L.pp, st, L.micro_batch, L.seq_len, m.in_flight, true,
                                                     o.sequence_parallel, act_bytes);
    m.activations = o.recompute ? m.activations_recompute : m.activations_full;
    m.workspace = stage_workspace_bytes(c, L.tp, L.pp, st, L.micro_batch, L.seq_len, o.recompute,
                                        o.sequence_parallel, act_bytes);
    if (o.device == "cpu" && bf16) m.workspace += stage_bf16_buffer_bytes(c, L.tp, L.pp, st, L.micro_batch, L.seq_len);
    if (o.device == "cpu" && m.layers > 0)  // the attention backward's per-thread buffers
      m.workspace += double(o.cores_per_rank) * stage_attention_scratch_bytes(c, L.tp, L.micro_batch, L.seq_len, bf16);
    // Comm scratch of the largest reduction: gradients over dp, activations over tp.
    double reduced = std::max(L.dp > 1 ? 4.0 * P : 0.0, L.tp > 1 ? 4.0 * double(N) * D : 0.0);
    if (reduced > 0) m.workspace += std::min(kCommSegmentBytes, reduced) * 1.5;
    if (L.pp > 1)  // stage input / output-gradient buffers: the rows this rank holds
      m.workspace += 2.0 * double(residual_rows(N, L.tp, o.sequence_parallel)) * D * act_bytes;
    m.workspace += 3.0 * L.per_replica_batch * (L.seq_len + 1) * 4.0;  // token samples, inputs, targets
    m.runtime = o.runtime_bytes > 0 ? o.runtime_bytes : kRuntimeBytes;
    p.stages.push_back(m);
    p.comm.push_back(stage_comm_bytes(c, L, st, o.zero1, o.recompute, o.sequence_parallel));
    if (m.total() > p.stages[p.peak_stage].total()) p.peak_stage = st;
    double stage_flops = layer_flops * m.layers * recompute_factor + (st == L.pp - 1 ? head_flops : 0.0);
    slowest_stage_flops = std::max(slowest_stage_flops, stage_flops / L.tp);
  }

  const double tokens_per_replica = double(L.per_replica_batch) * L.seq_len;
  const double compute_s = slowest_stage_flops * tokens_per_replica / (p.peak_flops_per_rank * o.efficiency);
  p.step_seconds = compute_s * double(L.micro_batches + L.pp - 1) / double(L.micro_batches);
  p.total_seconds = p.step_seconds * double(o.steps);
  p.mfu = p.model_flops_per_step / (p.step_seconds * L.world * p.peak_flops_per_rank);

  p.notes = L.warnings;
  if (o.sequence_parallel && L.tp > 1)
    p.notes.push_back("sequence parallelism: the residual stream and norms (N x D) divided by tp");
  if (o.device == "cpu" && bf16) p.notes.push_back("cpu: activations counted in fp32 (the CPU trainer's storage)");
  p.notes.push_back("step time: slowest stage at the given efficiency, stretched by the 1F1B bubble; "
                    "communication assumed overlapped (not modelled)");
  return p;
}

}  // namespace lt
