#include "model/stage_sizes.h"

#include <fmt/format.h>

#include "core/error.h"

namespace lt {

const char* mem_kind_name(MemKind k) {
  switch (k) {
    case MemKind::weights: return "weights";
    case MemKind::gradients: return "gradients";
    case MemKind::optimizer: return "optimizer";
    case MemKind::activations: return "activations";
    case MemKind::workspace: return "workspace";
  }
  return "?";
}

void StageSizes::add(std::string name, MemKind kind, int64_t count, int elem_bytes, int64_t copies,
                     const char* owner) {
  if (count <= 0 || copies <= 0) return;  // absent on this stage (e.g. the head on a middle stage)
  buffers.push_back({std::move(name), kind, count, elem_bytes, copies, owner});
}

double StageSizes::bytes(MemKind kind) const {
  double b = 0;
  for (const auto& s : buffers)
    if (s.kind == kind) b += s.bytes();
  return b;
}

double StageSizes::carved_bytes(MemKind kind) const {
  double b = 0;
  for (const auto& s : buffers)
    if (s.kind == kind && !s.owner) b += s.bytes();
  return b;
}

double StageSizes::total() const {
  double b = 0;
  for (const auto& s : buffers) b += s.bytes();
  return b;
}

const StageBuffer* StageSizes::find(const std::string& name) const {
  for (const auto& s : buffers)
    if (s.name == name) return &s;
  return nullptr;
}

std::string StageSizes::report() const {
  constexpr double MiB = 1024.0 * 1024.0;
  std::string out;
  for (MemKind k : {MemKind::weights, MemKind::gradients, MemKind::optimizer, MemKind::activations, MemKind::workspace}) {
    if (bytes(k) == 0) continue;
    out += fmt::format("  {:<12} {:>10.1f} MiB\n", mem_kind_name(k), bytes(k) / MiB);
    for (const auto& s : buffers)
      if (s.kind == k)
        out += fmt::format("    {:<22} {:>12} x {:<2} x {:>6} {:>10.2f} MiB{}\n", s.name, s.count, s.elem_bytes, s.copies,
                           s.bytes() / MiB, s.owner ? fmt::format("  ({})", s.owner) : "");
  }
  out += fmt::format("  {:<12} {:>10.1f} MiB\n", "total", total() / MiB);
  return out;
}

void add_layer_records(StageSizes& s, const StageOptions& o, const StageDims& d,
                       const std::function<void(const std::string&, MemKind, int64_t)>& record) {
  if (!o.recompute) return record("layer.", MemKind::activations, int64_t(o.slots) * d.layers);
  if (d.layers == 0) return;
  record("recompute.", MemKind::workspace, 1);
  s.add("recompute.out", MemKind::workspace, d.Nr * d.D);
}

size_t padded_params(size_t total, int dp) {
  const size_t unit = size_t(std::max(dp, 1)) * 16;
  return (total + unit - 1) / unit * unit;
}

StageDims stage_dims(const StageGeometry& g) {
  const LlamaConfig& c = g.config;
  const StageOptions& o = g.options;
  ParamLayout layout(c, g.shard);
  const LocalDims ld = local_dims(c, g.shard);
  StageDims d{};
  d.B = o.micro_batch;
  d.T = o.seq_len;
  d.N = d.B * d.T;
  const int tp = g.shard.tp;
  d.sp = o.sequence_parallel && tp > 1;
  LT_CHECK(!d.sp || d.N % tp == 0,
           "parallel.sequence_parallel: train.micro_batch_size x train.seq_len = {} x {} = {} tokens per micro-batch "
           "must be divisible by parallel.tp = {}",
           d.B, d.T, d.N, tp);
  d.Nr = d.sp ? d.N / tp : d.N;
  d.D = c.dim;
  d.hd = c.head_dim();
  d.Hl = ld.n_heads;
  d.KVl = ld.n_kv_heads;
  d.Q = d.Hl * d.hd;
  d.KV = d.KVl * d.hd;
  d.F = ld.hidden;
  d.Vl = ld.vocab;
  d.layers = layout.layers().end - layout.layers().begin;
  d.first = layout.first_stage();
  d.last = layout.last_stage();
  d.head_rows = d.last ? head_chunk_rows(d.N, d.Vl) : 0;
  d.params = int64_t(layout.total());
  d.padded = int64_t(padded_params(layout.total(), g.dp));
  d.shard = g.zero1 && g.dp > 1 ? d.padded / g.dp : d.padded;
  bool head = false;
  for (const auto& p : layout.params()) {
    if (p.kind == ParamKind::lm_head) head = true;
    if (p.kind != ParamKind::embedding && p.kind != ParamKind::norm) d.gemm_params += int64_t(p.numel);
  }
  if (d.last && !head)  // the tied embedding is the LM head's weight on this stage
    for (const auto& p : layout.params())
      if (p.kind == ParamKind::embedding) d.gemm_params += int64_t(p.numel);
  return d;
}

StageSizes stage_sizes(Device device, const StageGeometry& g) {
  switch (device) {
    case Device::cpu: return cpu_stage_sizes(g);
    case Device::cuda: return cuda_stage_sizes(g);
  }
  fail("stage_sizes: unknown device");
}

}  // namespace lt
