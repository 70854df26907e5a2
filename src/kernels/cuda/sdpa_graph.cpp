#include "kernels/cuda/sdpa_graph.h"

#include <limits>

#include "core/error.h"

namespace lt::cuda::sdpa {

namespace {

using Dims = std::array<int64_t, 4>;

Dims packed(const Dims& d) { return {d[1] * d[2] * d[3], d[2] * d[3], d[3], 1}; }

// Builds a graph: tensors first, then the ops that connect them.
struct Builder {
  Graph g;
  int64_t next_uid = 100;

  int64_t tensor(int64_t uid, Dims dims, Dims strides, DType t, const char* name, bool is_virtual = false,
                 bool by_value = false) {
    g.tensors.push_back({uid, dims, strides, t, is_virtual, by_value, name});
    return uid;
  }
  int64_t virt(Dims dims, Dims strides, DType t, const char* name) {
    return tensor(next_uid++, dims, strides, t, name, true);
  }
  int64_t virt(Dims dims, DType t, const char* name) { return virt(dims, packed(dims), t, name); }
  int64_t scalar(int64_t uid, const char* name) {
    return tensor(uid, {1, 1, 1, 1}, {1, 1, 1, 1}, DType::f32, name, false, true);
  }
  void matmul(int64_t a, int64_t b, int64_t out, const char* name) {
    Op o;
    o.kind = OpKind::matmul, o.in = {a, b}, o.out = out, o.name = name;
    g.ops.push_back(o);
  }
  void pointwise(Pw mode, std::vector<int64_t> in, int64_t out, const char* name, DType compute = DType::f32,
                 int64_t axis = -1) {
    Op o;
    o.kind = OpKind::pointwise, o.pw = mode, o.in = std::move(in), o.out = out, o.compute = compute, o.axis = axis;
    o.name = name;
    g.ops.push_back(o);
  }
  void reduction(Red mode, int64_t x, int64_t out, const char* name, bool deterministic = false) {
    Op o;
    o.kind = OpKind::reduction, o.red = mode, o.in = {x}, o.out = out, o.deterministic = deterministic, o.name = name;
    g.ops.push_back(o);
  }
  void reshape(int64_t x, int64_t out, const char* name) {
    Op o;
    o.kind = OpKind::reshape, o.in = {x}, o.out = out, o.name = name;
    g.ops.push_back(o);
  }
  // S ← select(row ≥ col, S, lowest): the causal mask, from generated row and column indices.
  int64_t causal(int64_t s, const Dims& dims) {
    const int64_t row = virt(dims, DType::i32, "row_index");
    const int64_t col = virt(dims, DType::i32, "col_index");
    const int64_t keep = virt(dims, DType::boolean, "causal_keep");
    const int64_t out = virt(dims, DType::f32, "causal_scores");
    pointwise(Pw::gen_index, {s}, row, "gen_row_index", DType::i32, 2);
    pointwise(Pw::gen_index, {s}, col, "gen_col_index", DType::i32, 3);
    pointwise(Pw::cmp_ge, {row, col}, keep, "row_ge_col", DType::boolean);
    pointwise(Pw::binary_select, {s, kLowest, keep}, out, "causal_select");
    return out;
  }
};

// [b, heads, s, d] over rows of stride ld (model layout [B·T, heads·hd]).
Dims bshd(const AttnShape& s, int64_t ld) { return {int64_t(s.T) * ld, s.hd, ld, 1}; }
Dims transposed(Dims d) {
  std::swap(d[2], d[3]);
  return d;
}

struct Layout {
  int64_t ldq, ldk, ldv, ldo, lddo, lddq, lddk, lddv;
};
Layout resolve(const AttnShape& s, const AttnStrides& ld) {
  const int64_t qw = int64_t(s.H) * s.hd, kw = int64_t(s.KV) * s.hd;
  auto pick = [](int64_t x, int64_t d) { return x ? x : d; };
  return {pick(ld.q, qw), pick(ld.k, kw), pick(ld.v, kw), pick(ld.o, qw), pick(ld.dout, qw),
          pick(ld.dq, qw), pick(ld.dk, kw), pick(ld.dv, kw)};
}

void check(const AttnShape& s) {
  LT_CHECK(s.B > 0 && s.T > 0 && s.H > 0 && s.KV > 0 && s.hd > 0 && s.H % s.KV == 0,
           "cuDNN attention: bad shape B={} T={} H={} KV={} hd={}", s.B, s.T, s.H, s.KV, s.hd);
}

}  // namespace

const Tensor& Graph::tensor(int64_t uid) const {
  for (const Tensor& t : tensors)
    if (t.uid == uid) return t;
  fail("cuDNN attention graph: no tensor with uid {}", uid);
}

bool Graph::has(int64_t uid) const {
  for (const Tensor& t : tensors)
    if (t.uid == uid) return true;
  return false;
}

int64_t Graph::workspace_offset(int64_t uid) const {
  int64_t off = 0;
  for (int64_t u : {int64_t(kSoftmaxSum), int64_t(kDQAccum)}) {
    if (!has(u)) continue;
    if (u == uid) return off;
    const Tensor& t = tensor(u);
    const int64_t bytes = t.dims[0] * t.dims[1] * t.dims[2] * t.dims[3] * 4;
    off += (bytes + 255) / 256 * 256;
  }
  return uid < 0 ? off : -1;
}

int64_t Graph::workspace_bytes() const { return workspace_offset(-1); }

Graph forward_graph(const AttnShape& s, const AttnStrides& strides) {
  check(s);
  const Layout ld = resolve(s, strides);
  const int64_t b = s.B, h = s.H, kv = s.KV, t = s.T, d = s.hd;
  Builder g;
  g.tensor(kQ, {b, h, t, d}, bshd(s, ld.ldq), DType::bf16, "Q");
  g.tensor(kK, {b, kv, d, t}, transposed(bshd(s, ld.ldk)), DType::bf16, "K^T");
  g.tensor(kV, {b, kv, t, d}, bshd(s, ld.ldv), DType::bf16, "V");
  g.tensor(kO, {b, h, t, d}, bshd(s, ld.ldo), DType::bf16, "O");
  g.tensor(kStats, {b, h, t, 1}, {h * t, t, 1, 1}, DType::f32, "Stats");
  g.scalar(kScale, "scale");
  g.scalar(kLowest, "lowest");

  const Dims scores{b, h, t, t}, rows{b, h, t, 1};
  const int64_t qk = g.virt(scores, DType::f32, "QK^T");
  g.matmul(kQ, kK, qk, "bmm1");
  const int64_t scaled = g.virt(scores, DType::f32, "scaled_scores");
  g.pointwise(Pw::mul, {qk, kScale}, scaled, "attn_scale");
  const int64_t masked = g.causal(scaled, scores);
  const int64_t mx = g.virt(rows, DType::f32, "row_max");
  g.reduction(Red::max, masked, mx, "softmax_max");
  const int64_t shifted = g.virt(scores, DType::f32, "shifted");
  g.pointwise(Pw::sub, {masked, mx}, shifted, "softmax_sub");
  const int64_t e = g.virt(scores, DType::f32, "exp");
  g.pointwise(Pw::exp, {shifted}, e, "softmax_exp");
  const int64_t z = g.virt(rows, DType::f32, "row_sum");
  g.reduction(Red::add, e, z, "softmax_sum");
  const int64_t logz = g.virt(rows, DType::f32, "log_sum");
  g.pointwise(Pw::log, {z}, logz, "softmax_log");
  g.pointwise(Pw::add, {mx, logz}, kStats, "softmax_stats");
  const int64_t p = g.virt(scores, DType::bf16, "P");
  g.pointwise(Pw::div, {e, z}, p, "softmax_div");
  g.matmul(p, kV, kO, "bmm2");
  return g.g;
}

Graph backward_graph(const AttnShape& s, const AttnStrides& strides, bool deterministic) {
  check(s);
  const Layout ld = resolve(s, strides);
  const int64_t b = s.B, h = s.H, kv = s.KV, t = s.T, d = s.hd;
  const bool gqa = h != kv;
  Builder g;
  g.tensor(kQ, {b, h, t, d}, bshd(s, ld.ldq), DType::bf16, "Q");
  g.tensor(kK, {b, kv, d, t}, transposed(bshd(s, ld.ldk)), DType::bf16, "K^T");
  g.tensor(kV, {b, kv, d, t}, transposed(bshd(s, ld.ldv)), DType::bf16, "V^T");
  g.tensor(kO, {b, h, t, d}, bshd(s, ld.ldo), DType::bf16, "O");
  g.tensor(kDO, {b, h, t, d}, bshd(s, ld.lddo), DType::bf16, "dO");
  g.tensor(kStats, {b, h, t, 1}, {h * t, t, 1, 1}, DType::f32, "Stats");
  g.tensor(kDQ, {b, h, t, d}, bshd(s, ld.lddq), DType::bf16, "dQ");
  g.tensor(kDK, {b, kv, t, d}, bshd(s, ld.lddk), DType::bf16, "dK");
  g.tensor(kDV, {b, kv, t, d}, bshd(s, ld.lddv), DType::bf16, "dV");
  g.scalar(kScale, "scale");
  g.scalar(kLowest, "lowest");
  g.scalar(kOne, "one");

  const Dims scores{b, h, t, t}, rows{b, h, t, 1}, per_head{b, h, t, d};
  // Dsum = Σ_row dO∘O, kept in fp32 workspace.
  const int64_t doo = g.virt(per_head, {h * t * d, t * d, h * d, 1}, DType::f32, "dO*O");
  g.pointwise(Pw::mul, {kDO, kO}, doo, "mul_dO_O");
  const int64_t dsum_r = g.virt(rows, DType::f32, "sum_dO_O");
  g.reduction(Red::add, doo, dsum_r, "reduce_dO_O");
  g.tensor(kSoftmaxSum, rows, packed(rows), DType::f32, "softmax_sum");
  g.pointwise(Pw::mul, {dsum_r, kOne}, kSoftmaxSum, "softmax_sum");

  // P = exp(Q·Kᵀ·scale − Stats), causal.
  const int64_t qk = g.virt(scores, DType::f32, "QK^T");
  g.matmul(kQ, kK, qk, "matmul_Q_KT");
  const int64_t scaled = g.virt(scores, DType::f32, "scaled_scores");
  g.pointwise(Pw::mul, {qk, kScale}, scaled, "attn_scale");
  const int64_t centred = g.virt(scores, DType::f32, "scores_minus_stats");
  g.pointwise(Pw::sub, {scaled, kStats}, centred, "sub_stats");
  const int64_t masked = g.causal(centred, scores);
  const int64_t p = g.virt(scores, DType::f32, "P");
  g.pointwise(Pw::exp, {masked}, p, "exp_scores");

  // dV = Pᵀ·dO (per query head under GQA, then summed over the group).
  const Dims scores_t{h * t * t, t * t, 1, t};
  const int64_t pt = g.virt(scores, scores_t, DType::bf16, "P^T");
  g.reshape(p, pt, "transpose_P");
  // x·y into a KV-head gradient: directly when every query head has its own KV head, else per
  // query head and then summed over each KV head's group (a deterministic reduction when asked).
  auto kv_grad = [&](int64_t x, int64_t y, int64_t out, const char* matmul, const char* reduce) {
    if (!gqa) return g.matmul(x, y, out, matmul);
    const int64_t full = g.virt({b, h, t, d}, DType::bf16, "per_query_head");
    g.matmul(x, y, full, matmul);
    g.reduction(Red::add, full, out, reduce, deterministic);
  };
  kv_grad(pt, kDO, kDV, "matmul_PT_dO", "reduce_dV_heads");

  // dS = (dO·Vᵀ − Dsum) ∘ P · scale
  const int64_t dp = g.virt(scores, DType::f32, "dP");
  g.matmul(kDO, kV, dp, "matmul_dO_VT");
  const int64_t dp_c = g.virt(scores, DType::f32, "dP_minus_sum");
  g.pointwise(Pw::sub, {dp, kSoftmaxSum}, dp_c, "sub_softmax_sum");
  const int64_t dsp = g.virt(scores, DType::f32, "dP*P");
  g.pointwise(Pw::mul, {dp_c, p}, dsp, "mul_dP_P");
  const int64_t ds = g.virt(scores, DType::f32, "dS");
  g.pointwise(Pw::mul, {dsp, kScale}, ds, "mul_dS_scale");

  // dK = dSᵀ·Q
  const int64_t dst = g.virt(scores, scores_t, DType::bf16, "dS^T");
  g.reshape(ds, dst, "transpose_dS");
  kv_grad(dst, kQ, kDK, "matmul_dST_Q", "reduce_dK_heads");

  // dQ = dS·K: K is Kᵀ's memory read the other way round.
  const Dims kt = g.g.tensor(kK).strides;
  const int64_t k = g.virt({b, kv, t, d}, {kt[0], kt[1], kt[3], kt[2]}, DType::bf16, "K");
  g.reshape(kK, k, "transpose_K");
  if (deterministic) {
    g.matmul(ds, k, kDQ, "matmul_dS_K");
  } else {
    g.tensor(kDQAccum, per_head, packed(per_head), DType::f32, "dQ_accum");
    g.matmul(ds, k, kDQAccum, "matmul_dS_K");
    g.pointwise(Pw::identity, {kDQAccum}, kDQ, "identity_dQ");
  }
  return g.g;
}

}  // namespace lt::cuda::sdpa
