// The CUDA stage's buffers (model/cuda/cuda_stage.h), all in device memory: fp32 master
// weights, gradients, AdamW state, residual stream, norm statistics, log-sum-exp and the MLP's
// gate|up pre-activations (the SwiGLU backward reads them in fp32, as the CPU stage does); bf16
// GEMM operands (normed activations, q|k|v after RoPE, the attention output, h, the gradients
// fed to GEMMs) and the compute copy of every matrix weight. Plain arithmetic, built in every
// configuration (plan --device h100|h200 uses it on any machine).
#include "model/stage_sizes.h"

namespace lt {

// Workspaces the libraries get once per stage: cuBLASLt's (split-K and stream-K need scratch)
// and cuDNN's fused attention (its plans ask for at most a few hundred MiB at these shapes;
// the attention object grows it once, before the first step).
constexpr int64_t kCublasWorkspaceBytes = int64_t(32) << 20;
constexpr int64_t kAttentionWorkspaceBytes = int64_t(256) << 20;

// Floats of the RMSNorm backward's per-chunk dw partials (kernels/cuda/norm.h's
// rmsnorm_backward_workspace_floats: one row of D per 256-row chunk).
int64_t cuda_norm_partials_floats(int64_t N, int64_t D) { return (N + 255) / 256 * D; }

StageSizes cuda_stage_sizes(const StageGeometry& g) {
  const StageDims d = stage_dims(g);
  const StageOptions& o = g.options;
  const int64_t N = d.N, Nr = d.Nr, D = d.D, Q = d.Q, F = d.F, QKV = d.Q + 2 * d.KV;
  const int64_t slots = o.slots, records = int64_t(o.slots) * d.layers;
  const bool train = !o.forward_only;
  StageSizes s;
  s.add("weights", MemKind::weights, d.padded);
  s.add("weights.bf16", MemKind::weights, d.gemm_params, 2);  // the GEMMs' compute copy
  if (train) {
    s.add("grads", MemKind::gradients, d.padded);
    if (g.zero1 && g.dp > 1) s.add("grad_shard", MemKind::gradients, d.shard, 4, 1, "optimizer");
    s.add("adam.m", MemKind::optimizer, d.shard, 4, 1, "optimizer");
    s.add("adam.v", MemKind::optimizer, d.shard, 4, 1, "optimizer");
  }

  s.add("tokens", MemKind::activations, d.first ? N : 0, 4, slots);
  s.add("targets", MemKind::activations, d.last ? N : 0, 4, slots);
  // The embedding backward's plan (kernels/cuda/embedding.h: rows | offsets | positions).
  s.add("embed.plan", MemKind::activations, d.first && train ? 3 * N + 1 : 0, 4, slots);
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
    s.add(prefix + "gate_up", kind, N * 2 * F, 4, copies);
    s.add(prefix + "h", kind, N * F, 2, copies);
  };
  add_layer_records(s, o, d, layer_record);
  s.add("x_final", MemKind::activations, Nr * D, 4, slots);
  s.add("lnf", MemKind::activations, Nr * D, 2, slots);
  s.add("rstdf", MemKind::activations, Nr, 4, slots);
  if (train && o.slot_grads) s.add("slot.d_out", MemKind::activations, Nr * D, 4, slots);

  if (d.layers > 0) s.add("qkv.f32", MemKind::workspace, N * QKV);  // the q|k|v GEMM's output, before RoPE
  if (train) {
    s.add("d_res", MemKind::workspace, Nr * D);
    s.add("d_res.bf16", MemKind::workspace, N * D, 2);  // the output gradient as a GEMM operand
    s.add("d_ln", MemKind::workspace, N * D);
    s.add("d_qkv", MemKind::workspace, N * QKV, 2);
    s.add("d_att", MemKind::workspace, N * Q, 2);
    s.add("d_h", MemKind::workspace, N * F);
    s.add("d_gate_up", MemKind::workspace, N * 2 * F, 2);
    s.add("norm.partials", MemKind::workspace, cuda_norm_partials_floats(std::max(N, Nr), D));
  }
  s.add("head.logits", MemKind::workspace, d.head_rows * d.Vl);  // the logits' gradient overwrites it as bf16
  s.add("head.stats", MemKind::workspace, 4 * d.head_rows);      // max, global max / lse, Σexp, target logit
  s.add("head.row_loss", MemKind::workspace, 2 * d.head_rows);   // one double per row
  s.add("loss", MemKind::workspace, d.last ? 2 : 0);             // one double
  s.add("rope.cos", MemKind::workspace, d.T * d.hd / 2);
  s.add("rope.sin", MemKind::workspace, d.T * d.hd / 2);
  s.add("cublaslt.workspace", MemKind::workspace, kCublasWorkspaceBytes, 1, 1, "cuBLASLt");
  if (d.layers > 0) s.add("attention.workspace", MemKind::workspace, kAttentionWorkspaceBytes, 1, 1, "cuDNN / flash");
  return s;
}

}  // namespace lt
