// The cuDNN graphs of causal GQA attention ("fused flash attention"), described as plain data
// before any cuDNN call: tensors (uid, dims, strides, type, virtual or not) and operations in
// order. sdpa.cpp turns a description into cuDNN backend descriptors; tests check the
// descriptions on any machine. The graphs are the ones cuDNN's runtime fusion engines recognise
// as scaled dot-product attention (the composite graphs the cuDNN frontend builds for 9.x):
//
// forward   S = Q·Kᵀ · scale; S = select(row ≥ col, S, lowest); M = max_row S; E = exp(S − M);
//           Z = Σ_row E; Stats = M + log Z; P = E / Z (bf16); O = P·V
// backward  Dsum = Σ_row dO∘O (fp32 workspace); S = Q·Kᵀ·scale − Stats; causal select;
//           P = exp S; dV = Pᵀ·dO; dS = (dO·Vᵀ − Dsum) ∘ P · scale; dK = dSᵀ·Q; dQ = dS·K
//           (GQA: dK, dV per query head, then summed over each KV head's group)
//
// Layouts follow the model's [B·T, heads·hd] rows: a logical [b, h, s, d] tensor with strides
// {T·ld, hd, ld, 1}; Kᵀ and Vᵀ are the same memory with the last two dims and strides swapped.
// Stats is [b, h, s, 1] with strides {h·s, s, 1, 1}: exactly the lse layout [B, H, T].
//
// Determinism: the deterministic backward lets dQ = dS·K be its own matmul (cuDNN then keeps
// dS in workspace and needs no atomics); the other form accumulates dQ in an fp32 workspace
// tensor dQ_accum, which cuDNN fills with atomic adds. The GQA head-group sums are reductions
// flagged deterministic.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/cuda/attention.h"

namespace lt::cuda::sdpa {

enum class DType { f32, bf16, i32, boolean };
enum class OpKind { matmul, pointwise, reduction, reshape };
enum class Pw { mul, sub, add, div, exp, log, gen_index, cmp_ge, binary_select, identity };
enum class Red { max, add };

// The tensors a caller binds at execution (fixed uids); virtual tensors get uids from 100 on.
enum Uid : int64_t {
  kQ = 1, kK = 2, kV = 3, kO = 4, kStats = 5, kDO = 6, kDQ = 7, kDK = 8, kDV = 9,
  kScale = 20, kLowest = 21, kOne = 22,   // by-value scalars (host floats)
  kSoftmaxSum = 30, kDQAccum = 31,        // fp32 workspace tensors (backward)
};

struct Tensor {
  int64_t uid = 0;
  std::array<int64_t, 4> dims{}, strides{};
  DType dtype = DType::f32;
  bool is_virtual = false, by_value = false;
  std::string name;
};

struct Op {
  OpKind kind = OpKind::pointwise;
  Pw pw = Pw::identity;  // pointwise mode
  Red red = Red::add;    // reduction mode
  std::vector<int64_t> in;  // pointwise: x, b, t; matmul: a, b; reduction/reshape: x
  int64_t out = 0;
  int64_t axis = -1;           // gen_index
  DType compute = DType::f32;  // pointwise math precision
  bool deterministic = false;  // reduction
  std::string name;
};

struct Graph {
  std::vector<Tensor> tensors;
  std::vector<Op> ops;
  const Tensor& tensor(int64_t uid) const;  // throws if absent
  bool has(int64_t uid) const;
  // Bytes of the fp32 workspace tensors (softmax_sum, dQ_accum) the caller must provide,
  // in uid order, each 256-byte aligned.
  int64_t workspace_bytes() const;
  int64_t workspace_offset(int64_t uid) const;  // -1 when the tensor is not in the workspace
};

Graph forward_graph(const AttnShape& s, const AttnStrides& ld);
Graph backward_graph(const AttnShape& s, const AttnStrides& ld, bool deterministic);

}  // namespace lt::cuda::sdpa
