// The CPU stage's buffers (model/cpu/cpu_stage.h): fp32 activations whatever the precision,
// bf16 conversion buffers in bf16 mode, oneDNN's packed weight copies, and the attention
// backward's per-thread scratch.
#include "kernels/cpu/attention.h"
#include "model/cpu/cpu_stage.h"
#include "model/stage_sizes.h"

namespace lt {

StageSizes cpu_stage_sizes(const StageGeometry& g) {
  const StageDims d = stage_dims(g);
  const StageOptions& o = g.options;
  const bool bf16 = o.precision == Precision::bf16;
  const int64_t N = d.N, Nr = d.Nr, D = d.D, Q = d.Q, KV = d.KV, F = d.F;
  const int64_t slots = o.slots, records = int64_t(o.slots) * d.layers;
  StageSizes s;
  s.add("weights", MemKind::weights, d.padded);
  // Packed GEMM copies, forward and input-gradient orientation (oneDNN sizes them; at least this).
  if (bf16 || o.pack_weights) s.add("packed_weights", MemKind::weights, 2 * d.gemm_params, bf16 ? 2 : 4, 1, "oneDNN");
  const bool train = !o.forward_only;
  if (train) {
    s.add("grads", MemKind::gradients, d.padded);
    // ZeRO-1: the reduce-scattered gradient range; AdamW's m and v of the range (fp32
    // training: the master weights are the weights themselves).
    if (g.zero1 && g.dp > 1) s.add("grad_shard", MemKind::gradients, d.shard, 4, 1, "optimizer");
    s.add("adam.m", MemKind::optimizer, d.shard, 4, 1, "optimizer");
    s.add("adam.v", MemKind::optimizer, d.shard, 4, 1, "optimizer");
  }

  // Activations, one record per micro-batch in flight: the tokens, each layer's record (with
  // recomputation only its input), the final residual, norm and rstd.
  s.add("tokens", MemKind::activations, N, 4, slots);
  if (o.document_mask) s.add("doc_start", MemKind::activations, N, 4, slots);
  s.add("layer.x", MemKind::activations, Nr * D, 4, records);
  auto layer_record = [&](const std::string& prefix, MemKind kind, int64_t copies) {
    s.add(prefix + "ln1", kind, Nr * D, 4, copies);
    s.add(prefix + "rstd1", kind, Nr, 4, copies);
    s.add(prefix + "q", kind, N * Q, 4, copies);
    s.add(prefix + "k", kind, N * KV, 4, copies);
    s.add(prefix + "v", kind, N * KV, 4, copies);
    s.add(prefix + "att", kind, N * Q, 4, copies);
    s.add(prefix + "lse", kind, N * d.Hl, 4, copies);
    s.add(prefix + "x_mid", kind, Nr * D, 4, copies);
    s.add(prefix + "ln2", kind, Nr * D, 4, copies);
    s.add(prefix + "rstd2", kind, Nr, 4, copies);
    s.add(prefix + "gate", kind, N * F, 4, copies);
    s.add(prefix + "up", kind, N * F, 4, copies);
    s.add(prefix + "h", kind, N * F, 4, copies);
  };
  add_layer_records(s, o, d, layer_record);
  s.add("x_final", MemKind::activations, Nr * D, 4, slots);
  s.add("lnf", MemKind::activations, Nr * D, 4, slots);
  s.add("rstdf", MemKind::activations, Nr, 4, slots);
  if (train && o.slot_grads) s.add("slot.d_out", MemKind::activations, Nr * D, 4, slots);

  // Workspace: one layer's backward, the gathered rows of sequence parallelism, one LM-head
  // chunk with its cross-entropy statistics, the RoPE tables.
  if (d.sp) s.add("sp.rows", MemKind::workspace, N * D);
  if (train) {
    s.add("d_res", MemKind::workspace, Nr * D);
    s.add("d_ln", MemKind::workspace, N * D);
    s.add("d_q", MemKind::workspace, N * Q);
    s.add("d_att", MemKind::workspace, N * Q);
    s.add("d_k", MemKind::workspace, N * KV);
    s.add("d_v", MemKind::workspace, N * KV);
    s.add("d_gate", MemKind::workspace, N * F);
    s.add("d_up", MemKind::workspace, N * F);
    s.add("d_h", MemKind::workspace, N * F);
  }
  s.add("head.logits", MemKind::workspace, d.head_rows * d.Vl);
  s.add("head.max", MemKind::workspace, d.head_rows);
  s.add("head.lse", MemKind::workspace, d.head_rows);
  s.add("head.stats", MemKind::workspace, 2 * d.head_rows);
  s.add("rope.cos", MemKind::workspace, d.T * d.hd / 2);
  s.add("rope.sin", MemKind::workspace, d.T * d.hd / 2);
  if (bf16) {
    const Bf16Buffers b = bf16_buffers(N, D, Q, KV, F, d.head_rows, d.Vl);
    s.add("bf16.a", MemKind::workspace, b.a, 2);
    s.add("bf16.b", MemKind::workspace, b.b, 2);
    s.add("bf16.shared", MemKind::workspace, b.shared, 2);
    s.add("bf16.dyt", MemKind::workspace, b.dyt, 2);
  }
  if (train && d.layers > 0)  // each thread's attention-backward buffers, kept by the kernel
    s.add("attention.scratch", MemKind::workspace,
          int64_t(cpu::attention_backward_scratch_bytes({int(d.B), int(d.T), int(d.Hl), int(d.KVl), int(d.hd)}, bf16)),
          1, g.threads, "attention kernel");
  return s;
}

}  // namespace lt
