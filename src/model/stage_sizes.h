// The buffers of one pipeline stage on one rank, named, in one table per backend (llm.c's
// fill_in_activation_sizes): the backend allocates from it (model/buffer_carver.h checks that
// what a stage takes is exactly the table), `plan` sums it, and the trainer's memory report
// prints it. Nothing else restates a stage's buffer arithmetic.
#pragma once
#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/device.h"
#include "model/layout.h"

namespace lt {

// What a stage is built for (besides its ParamLayout).
struct StageOptions {
  int micro_batch = 1;
  int seq_len = 1;
  bool recompute = false;  // keep only each layer's input; recompute the rest in backward
  int slots = 1;           // micro-batches whose activations are kept at once (pipeline)
  Precision precision = Precision::fp32;
  // cpu fp32: weight GEMMs read packed copies of the weights (+8 B per GEMM weight parameter,
  // faster GEMMs); false reads the weights in place. bf16 always keeps compute copies.
  bool pack_weights = true;
  // Split the residual stream over the tp ranks (Megatron's sequence parallelism); no effect
  // when tp == 1. Needs micro_batch · seq_len divisible by tp.
  bool sequence_parallel = false;
  // Evaluation: no gradients, no optimizer state, no backward workspace.
  bool forward_only = false;
  // Document masking (Stage::set_inputs): each slot keeps its micro-batch's document starts.
  bool document_mask = false;
  // One output-gradient buffer per slot (Stage::slot_grad_message): interleaved pipelines.
  bool slot_grads = false;
};

// Everything a stage's buffer sizes depend on.
struct StageGeometry {
  LlamaConfig config;
  ShardSpec shard;      // tp, tp_rank, pp, pp_rank, stage_starts
  StageOptions options;
  int dp = 1;           // data-parallel ranks (optimizer padding and ZeRO-1 shard)
  bool zero1 = true;
  int threads = 1;      // cpu: per-thread kernel scratch is counted once per thread
};

enum class MemKind { weights, gradients, optimizer, activations, workspace };
const char* mem_kind_name(MemKind k);

struct StageBuffer {
  std::string name;      // "layer.q", "grads", "bf16.a", ...
  MemKind kind;
  int64_t count = 0;     // elements of one copy
  int elem_bytes = 4;    // 4: fp32 / int32, 2: bf16, 1: raw bytes
  int64_t copies = 1;    // e.g. slots x layers
  // Who allocates it: nullptr for the stage itself, which carves it from its region of `kind`;
  // else the owner ("optimizer", "oneDNN", "attention kernel"), counted here so that plan and
  // the report see it.
  const char* owner = nullptr;
  // One copy in bytes, rounded up to a 64-byte line (every buffer starts on a line).
  int64_t line_bytes() const { return (count * elem_bytes + 63) / 64 * 64; }
  double bytes() const { return double(line_bytes()) * double(copies); }
};

struct StageSizes {
  std::vector<StageBuffer> buffers;
  void add(std::string name, MemKind kind, int64_t count, int elem_bytes = 4, int64_t copies = 1,
           const char* owner = nullptr);
  double bytes(MemKind kind) const;
  // Bytes the stage carves from its own region of `kind` (what it allocates for it).
  double carved_bytes(MemKind kind) const;
  double total() const;
  const StageBuffer* find(const std::string& name) const;
  // One line per buffer and a line per kind, for logs and `plan --buffers`.
  std::string report() const;
};

// Derived dimensions every table uses.
struct StageDims {
  int64_t B, T, N, Nr;  // micro-batch, sequence, tokens per micro-batch, residual rows (N/tp with SP)
  int64_t D, hd, Q, KV, F, Hl, KVl, Vl;  // width, head dim, local q/kv widths, MLP width, heads, vocab
  int layers;
  bool first, last, sp;
  int64_t head_rows;     // rows per LM-head chunk (last stage)
  int64_t params;        // layout.total()
  int64_t padded;        // flat length of weights/grads (optimizer padding: a multiple of 16·dp)
  int64_t shard;         // optimizer range of this rank (padded / dp with ZeRO-1, else padded)
  int64_t gemm_params;   // parameters GEMMs read (every matrix; the tied embedding on the last stage)
};
StageDims stage_dims(const StageGeometry& g);

// Rows per LM-head chunk for N rows and a local vocabulary of V: 64 MiB of fp32 logits (~500
// rows at a 32k vocabulary). Larger chunks make the head's GEMMs more efficient (K = rows for
// its weight gradient) and read/write the head's gradient fewer times; smaller ones save memory.
inline int64_t head_chunk_rows(int64_t N, int64_t V) {
  constexpr int64_t kHeadChunkFloats = int64_t(16) << 20;
  return N < 1 ? 1 : std::max<int64_t>(1, std::min<int64_t>(N, kHeadChunkFloats / std::max<int64_t>(1, V)));
}

// The per-layer activation records of a table: `record(prefix, kind, copies)` adds one layer
// record's buffers. Without recomputation every layer of every slot keeps one ("layer.",
// activations, slots x layers); with it one shared record is recomputed into ("recompute.",
// workspace, once) plus its output ("recompute.out", residual rows x D fp32).
void add_layer_records(StageSizes& s, const StageOptions& o, const StageDims& d,
                       const std::function<void(const std::string&, MemKind, int64_t)>& record);

// Flat length of a shard's weight / gradient buffers: layout.total() rounded up to 16 · dp, so
// ZeRO-1 ranges are equal and start on 64-byte lines.
size_t padded_params(size_t total, int dp);

// The table of `device`'s stage (model/cpu/cpu_sizes.cpp, model/cuda/cuda_sizes.cpp; both are
// plain arithmetic and available in every build, so `plan` works for any device anywhere).
StageSizes stage_sizes(Device device, const StageGeometry& g);
StageSizes cpu_stage_sizes(const StageGeometry& g);
StageSizes cuda_stage_sizes(const StageGeometry& g);

}  // namespace lt
