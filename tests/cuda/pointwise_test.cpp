// RMSNorm, RoPE, SwiGLU, conversions and the embedding on the GPU against kernels/cpu on the
// same inputs. Tolerances: norms and SwiGLU differ from the CPU only in the order of fp32 sums
// and in exp (the CPU's vectorised exp is a few ulps off libm): 1e-5 of the output's scale;
// bf16 outputs are compared after rounding the CPU's fp32 result (at most one bf16 ulp apart,
// 2^-8 relative, when the fp32 values straddle a rounding boundary). The embedding's backward
// sums in the CPU's order and must match bit for bit. Determinism: two runs, the same bits.
#include <gtest/gtest.h>

#include "cuda_test_util.h"
#include "kernels/cpu/convert.h"
#include "kernels/cpu/embedding.h"
#include "kernels/cpu/norm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/swiglu.h"
#include "kernels/cuda/embedding.h"
#include "kernels/cuda/norm.h"
#include "kernels/cuda/pointwise.h"

namespace lt {
namespace {

using cuda::DeviceBuffer;
using cuda::download;
using cuda::upload;

// Both vectors as bf16-rounded floats: at most one bf16 ulp apart, relative to the scale.
void expect_bf16_close(const std::vector<bf16>& got, const std::vector<float>& want_f32, const char* what) {
  ASSERT_EQ(got.size(), want_f32.size());
  std::vector<float> want(want_f32.size());
  for (size_t i = 0; i < want.size(); ++i) want[i] = bf16_to_float(float_to_bf16(want_f32[i]));
  EXPECT_LT(test::rel_err(test::from_bits(got), want), 1.0 / 128) << what;
}

TEST(CudaNorm, ForwardAndFusedAddMatchCpu) {
  LT_REQUIRE_GPU();
  for (auto [N, D] : {std::pair<int64_t, int>{37, 96}, {300, 768}, {5, 4100}}) {
    const auto x = test::normal(size_t(N * D), 1), w = test::normal(size_t(D), 2), r = test::normal(size_t(N * D), 3);
    std::vector<float> y(x.size()), rstd(static_cast<size_t>(N));
    cpu::rmsnorm_forward(x.data(), w.data(), y.data(), rstd.data(), N, D, 1e-5f);
    DeviceBuffer dx = upload(x), dw = upload(w), dy(x.size() * 4), dy16(x.size() * 2), dr(size_t(N) * 4);
    cuda::rmsnorm_forward(dx.as<float>(), dw.as<float>(), dy.as<float>(), dy16.as<bf16>(), dr.as<float>(), N, D, 1e-5f,
                          nullptr);
    EXPECT_LT(test::rel_err(download(dy.as<float>(), y.size()), y), 1e-5) << N << "x" << D;
    EXPECT_LT(test::rel_err(download(dr.as<float>(), rstd.size()), rstd), 1e-5);
    expect_bf16_close(download(dy16.as<bf16>(), y.size()), y, "bf16 copy");

    // a ← a + b, then the norm of the sum.
    std::vector<float> a = x;
    cpu::add_rmsnorm_forward(a.data(), r.data(), w.data(), y.data(), rstd.data(), N, D, 1e-5f);
    DeviceBuffer db = upload(r);
    cuda::add_rmsnorm_forward(dx.as<float>(), db.as<float>(), dw.as<float>(), dy.as<float>(), nullptr, dr.as<float>(),
                              N, D, 1e-5f, nullptr);
    EXPECT_TRUE(test::bitwise_equal(download(dx.as<float>(), a.size()), a)) << "the residual sum is one fp32 add";
    EXPECT_LT(test::rel_err(download(dy.as<float>(), y.size()), y), 1e-5);
  }
}

TEST(CudaNorm, BackwardMatchesCpuAndIsDeterministic) {
  LT_REQUIRE_GPU();
  const int64_t N = 517;  // two partial-sum chunks and a ragged end
  const int D = 384;
  const auto x = test::normal(size_t(N * D), 4), w = test::normal(size_t(D), 5), dy = test::normal(size_t(N * D), 6);
  std::vector<float> y(x.size()), rstd(static_cast<size_t>(N)), dx(x.size(), 0.5f), dw(size_t(D), 0.25f);
  cpu::rmsnorm_forward(x.data(), w.data(), y.data(), rstd.data(), N, D, 1e-5f);
  cpu::rmsnorm_backward(dy.data(), x.data(), w.data(), rstd.data(), dx.data(), dw.data(), N, D, true);
  DeviceBuffer dx_d = upload(x), dw_d = upload(w), dy_d = upload(dy), rs_d = upload(rstd);
  DeviceBuffer ws(cuda::rmsnorm_backward_workspace_floats(N, D) * 4);
  std::vector<float> got_dx[2], got_dw[2];
  for (int run = 0; run < 2; ++run) {
    DeviceBuffer gx = upload(std::vector<float>(x.size(), 0.5f)), gw = upload(std::vector<float>(size_t(D), 0.25f));
    cuda::rmsnorm_backward(dy_d.as<float>(), dx_d.as<float>(), dw_d.as<float>(), rs_d.as<float>(), gx.as<float>(),
                           gw.as<float>(), N, D, true, ws.as<float>(), nullptr);
    got_dx[run] = download(gx.as<float>(), x.size());
    got_dw[run] = download(gw.as<float>(), size_t(D));
  }
  EXPECT_LT(test::rel_err(got_dx[0], dx), 1e-5);
  EXPECT_LT(test::rel_err(got_dw[0], dw), 1e-5);
  EXPECT_TRUE(test::bitwise_equal(got_dx[0], got_dx[1]));
  EXPECT_TRUE(test::bitwise_equal(got_dw[0], got_dw[1]));
}

TEST(CudaRope, ForwardAndBackwardMatchCpuOnStridedRows) {
  LT_REQUIRE_GPU();
  const int B = 2, T = 37, H = 3, hd = 64;
  const int64_t BT = int64_t(B) * T, width = int64_t(H) * hd, ld = width + 2 * hd;  // q slice of a fused row
  std::vector<float> cos_t(size_t(T) * hd / 2), sin_t(cos_t.size());
  std::vector<double> inv_freq(size_t(hd / 2));
  for (int i = 0; i < hd / 2; ++i) inv_freq[size_t(i)] = std::pow(10000.0, -2.0 * i / hd);
  cpu::rope_tables(cos_t.data(), sin_t.data(), T, hd, inv_freq.data());
  const auto fused = test::normal(size_t(BT * ld), 7);
  std::vector<float> q(static_cast<size_t>(BT * width));
  for (int64_t n = 0; n < BT; ++n)
    for (int64_t i = 0; i < width; ++i) q[size_t(n * width + i)] = fused[size_t(n * ld + i)];
  std::vector<float> want = q;
  cpu::rope_forward(want.data(), cos_t.data(), sin_t.data(), BT, T, H, hd);
  DeviceBuffer x = upload(fused), c = upload(cos_t), s = upload(sin_t), y(q.size() * 4), y16(q.size() * 2);
  cuda::rope_forward(x.as<float>(), ld, y.as<float>(), y16.as<bf16>(), width, c.as<float>(), s.as<float>(), BT, T, H,
                     hd, nullptr);
  EXPECT_LT(test::rel_err(download(y.as<float>(), q.size()), want), 1e-6);
  expect_bf16_close(download(y16.as<bf16>(), q.size()), want, "rope bf16");

  std::vector<float> back = want;
  cpu::rope_backward(back.data(), cos_t.data(), sin_t.data(), BT, T, H, hd);
  DeviceBuffer g = upload(want), gb(q.size() * 4);
  cuda::rope_backward(g.as<float>(), width, gb.as<float>(), nullptr, width, c.as<float>(), s.as<float>(), BT, T, H, hd,
                      nullptr);
  EXPECT_LT(test::rel_err(download(gb.as<float>(), q.size()), back), 1e-6);
  // bf16 gradient in: the same inverse rotation of the rounded values.
  const std::vector<bf16> want16 = test::to_bits(want);
  std::vector<float> back16 = test::from_bits(want16);
  cpu::rope_backward(back16.data(), cos_t.data(), sin_t.data(), BT, T, H, hd);
  DeviceBuffer g16 = upload(want16);
  cuda::rope_backward(g16.as<bf16>(), width, gb.as<float>(), nullptr, width, c.as<float>(), s.as<float>(), BT, T, H,
                      hd, nullptr);
  EXPECT_LT(test::rel_err(download(gb.as<float>(), q.size()), back16), 1e-6);
}

TEST(CudaSwiglu, ForwardAndBackwardMatchCpuOnFusedGateUp) {
  LT_REQUIRE_GPU();
  const int64_t rows = 29;
  const int F = 200;
  const auto gu = test::normal(size_t(rows * 2 * F), 8, 2.0f), dh = test::normal(size_t(rows * F), 9);
  std::vector<float> g(static_cast<size_t>(rows * F)), u(g.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int j = 0; j < F; ++j) {
      g[size_t(r * F + j)] = gu[size_t(r * 2 * F + j)];
      u[size_t(r * F + j)] = gu[size_t(r * 2 * F + F + j)];
    }
  std::vector<float> h(g.size()), dg(g.size()), du(g.size());
  cpu::swiglu_forward(g.data(), u.data(), h.data(), int64_t(g.size()));
  cpu::swiglu_backward(dh.data(), g.data(), u.data(), dg.data(), du.data(), int64_t(g.size()));
  DeviceBuffer d_gu = upload(gu), d_dh = upload(dh), d_h(h.size() * 4), d_h16(h.size() * 2);
  DeviceBuffer d_d(gu.size() * 4), d_d16(gu.size() * 2);
  const float* gp = d_gu.as<float>();
  cuda::swiglu_forward(gp, gp + F, 2 * F, d_h.as<float>(), d_h16.as<bf16>(), F, rows, F, nullptr);
  cuda::swiglu_backward(d_dh.as<float>(), F, gp, gp + F, 2 * F, d_d.as<float>(), d_d.as<float>() + F, d_d16.as<bf16>(),
                        d_d16.as<bf16>() + F, 2 * F, rows, F, nullptr);
  EXPECT_LT(test::rel_err(download(d_h.as<float>(), h.size()), h), 1e-5);
  expect_bf16_close(download(d_h16.as<bf16>(), h.size()), h, "h bf16");
  const auto d = download(d_d.as<float>(), gu.size());
  std::vector<float> got_dg(g.size()), got_du(g.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int j = 0; j < F; ++j) {
      got_dg[size_t(r * F + j)] = d[size_t(r * 2 * F + j)];
      got_du[size_t(r * F + j)] = d[size_t(r * 2 * F + F + j)];
    }
  EXPECT_LT(test::rel_err(got_dg, dg), 1e-5);
  EXPECT_LT(test::rel_err(got_du, du), 1e-5);
}

TEST(CudaConvert, PlainAndTransposedMatchCpuBitForBit) {
  LT_REQUIRE_GPU();
  const int64_t rows = 45, cols = 70, ldy = 48;
  const auto x = test::normal(size_t(rows * cols), 10);
  std::vector<bf16> plain(x.size()), t(size_t(cols * ldy), 0), t_rows(x.size());
  cpu::to_bf16(x.data(), plain.data(), int64_t(x.size()));
  cpu::to_bf16_transposed(x.data(), rows, cols, t.data(), ldy, t_rows.data());
  DeviceBuffer dx = upload(x), dp(x.size() * 2), dt = upload(std::vector<bf16>(t.size(), 0)), dr(x.size() * 2);
  cuda::to_bf16(dx.as<float>(), dp.as<bf16>(), int64_t(x.size()), nullptr);
  cuda::to_bf16_transposed(dx.as<float>(), rows, cols, dt.as<bf16>(), ldy, dr.as<bf16>(), nullptr);
  EXPECT_EQ(download(dp.as<bf16>(), x.size()), plain);
  EXPECT_EQ(download(dt.as<bf16>(), t.size()), t);
  EXPECT_EQ(download(dr.as<bf16>(), x.size()), t_rows);
  DeviceBuffer back(x.size() * 4);
  cuda::bf16_to_float(dp.as<bf16>(), back.as<float>(), int64_t(x.size()), nullptr);
  EXPECT_TRUE(test::bitwise_equal(download(back.as<float>(), x.size()), test::from_bits(plain)));
}

TEST(CudaEmbedding, PlanGroupsPositionsByRowInTokenOrder) {
  // Runs anywhere: the host half of the deterministic backward.
  const std::vector<int32_t> tokens = {7, 3, 12, 3, 9, 7, 3, 15, 2};
  const cuda::EmbeddingGradPlan p = cuda::plan_embedding_backward(tokens.data(), int64_t(tokens.size()), 3, 10);
  // Range [3, 13): local rows 0 (token 3), 4 (7), 6 (9), 9 (12); 15 and 2 are outside.
  EXPECT_EQ(p.rows, (std::vector<int32_t>{0, 4, 6, 9}));
  EXPECT_EQ(p.offsets, (std::vector<int32_t>{0, 3, 5, 6, 7}));
  EXPECT_EQ(p.positions, (std::vector<int32_t>{1, 3, 6, 0, 5, 4, 2}));
  EXPECT_EQ(p.packed().size(), p.rows.size() + p.offsets.size() + p.positions.size());
}

TEST(CudaEmbedding, ForwardAndBackwardMatchCpuBitForBit) {
  LT_REQUIRE_GPU();
  const int V = 50, D = 300, vocab_begin = 20;  // a range split mid-vocabulary
  const int64_t N = 333;
  Rng rng(11);
  std::vector<int32_t> tokens(static_cast<size_t>(N));
  for (auto& t : tokens) t = int32_t(rng.next_u64() % 100);  // some outside [20, 70)
  const auto table = test::normal(size_t(V) * D, 12), dout = test::normal(size_t(N) * D, 13);
  std::vector<float> out(size_t(N) * D), dtable = test::normal(size_t(V) * D, 14), dtable_cpu = dtable;
  cpu::embedding_forward(tokens.data(), table.data(), out.data(), N, D, vocab_begin, V);
  cpu::embedding_backward(tokens.data(), dout.data(), dtable_cpu.data(), N, D, vocab_begin, V);
  DeviceBuffer dtok = upload(tokens), dtab = upload(table), dout_d = upload(dout), dgrad = upload(dtable);
  DeviceBuffer dy(out.size() * 4);
  cuda::embedding_forward(dtok.as<int32_t>(), dtab.as<float>(), dy.as<float>(), N, D, vocab_begin, V, nullptr);
  EXPECT_TRUE(test::bitwise_equal(download(dy.as<float>(), out.size()), out));
  const cuda::EmbeddingGradPlan plan = cuda::plan_embedding_backward(tokens.data(), N, vocab_begin, V);
  DeviceBuffer dplan = upload(plan.packed());
  cuda::embedding_backward(dplan.as<int32_t>(), int(plan.rows.size()), int64_t(plan.positions.size()),
                           dout_d.as<float>(), dgrad.as<float>(), D, nullptr);
  EXPECT_TRUE(test::bitwise_equal(download(dgrad.as<float>(), dtable.size()), dtable_cpu));
}

}  // namespace
}  // namespace lt
