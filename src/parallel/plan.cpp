#include "parallel/plan.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "model/layout.h"
#include "parallel/pipeline_program.h"

namespace lt {

double pipeline_bubble(int pp, int micro_batches, int v) {
  return double(pp - 1) / double(v * micro_batches + pp - 1);
}

namespace {
constexpr double kMiB = 1024.0 * 1024.0;
// MpiComm reduces in segments of at most this many bytes (parallel/mpi_comm.cpp).
constexpr double kCommSegmentBytes = 64.0 * kMiB;
// Resident size of a rank before it allocates anything: binary, libraries, MPI, OpenMP.
constexpr double kRuntimeBytes = 32.0 * kMiB;

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

Device plan_backend(const std::string& device) { return device == "cpu" ? Device::cpu : Device::cuda; }

StageComm stage_comm_bytes(const LlamaConfig& c, const JobLayout& L, int stage, const PlanOptions& o,
                           const std::vector<int>& stage_starts) {
  const bool zero1 = o.zero1, recompute = o.recompute, sequence_parallel = o.sequence_parallel;
  ShardSpec spec;
  spec.tp = L.tp;
  spec.pp = L.pp;
  spec.pp_rank = stage;
  spec.stage_starts = stage_starts;
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
    // reduce-scatter + all-gather, or all-reduce (overlapped: bucketed sums + all-gather)
    r.dp_payload = zero1 || o.overlap_grad_reduce ? 2.0 * padded : padded;
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
  const Device backend = plan_backend(o.device);
  const int64_t N = int64_t(L.micro_batch) * L.seq_len;
  p.tokens_per_step = int64_t(L.global_batch) * L.seq_len;

  // FLOPs per token of one layer (matmuls x 6, causal attention x 6 / 2; 4/3 of it with
  // recomputation), of the embedding and of the LM head + cross-entropy.
  const double D = c.dim;
  const StageCostModel cost = stage_cost_model(c, L.seq_len, o.recompute);
  p.model_flops_per_step = c.flops_per_token(L.seq_len) * double(p.tokens_per_step);
  p.hardware_flops_per_step = (cost.layer * c.n_layers + cost.head) * double(p.tokens_per_step);
  const int v = o.virtual_stages, stages = v * L.pp;
  LT_CHECK(v >= 1 && (v == 1 || stages <= c.n_layers),
           "plan: --virtual-stages {} x --pp {} = {} model chunks, more than the model's {} layers", v, L.pp, stages,
           c.n_layers);
  p.stage_starts = resolve_stage_starts(o.cut, c, L.pp, v, L.seq_len, o.recompute);
  JobLayout virt = L;  // the chunks as the stages of a v·pp pipeline (each rank's v chunks summed)
  virt.pp = stages;

  double slowest_stage_flops = 0;  // per replica and token, over the tp group
  for (int st = 0; st < L.pp; ++st) {
    const std::vector<int> slots =
        v == 1 ? std::vector<int>{std::min(L.pp - st, L.micro_batches)} : interleaved_programs(L.pp, v, L.micro_batches)[size_t(st)].slots;
    StageMemory m;
    m.stage = st;
    m.in_flight = 0;
    StageSizes planned;
    StageComm comm;
    for (int ch = 0; ch < v; ++ch) {
      StageGeometry g;
      g.config = c;
      g.shard.tp = L.tp;
      g.shard.pp = stages;
      g.shard.pp_rank = ch * L.pp + st;
      g.shard.stage_starts = p.stage_starts;
      g.options.micro_batch = L.micro_batch;
      g.options.seq_len = L.seq_len;
      g.options.slots = slots[size_t(ch)];
      g.options.slot_grads = v > 1;
      g.options.precision = bf16 ? Precision::bf16 : Precision::fp32;
      g.options.pack_weights = o.pack_weights;
      g.options.sequence_parallel = o.sequence_parallel;
      g.dp = L.dp;
      g.zero1 = o.zero1 && L.dp > 1;
      g.threads = backend == Device::cpu ? o.cores_per_rank : 1;
      if (g.options.sequence_parallel && L.tp > 1)
        LT_CHECK(N % L.tp == 0,
                 "plan: --sequence-parallel needs --mbs x --seq = {} tokens per micro-batch divisible by --tp = {}", N,
                 L.tp);
      g.options.recompute = false;
      const StageSizes full = stage_sizes(backend, g);
      g.options.recompute = true;
      const StageSizes recomputed = stage_sizes(backend, g);
      const StageSizes& chunk_planned = o.recompute ? recomputed : full;
      ParamLayout layout(c, g.shard);
      const int layers = layout.layers().end - layout.layers().begin;
      if (ch == 0) m.first_layer = layout.layers().begin;
      m.chunks.push_back({layout.layers().begin, layers});
      m.layers += layers;
      m.cost += stage_cost(cost, layers, g.shard.pp_rank, stages);
      m.params += int64_t(layout.total());
      m.in_flight += g.options.slots;
      m.weights += chunk_planned.bytes(MemKind::weights);
      m.gradients += chunk_planned.bytes(MemKind::gradients);
      m.optimizer += chunk_planned.bytes(MemKind::optimizer);
      m.activations_full += full.bytes(MemKind::activations);
      m.activations_recompute += recomputed.bytes(MemKind::activations);
      m.activations += chunk_planned.bytes(MemKind::activations);
      m.workspace += chunk_planned.bytes(MemKind::workspace);
      for (StageBuffer b : chunk_planned.buffers) {
        if (v > 1) b.name = fmt::format("chunk{}.{}", ch, b.name);
        planned.buffers.push_back(b);
      }
      const StageComm cc = stage_comm_bytes(c, virt, g.shard.pp_rank, o, p.stage_starts);
      comm.tp_payload += cc.tp_payload, comm.tp_sent += cc.tp_sent;
      comm.pp_payload += cc.pp_payload, comm.pp_sent += cc.pp_sent;
      comm.dp_payload += cc.dp_payload, comm.dp_sent += cc.dp_sent;
    }
    // Outside the stage: the communicator's scratch for the largest reduction (gradients over
    // dp, activations over tp; MpiComm works in segments), and the loader's token samples,
    // inputs and targets.
    const double P = double(m.params);
    const bool overlap = o.overlap_grad_reduce && L.dp > 1;
    const double reduced = std::max(L.dp > 1 && !overlap ? 4.0 * P : 0.0, L.tp > 1 ? 4.0 * double(N) * D : 0.0);
    if (reduced > 0) m.workspace += std::min(kCommSegmentBytes, reduced) * 1.5;
    if (overlap)  // the receive buffers of the pending buckets this rank owns (at most its range)
      m.workspace += std::min(kMaxGradBucketsInFlight * o.grad_bucket_bytes, 4.0 * P / L.dp) *
                     double(o.zero1 ? L.dp - 2 : L.dp - 1);
    m.workspace += 3.0 * L.per_replica_batch * (L.seq_len + 1) * 4.0;
    m.runtime = o.runtime_bytes > 0 ? o.runtime_bytes : kRuntimeBytes;
    p.stages.push_back(m);
    p.tables.push_back(planned);
    p.comm.push_back(comm);
    if (m.total() > p.stages[p.peak_stage].total()) p.peak_stage = st;
    slowest_stage_flops = std::max(slowest_stage_flops, m.cost / L.tp);
  }

  const double tokens_per_replica = double(L.per_replica_batch) * L.seq_len;
  const double compute_s = slowest_stage_flops * tokens_per_replica / (p.peak_flops_per_rank * o.efficiency);
  p.bubble = pipeline_bubble(L.pp, L.micro_batches, v);
  p.step_seconds = compute_s / (1.0 - p.bubble);
  p.total_seconds = p.step_seconds * double(o.steps);
  p.mfu = p.model_flops_per_step / (p.step_seconds * L.world * p.peak_flops_per_rank);

  p.notes = L.warnings;
  if (o.sequence_parallel && L.tp > 1)
    p.notes.push_back("sequence parallelism: the residual stream and norms (N x D) divided by tp");
  if (o.device == "cpu" && bf16) p.notes.push_back("cpu: activations counted in fp32 (the CPU trainer's storage)");
  if (o.device == "trn1") p.notes.push_back("trn1: memory estimated with the CUDA stage's buffer table");
  if (v > 1)
    p.notes.push_back(fmt::format("interleaved 1F1B: {} chunks per rank ({} virtual stages); activations counted for "
                                  "the chunk passes in flight",
                                  v, stages));
  p.notes.push_back(v > 1 ? "step time: slowest rank at the given efficiency, stretched by the interleaved bubble; "
                            "communication assumed overlapped (not modelled)"
                          : "step time: slowest stage at the given efficiency, stretched by the 1F1B bubble; "
                            "communication assumed overlapped (not modelled)");
  return p;
}

}  // namespace lt
