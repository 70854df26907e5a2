// Causal GQA attention on the GPU — our flash kernels and cuDNN's fused SDPA — against the
// CPU's double-precision reference (kernels/cpu/attention.h: attention_forward_ref /
// attention_backward_ref) on the same bf16-rounded q, k, v, dO; plus, on any machine, the cuDNN
// graph descriptions and the backend choice.
//
// Tolerances (relative to the largest reference value): the GPU rounds P to bf16 before P·V
// (2^-9 relative per element) and, in the backward, P and dS before their products, with fp32
// accumulation everywhere, as the CPU's bf16 kernels do: 1e-2 for the output, 3e-2 for dq, dk,
// dv (fp32 outputs) and 4e-2 for the bf16 outputs (one more rounding). lse comes from fp32
// scores of exact bf16 products: 1e-3 absolute. Determinism: two runs, the same bits.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <set>

#include "cuda_test_util.h"
#include "kernels/cpu/attention.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/sdpa.h"
#include "kernels/cuda/sdpa_graph.h"

namespace lt {
namespace {

using cuda::AttnShape;
using cuda::DeviceBuffer;
using cuda::download;
using cuda::upload;

// Rows not a multiple of the 64-row tile, head sizes 64 and 128 (and a padded 48), GQA groups
// 1, 4 and 8, a single token.
const std::vector<AttnShape> kShapes = {
    {2, 100, 4, 4, 64}, {1, 130, 8, 1, 128}, {1, 257, 16, 2, 128}, {2, 70, 8, 2, 48}, {2, 1, 2, 2, 16}, {1, 64, 4, 1, 32},
};

std::string name(const AttnShape& s) {
  return "B=" + std::to_string(s.B) + " T=" + std::to_string(s.T) + " H=" + std::to_string(s.H) +
         " KV=" + std::to_string(s.KV) + " hd=" + std::to_string(s.hd);
}

struct Case {
  AttnShape s;
  std::vector<float> q, k, v, dout;  // bf16-rounded
  std::vector<float> out, lse, dq, dk, dv;  // reference
};

Case make_case(const AttnShape& s, uint64_t seed) {
  Case c;
  c.s = s;
  const size_t N = size_t(s.B) * s.T, qn = N * s.H * s.hd, kn = N * s.KV * s.hd;
  c.q = test::bf16_normal(qn, seed), c.k = test::bf16_normal(kn, seed + 1), c.v = test::bf16_normal(kn, seed + 2);
  c.dout = test::bf16_normal(qn, seed + 3);
  c.out.resize(qn), c.lse.resize(size_t(s.B) * s.H * s.T), c.dq.resize(qn), c.dk.resize(kn), c.dv.resize(kn);
  cpu::attention_forward_ref(c.q.data(), c.k.data(), c.v.data(), c.out.data(), c.lse.data(), s);
  cpu::attention_backward_ref(c.q.data(), c.k.data(), c.v.data(), c.dout.data(), c.dq.data(), c.dk.data(),
                              c.dv.data(), s);
  return c;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(double(a[i]) - double(b[i])));
  return m;
}

struct Device {
  DeviceBuffer q, k, v, dout, out16, out32, lse, dq, dk, dv, dq16, dk16, dv16, ws;
  explicit Device(const Case& c)
      : q(upload(test::to_bits(c.q))), k(upload(test::to_bits(c.k))), v(upload(test::to_bits(c.v))),
        dout(upload(test::to_bits(c.dout))), out16(c.out.size() * 2), out32(c.out.size() * 4),
        lse(c.lse.size() * 4), dq(c.dq.size() * 4), dk(c.dk.size() * 4), dv(c.dv.size() * 4),
        dq16(c.dq.size() * 2), dk16(c.dk.size() * 2), dv16(c.dv.size() * 2),
        ws(cuda::flash_attention_backward_workspace_bytes(c.s)) {}
};

TEST(CudaFlashAttention, ForwardAndBackwardMatchCpuReference) {
  LT_REQUIRE_GPU();
  uint64_t seed = 100;
  for (const AttnShape& s : kShapes) {
    const Case c = make_case(s, seed += 10);
    Device d(c);
    cuda::flash_attention_forward(d.q.as<bf16>(), d.k.as<bf16>(), d.v.as<bf16>(), d.out16.as<bf16>(),
                                  d.out32.as<float>(), d.lse.as<float>(), s, nullptr);
    const auto out = download(d.out32.as<float>(), c.out.size());
    EXPECT_LT(test::rel_err(out, c.out), 1e-2) << name(s);
    EXPECT_LT(test::rel_err(test::from_bits(download(d.out16.as<bf16>(), c.out.size())), c.out), 1.5e-2) << name(s);
    EXPECT_LT(max_abs_diff(download(d.lse.as<float>(), c.lse.size()), c.lse), 1e-3) << name(s);

    std::vector<float> first[3];
    for (int run = 0; run < 2; ++run) {
      cuda::flash_attention_backward(d.q.as<bf16>(), d.k.as<bf16>(), d.v.as<bf16>(), d.out16.as<bf16>(), nullptr,
                                     d.dout.as<bf16>(), d.lse.as<float>(), d.dq.as<float>(), d.dk.as<float>(),
                                     d.dv.as<float>(), d.dq16.as<bf16>(), d.dk16.as<bf16>(), d.dv16.as<bf16>(),
                                     d.ws.data(), s, nullptr);
      const std::vector<float> got[3] = {download(d.dq.as<float>(), c.dq.size()),
                                         download(d.dk.as<float>(), c.dk.size()),
                                         download(d.dv.as<float>(), c.dv.size())};
      if (run == 0) {
        EXPECT_LT(test::rel_err(got[0], c.dq), 3e-2) << "dq " << name(s);
        EXPECT_LT(test::rel_err(got[1], c.dk), 3e-2) << "dk " << name(s);
        EXPECT_LT(test::rel_err(got[2], c.dv), 3e-2) << "dv " << name(s);
        EXPECT_LT(test::rel_err(test::from_bits(download(d.dq16.as<bf16>(), c.dq.size())), c.dq), 4e-2) << name(s);
        EXPECT_LT(test::rel_err(test::from_bits(download(d.dk16.as<bf16>(), c.dk.size())), c.dk), 4e-2) << name(s);
        EXPECT_LT(test::rel_err(test::from_bits(download(d.dv16.as<bf16>(), c.dv.size())), c.dv), 4e-2) << name(s);
        for (int i = 0; i < 3; ++i) first[i] = got[i];
      } else {
        for (int i = 0; i < 3; ++i) EXPECT_TRUE(test::bitwise_equal(got[i], first[i])) << "run 2 differs " << name(s);
      }
    }
  }
}

TEST(CudaFlashAttention, ReadsAndWritesSlicesOfFusedBuffers) {
  LT_REQUIRE_GPU();
  const AttnShape s{2, 90, 8, 2, 64};
  const Case c = make_case(s, 7);
  Device d(c);
  const int64_t N = int64_t(s.B) * s.T, qw = int64_t(s.H) * s.hd, kw = int64_t(s.KV) * s.hd, ld = qw + 2 * kw;
  // q | k | v side by side in one [N, ld] buffer, as the fused projection leaves them.
  std::vector<bf16> fused(static_cast<size_t>(N * ld));
  const auto qb = test::to_bits(c.q), kb = test::to_bits(c.k), vb = test::to_bits(c.v);
  for (int64_t n = 0; n < N; ++n) {
    std::copy_n(qb.begin() + n * qw, qw, fused.begin() + n * ld);
    std::copy_n(kb.begin() + n * kw, kw, fused.begin() + n * ld + qw);
    std::copy_n(vb.begin() + n * kw, kw, fused.begin() + n * ld + qw + kw);
  }
  DeviceBuffer f = upload(fused), grads(size_t(N * ld) * 4), out(c.out.size() * 2), lse(c.lse.size() * 4);
  const bf16* base = f.as<bf16>();
  cuda::AttnStrides st;
  st.q = st.k = st.v = st.dq = st.dk = st.dv = ld;
  cuda::flash_attention_forward(base, base + qw, base + qw + kw, out.as<bf16>(), nullptr, lse.as<float>(), s, nullptr,
                                st);
  cuda::flash_attention_forward(d.q.as<bf16>(), d.k.as<bf16>(), d.v.as<bf16>(), d.out16.as<bf16>(), nullptr,
                                d.lse.as<float>(), s, nullptr);
  EXPECT_EQ(download(out.as<bf16>(), c.out.size()), download(d.out16.as<bf16>(), c.out.size()));
  float* g = grads.as<float>();
  cuda::flash_attention_backward(base, base + qw, base + qw + kw, out.as<bf16>(), nullptr, d.dout.as<bf16>(),
                                 lse.as<float>(), g, g + qw, g + qw + kw, nullptr, nullptr, nullptr, d.ws.data(), s,
                                 nullptr, st);
  cuda::flash_attention_backward(d.q.as<bf16>(), d.k.as<bf16>(), d.v.as<bf16>(), d.out16.as<bf16>(), nullptr,
                                 d.dout.as<bf16>(), d.lse.as<float>(), d.dq.as<float>(), d.dk.as<float>(),
                                 d.dv.as<float>(), nullptr, nullptr, nullptr, d.ws.data(), s, nullptr);
  const auto all = download(g, size_t(N * ld));
  const auto dq = download(d.dq.as<float>(), c.dq.size()), dk = download(d.dk.as<float>(), c.dk.size());
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t i = 0; i < qw; ++i) ASSERT_EQ(all[size_t(n * ld + i)], dq[size_t(n * qw + i)]);
    for (int64_t i = 0; i < kw; ++i) ASSERT_EQ(all[size_t(n * ld + qw + i)], dk[size_t(n * kw + i)]);
  }
}

TEST(CudaFlashAttention, RejectsShapesItCannotRun) {
  std::string why;
  EXPECT_FALSE(cuda::flash_attention_supported({1, 8, 2, 2, 24}, {}, &why));
  EXPECT_NE(why.find("multiple of 16"), std::string::npos);
  EXPECT_FALSE(cuda::flash_attention_supported({1, 8, 6, 4, 64}, {}, &why));
  EXPECT_FALSE(cuda::flash_attention_supported({1, 8, 2, 2, 256}, {}, &why));
  cuda::AttnStrides odd;
  odd.q = 130;  // 260 bytes: rows not 16-byte aligned
  EXPECT_FALSE(cuda::flash_attention_supported({1, 8, 2, 1, 64}, odd, &why));
  EXPECT_TRUE(cuda::flash_attention_supported({4, 1000, 32, 8, 128}, {}, &why));
}

TEST(CudaSdpaGraph, ForwardDescribesCausalSoftmaxOverModelLayout) {
  const AttnShape s{2, 100, 8, 2, 64};
  const cuda::sdpa::Graph g = cuda::sdpa::forward_graph(s, {});
  const auto& q = g.tensor(cuda::sdpa::kQ);
  EXPECT_EQ(q.dims, (std::array<int64_t, 4>{2, 8, 100, 64}));
  EXPECT_EQ(q.strides, (std::array<int64_t, 4>{100 * 512, 64, 512, 1}));  // rows of H·hd = 512
  const auto& kt = g.tensor(cuda::sdpa::kK);
  EXPECT_EQ(kt.dims, (std::array<int64_t, 4>{2, 2, 64, 100}));
  EXPECT_EQ(kt.strides, (std::array<int64_t, 4>{100 * 128, 64, 1, 128}));  // Kᵀ: the last two swapped
  const auto& stats = g.tensor(cuda::sdpa::kStats);
  EXPECT_EQ(stats.strides, (std::array<int64_t, 4>{800, 100, 1, 1}));  // = lse [B, H, T]
  EXPECT_TRUE(g.tensor(cuda::sdpa::kScale).by_value);
  int gen_index = 0, selects = 0, matmuls = 0;
  for (const auto& op : g.ops) {
    gen_index += op.kind == cuda::sdpa::OpKind::pointwise && op.pw == cuda::sdpa::Pw::gen_index;
    selects += op.kind == cuda::sdpa::OpKind::pointwise && op.pw == cuda::sdpa::Pw::binary_select;
    matmuls += op.kind == cuda::sdpa::OpKind::matmul;
  }
  EXPECT_EQ(gen_index, 2);
  EXPECT_EQ(selects, 1);
  EXPECT_EQ(matmuls, 2);
  EXPECT_EQ(g.ops.back().out, cuda::sdpa::kO);
  EXPECT_EQ(g.workspace_bytes(), 0);
  // Every op's inputs exist before it runs (tensors are declared, outputs produced in order).
  std::set<int64_t> ready;
  for (const auto& t : g.tensors)
    if (!t.is_virtual) ready.insert(t.uid);
  for (const auto& op : g.ops) {
    for (int64_t in : op.in) EXPECT_TRUE(ready.count(in)) << op.name << " reads uid " << in << " before it exists";
    ready.insert(op.out);
  }
}

TEST(CudaSdpaGraph, DeterministicBackwardWritesDqWithoutAnAccumulator) {
  const AttnShape gqa{1, 70, 8, 2, 128}, mha{1, 70, 4, 4, 128};
  const auto det = cuda::sdpa::backward_graph(gqa, {}, true);
  EXPECT_FALSE(det.has(cuda::sdpa::kDQAccum));
  EXPECT_TRUE(det.has(cuda::sdpa::kSoftmaxSum));
  EXPECT_EQ(det.workspace_bytes(), (int64_t(8 * 70 * 4) + 255) / 256 * 256);
  int reductions = 0;
  for (const auto& op : det.ops) {
    if (op.kind == cuda::sdpa::OpKind::reduction && (op.out == cuda::sdpa::kDK || op.out == cuda::sdpa::kDV)) {
      ++reductions;
      EXPECT_TRUE(op.deterministic) << op.name;
    }
    if (op.kind == cuda::sdpa::OpKind::matmul && op.out == cuda::sdpa::kDQ) {
      EXPECT_EQ(op.name, "matmul_dS_K");
    }
  }
  EXPECT_EQ(reductions, 2);  // GQA: dK and dV summed over each KV head's 4 query heads
  const auto nondet = cuda::sdpa::backward_graph(gqa, {}, false);
  EXPECT_TRUE(nondet.has(cuda::sdpa::kDQAccum));
  EXPECT_EQ(nondet.ops.back().pw, cuda::sdpa::Pw::identity);
  EXPECT_GT(nondet.workspace_offset(cuda::sdpa::kDQAccum), 0);
  for (const auto& op : cuda::sdpa::backward_graph(mha, {}, true).ops) {
    EXPECT_NE(op.kind == cuda::sdpa::OpKind::reduction ? op.out : 0, cuda::sdpa::kDK) << "MHA needs no head sum";
  }
}

TEST(CudaAttentionChoice, CudnnWhenItTakesTheShapeElseOurKernels) {
  EXPECT_EQ(cuda::choose_attention(true, true, "engine 3", true, "").backend, cuda::AttnBackend::cudnn);
  const auto fb = cuda::choose_attention(true, false, "no engine config found", true, "");
  EXPECT_EQ(fb.backend, cuda::AttnBackend::flash);
  EXPECT_NE(fb.reason.find("no engine config found"), std::string::npos);
  EXPECT_EQ(cuda::choose_attention(false, false, "LT_ATTENTION=flash", true, "").backend, cuda::AttnBackend::flash);
  EXPECT_THROW(cuda::choose_attention(true, false, "refused", false, "head size 200"), Error);
}

TEST(CudaCudnnAttention, MatchesCpuReferenceWhereCudnnTakesTheShape) {
  LT_REQUIRE_GPU();
  cuda::CudnnAttention sdpa;
  int taken = 0;
  std::string refusals;
  uint64_t seed = 500;
  // The first four shapes: each new shape may make cuDNN compile engines at run time.
  const std::vector<AttnShape> shapes(kShapes.begin(), kShapes.begin() + 4);
  for (const AttnShape& s : shapes) {
    std::string why;
    if (!sdpa.prepare(s, {}, true, &why)) {
      refusals += name(s) + ": " + why + "\n";
      continue;
    }
    ++taken;
    const Case c = make_case(s, seed += 10);
    Device d(c);
    cuda::Stream stream;
    sdpa.forward(d.q.as<bf16>(), d.k.as<bf16>(), d.v.as<bf16>(), d.out16.as<bf16>(), d.lse.as<float>(), s, {},
                 stream.get());
    std::vector<bf16> first[3];
    for (int run = 0; run < 2; ++run) {
      sdpa.backward(d.q.as<bf16>(), d.k.as<bf16>(), d.v.as<bf16>(), d.out16.as<bf16>(), d.dout.as<bf16>(),
                    d.lse.as<float>(), d.dq16.as<bf16>(), d.dk16.as<bf16>(), d.dv16.as<bf16>(), s, {}, stream.get());
      stream.synchronize();
      const std::vector<bf16> got[3] = {download(d.dq16.as<bf16>(), c.dq.size()),
                                        download(d.dk16.as<bf16>(), c.dk.size()),
                                        download(d.dv16.as<bf16>(), c.dv.size())};
      if (run == 0) {
        EXPECT_LT(test::rel_err(test::from_bits(download(d.out16.as<bf16>(), c.out.size())), c.out), 1.5e-2) << name(s);
        EXPECT_LT(max_abs_diff(download(d.lse.as<float>(), c.lse.size()), c.lse), 1e-3) << name(s);
        EXPECT_LT(test::rel_err(test::from_bits(got[0]), c.dq), 4e-2) << "dq " << name(s);
        EXPECT_LT(test::rel_err(test::from_bits(got[1]), c.dk), 4e-2) << "dk " << name(s);
        EXPECT_LT(test::rel_err(test::from_bits(got[2]), c.dv), 4e-2) << "dv " << name(s);
        for (int i = 0; i < 3; ++i) first[i] = got[i];
      } else {
        for (int i = 0; i < 3; ++i) EXPECT_EQ(got[i], first[i]) << "deterministic backward differs " << name(s);
      }
    }
  }
  std::printf("cuDNN took %d of %zu shapes\n%s", taken, shapes.size(), refusals.c_str());
  if (taken == 0) GTEST_SKIP() << "cuDNN took none of the shapes:\n" << refusals;
}

TEST(CudaAttention, FallsBackToFlashKernelsWhenCudnnIsOff) {
  LT_REQUIRE_GPU();
  const AttnShape s{1, 100, 4, 2, 64};
  const Case c = make_case(s, 900);
  Device d(c);
  cuda::Attention attn(false);
  EXPECT_EQ(attn.choose(s).backend, cuda::AttnBackend::flash);
  attn.forward(d.q.as<bf16>(), d.k.as<bf16>(), d.v.as<bf16>(), d.out16.as<bf16>(), d.lse.as<float>(), s, nullptr);
  attn.backward(d.q.as<bf16>(), d.k.as<bf16>(), d.v.as<bf16>(), d.out16.as<bf16>(), d.dout.as<bf16>(),
                d.lse.as<float>(), d.dq16.as<bf16>(), d.dk16.as<bf16>(), d.dv16.as<bf16>(), s, nullptr);
  EXPECT_LT(test::rel_err(test::from_bits(download(d.out16.as<bf16>(), c.out.size())), c.out), 1.5e-2);
  EXPECT_LT(test::rel_err(test::from_bits(download(d.dq16.as<bf16>(), c.dq.size())), c.dq), 4e-2);
}

}  // namespace
}  // namespace lt
