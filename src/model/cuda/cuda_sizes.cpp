// The CUDA stage's buffers (model/cuda/cuda_stage.h), all in device memory: bf16 GEMM operands
// and attention inputs, fp32 residual stream, norm statistics, log-sum-exp, loss statistics,
// master weights, gradients and AdamW state. Plain arithmetic, built in every configuration
// (plan --device h100|h200 uses it on any machine).
#include "model/stage_sizes.h"

namespace lt {

// Workspaces the libraries get once per stage: cuBLASLt's (split-K and stream-K need scratch)
// and cuDNN's fused attention (its plans ask for at most a few MiB at these shapes).
constexpr int64_t kCublasWorkspaceBytes = int64_t(32) << 20;
constexpr int64_t kCudnnWorkspaceBytes = int64_t(64) << 20;

StageSizes cuda_stage_sizes(const StageGeometry& g) {
  const StageDims d = stage_dims(g);
  const StageOptions& o = g.options;
  const int64_t N = d.N, Nr = d.Nr, D = d.D, Q = d.Q, F = d.F, QKV = d.Q + 2 * d.KV;
  const int64_t slots = o.slots, records = int64_t(o.slots) * d.layers;
  StageSizes s;
  s.add("weights", MemKind::weights, d.padded);
  s.add("weights.bf16", MemKind::weights, d.gemm_params, 2);  // the GEMMs' compute copy
  s.add("grads", MemKind::gradients, d.padded);
  if (g.zero1 && g.dp > 1) s.add("grad_shard", MemKind::gradients, d.shard, 4, 1, "optimizer");
  s.add("adam.m", MemKind::optimizer, d.shard, 4, 1, "optimizer");
  s.add("adam.v", MemKind::optimizer, d.shard, 4, 1, "optimizer");

  s.add("tokens", MemKind::activations, N, 4, slots);
  s.add("targets", MemKind::activations, d.last ? N : 0, 4, slots);
  s.add("layer.x", MemKind::activations, Nr * D, 4, records);
  auto layer_record = [&](const std::string& prefix, MemKind kind, int64_t copies) {
    s.add(prefix + "ln1", kind, Nr * D, 2, copies);
    s.add(prefix + "rstd1", kind, Nr, 4, copies);
    s.add(prefix + "qkv", kind, N * QKV, 2, copies);  // q and k after RoPE
    s.add(prefix + "att", kind, N * Q, 2, copies);
    s.add(prefix + "lse", kind, N * d.Hl, 4, copies);
    s.add(prefix + "x_mid", kind, Nr * D, 4, copies);
    s.add(prefix + "ln2", kind, Nr * D, 2, copies);
    s.add(prefix + "rstd2", kind, Nr, 4, copies);
    s.add(prefix + "gate_up", kind, N * 2 * F, 2, copies);
    s.add(prefix + "h", kind, N * F, 2, copies);
  };
  add_layer_records(s, o, d, layer_record);
  s.add("x_final", MemKind::activations, Nr * D, 4, slots);
  s.add("lnf", MemKind::activations, Nr * D, 2, slots);
  s.add("rstdf", MemKind::activations, Nr, 4, slots);

  s.add("d_res", MemKind::workspace, Nr * D);
  s.add("d_res.bf16", MemKind::workspace, N * D, 2);  // the output gradient as a GEMM operand
  s.add("d_ln", MemKind::workspace, N * D);
  if (d.sp) {
    s.add("sp.rows", MemKind::workspace, N * D);
    s.add("sp.rows.bf16", MemKind::workspace, N * D, 2);
  }
  s.add("d_qkv", MemKind::workspace, N * QKV, 2);
  s.add("d_att", MemKind::workspace, N * Q, 2);
  s.add("d_h", MemKind::workspace, N * F);
  s.add("d_gate_up", MemKind::workspace, N * 2 * F, 2);
  s.add("head.logits", MemKind::workspace, d.head_rows * d.Vl);
  s.add("head.dlogits", MemKind::workspace, d.head_rows * d.Vl, 2);
  s.add("head.stats", MemKind::workspace, 4 * d.head_rows);
  s.add("loss", MemKind::workspace, d.last ? 2 : 0);  // one double
  s.add("rope.cos", MemKind::workspace, d.T * d.hd / 2);
  s.add("rope.sin", MemKind::workspace, d.T * d.hd / 2);
  s.add("cublaslt.workspace", MemKind::workspace, kCublasWorkspaceBytes, 1, 1, "cuBLASLt");
  if (d.layers > 0) s.add("cudnn.workspace", MemKind::workspace, kCudnnWorkspaceBytes, 1, 1, "cuDNN");
  return s;
}

}  // namespace lt
