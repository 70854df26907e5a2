// Every CPU kernel against an independent plain reference (double precision where it
// matters), on random shapes including odd sizes; forward and backward.
#include <gtest/gtest.h>
#include <malloc.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "core/bf16.h"
#include "core/buffer.h"
#include "kernels/cpu/adamw.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/convert.h"
#include "kernels/cpu/cross_entropy.h"
#include "kernels/cpu/embedding.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/norm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/swiglu.h"

namespace lt::cpu {
namespace {

std::vector<float> randv(size_t n, uint32_t seed, float sd = 1.0f) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.0f, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

// |a − b| <= atol + rtol·|b| elementwise.
void expect_close(const std::vector<float>& a, const std::vector<float>& b, double atol, double rtol,
                  const char* what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  size_t bad = 0;
  for (size_t i = 0; i < a.size(); ++i)
    if (!(std::fabs(double(a[i]) - b[i]) <= atol + rtol * std::fabs(double(b[i])))) {
      if (bad++ < 5) ADD_FAILURE() << what << "[" << i << "]: " << a[i] << " vs " << b[i];
    }
  EXPECT_EQ(bad, 0u) << what;
}

TEST(KernelGemm, AllTransposeAndAccumulateCombos) {
  const int shapes[][3] = {{1, 1, 1}, {7, 13, 5}, {33, 17, 65}, {64, 48, 288}, {3, 101, 1}};
  uint32_t seed = 1;
  for (auto& sh : shapes)
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb)
        for (int acc = 0; acc < 2; ++acc) {
          const int M = sh[0], N = sh[1], K = sh[2];
          auto A = randv(size_t(M) * K, seed++), B = randv(size_t(K) * N, seed++);
          auto C = randv(size_t(M) * N, seed++), R = C;
          matmul(A.data(), B.data(), C.data(), M, N, K, ta, tb, acc);
          matmul_ref(A.data(), B.data(), R.data(), M, N, K, ta, tb, acc);
          expect_close(C, R, 1e-4 * std::sqrt(double(K)), 1e-5, "gemm");
        }
}

TEST(KernelGemm, Bf16InputsFp32Accumulate) {
  const int M = 19, N = 37, K = 70;
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb)
      for (int acc = 0; acc < 2; ++acc) {
        auto A = randv(size_t(M) * K, 10 + ta), B = randv(size_t(K) * N, 20 + tb);
        std::vector<bf16> Ah(A.size()), Bh(B.size());
        // The reference sees exactly the rounded inputs: only accumulation order differs.
        for (size_t i = 0; i < A.size(); ++i) A[i] = bf16_to_float(Ah[i] = float_to_bf16(A[i]));
        for (size_t i = 0; i < B.size(); ++i) B[i] = bf16_to_float(Bh[i] = float_to_bf16(B[i]));
        auto C = randv(size_t(M) * N, 30), R = C;
        matmul_bf16(Ah.data(), Bh.data(), C.data(), M, N, K, ta, tb, acc);
        matmul_ref(A.data(), B.data(), R.data(), M, N, K, ta, tb, acc);
        expect_close(C, R, 1e-4 * std::sqrt(double(K)), 1e-5, "gemm_bf16");
      }
}

struct AttnCase {
  int B, T, H, KV, hd;
};

// A packed weight GEMM equals the plain reference for both orientations, with and without
// accumulation, fp32 and bf16 (reference on the bf16-rounded inputs), and follows re-packs.
TEST(KernelGemm, PackedWeightMatchesReference) {
  struct Shape {
    int64_t M, N, K;
  };
  for (Shape s : {Shape{37, 53, 29}, Shape{128, 96, 64}, Shape{5, 700, 33}})
    for (bool tb : {true, false})
      for (bool bf : {false, true}) {
        const int64_t M = s.M, N = s.N, K = s.K;
        auto A = randv(size_t(M * K), 11), W = randv(size_t(K * N), 12), C0 = randv(size_t(M * N), 13);
        if (bf) {
          for (auto& x : A) x = bf16_to_float(float_to_bf16(x));
          for (auto& x : W) x = bf16_to_float(float_to_bf16(x));
        }
        std::vector<bf16> Ah(A.size());
        for (size_t i = 0; i < A.size(); ++i) Ah[i] = float_to_bf16(A[i]);
        const void* a = bf ? static_cast<const void*>(Ah.data()) : A.data();
        const int64_t tail = M / 3 + 1;  // a second row count reading the same packed weight
        PackedGemm g(M, N, K, tb, bf, tail);
        EXPECT_GE(g.packed_bytes(), size_t(K * N) * (bf ? 2 : 4));
        Buffer storage(g.packed_bytes());
        g.bind(storage.data());
        auto W2 = W;
        for (auto& x : W2) x = -x;
        g.pack(W2.data());  // an older weight, then the current one
        g.pack(W.data());
        for (int64_t m : {M, tail})
          for (bool acc : {false, true}) {
            std::vector<float> C = C0, R = C0;
            g.run(a, C.data(), m, acc);
            matmul_ref(A.data(), W.data(), R.data(), m, N, K, false, tb, acc);
            expect_close(C, R, 1e-4, bf ? 1e-3 : 1e-4, "packed");
          }
      }
}

// Random inputs of one attention case and the reference outputs; dq/dk/dv pre-filled with 7
// (the kernels must overwrite them).
struct AttnRun {
  AttnShape s;
  std::vector<float> q, k, v, dout, out, lse, dq, dk, dv, out_r, lse_r, dq_r, dk_r, dv_r;
  AttnRun(const AttnCase& c, uint32_t& seed) : s{c.B, c.T, c.H, c.KV, c.hd} {
    const size_t nq = size_t(c.B) * c.T * c.H * c.hd, nk = size_t(c.B) * c.T * c.KV * c.hd;
    q = randv(nq, seed++), k = randv(nk, seed++), v = randv(nk, seed++), dout = randv(nq, seed++);
    out.assign(nq, 0.f), lse.assign(size_t(c.B) * c.H * c.T, 0.f), out_r = out, lse_r = lse;
    dq.assign(nq, 7.f), dk.assign(nk, 7.f), dv.assign(nk, 7.f), dq_r = dq, dk_r = dk, dv_r = dv;
    attention_forward_ref(q.data(), k.data(), v.data(), out_r.data(), lse_r.data(), s);
    attention_backward_ref(q.data(), k.data(), v.data(), dout.data(), dq_r.data(), dk_r.data(), dv_r.data(), s);
  }
  template <class Fwd, class Bwd>
  void run(Fwd fwd, Bwd bwd) {
    fwd(q.data(), k.data(), v.data(), out.data(), lse.data(), s);
    bwd(q.data(), k.data(), v.data(), out.data(), dout.data(), lse.data(), dq.data(), dk.data(), dv.data(), s);
  }
};

testing::Message describe(const AttnCase& c) {
  return testing::Message() << "B=" << c.B << " T=" << c.T << " H=" << c.H << " KV=" << c.KV << " hd=" << c.hd;
}

TEST(KernelAttention, ForwardBackwardVsReference) {
  // MHA, GQA 2:1 and 3:1, MQA; T below, at, and not a multiple of the tiles; T = 1; odd hd
  // (the generic kernels) and every head size of the tiled kernels (16 .. 128 in steps of 16).
  const AttnCase cases[] = {{1, 1, 2, 2, 8},    {2, 5, 4, 2, 6},    {1, 33, 3, 1, 16},  {2, 64, 2, 2, 48},
                            {1, 97, 6, 2, 7},   {1, 130, 4, 4, 32}, {3, 17, 8, 1, 64},  {1, 200, 2, 1, 48},
                            {1, 70, 2, 1, 128}, {2, 129, 3, 3, 80}, {1, 150, 4, 2, 96}, {1, 100, 2, 2, 112}};
  uint32_t seed = 100;
  for (const auto& c : cases) {
    SCOPED_TRACE(describe(c));
    AttnRun a(c, seed);
    a.run(attention_forward, attention_backward);
    expect_close(a.out, a.out_r, 2e-5, 1e-4, "out");
    expect_close(a.lse, a.lse_r, 2e-5, 1e-5, "lse");
    expect_close(a.dq, a.dq_r, 1e-4, 1e-3, "dq");
    expect_close(a.dk, a.dk_r, 1e-4, 1e-3, "dk");
    expect_close(a.dv, a.dv_r, 1e-4, 1e-3, "dv");
  }
}

TEST(KernelAttention, Deterministic) {
  const AttnShape s{2, 77, 4, 2, 48};
  const size_t nq = size_t(2) * 77 * 4 * 48, nk = nq / 2;
  auto q = randv(nq, 1), k = randv(nk, 2), v = randv(nk, 3), dout = randv(nq, 4);
  std::vector<float> out(nq), lse(2 * 4 * 77), dq(nq), dk(nk), dv(nk);
  attention_forward(q.data(), k.data(), v.data(), out.data(), lse.data(), s);
  attention_backward(q.data(), k.data(), v.data(), out.data(), dout.data(), lse.data(), dq.data(), dk.data(),
                     dv.data(), s);
  auto o2 = out, dq2 = dq, dk2 = dk, dv2 = dv;
  attention_forward(q.data(), k.data(), v.data(), o2.data(), lse.data(), s);
  attention_backward(q.data(), k.data(), v.data(), o2.data(), dout.data(), lse.data(), dq2.data(), dk2.data(),
                     dv2.data(), s);
  EXPECT_EQ(out, o2);
  EXPECT_EQ(dq, dq2);
  EXPECT_EQ(dk, dk2);
  EXPECT_EQ(dv, dv2);
}

// ‖a − b‖ / ‖b‖ must stay ≤ rel and every |a − b| ≤ abs_frac · max|b| (bf16 tolerances).
double expect_norm_close(const std::vector<float>& a, const std::vector<float>& b, double rel, double abs_frac,
                         const char* what) {
  EXPECT_EQ(a.size(), b.size()) << what;
  double num = 0, den = 0, bmax = 0, dmax = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    const double d = double(a[i]) - b[i];
    num += d * d;
    den += double(b[i]) * b[i];
    bmax = std::max(bmax, std::fabs(double(b[i])));
    dmax = std::isnan(d) ? INFINITY : std::max(dmax, std::fabs(d));
  }
  // An all-zero reference (dq, dk at T = 1) is compared by the RMS and max of a instead, on
  // the scale of the unit-variance inputs.
  const double e = den > 0 ? std::sqrt(num / den) : std::sqrt(num / double(std::max<size_t>(a.size(), 1)));
  if (den == 0) bmax = 1.0;
  EXPECT_LE(e, rel) << what << ": norm-wise relative error";
  EXPECT_LE(dmax, abs_frac * bmax + 1e-6) << what << ": max abs error (max|ref| = " << bmax << ")";
  return e;
}

TEST(KernelAttention, Bf16VsReference) {
  // MHA, GQA 2:1 and 4:1, MQA; T = 1, odd, below / at / not a multiple of the tiles; the
  // tiled kernels' head sizes (16 .. 128 in steps of 16) and generic ones (odd 7, 40).
  const AttnCase cases[] = {{1, 1, 2, 2, 64},  {2, 5, 4, 2, 32},  {1, 33, 4, 1, 48},  {2, 64, 2, 2, 48},
                            {1, 97, 8, 2, 7},  {1, 130, 4, 4, 32}, {3, 17, 8, 1, 64}, {1, 200, 4, 1, 64},
                            {1, 70, 2, 1, 128}, {1, 131, 8, 4, 40}, {1, 75, 2, 2, 80}, {2, 257, 4, 2, 64},
                            {1, 130, 2, 1, 16}, {1, 150, 4, 2, 96}, {1, 90, 2, 2, 112}};
  uint32_t seed = 300;
  double worst[5] = {};
  for (const auto& c : cases) {
    SCOPED_TRACE(describe(c));
    AttnRun a(c, seed);
    a.run(attention_forward_bf16, attention_backward_bf16);
    const double e[] = {expect_norm_close(a.out, a.out_r, 1e-2, 2e-2, "out"),
                        expect_norm_close(a.lse, a.lse_r, 1e-2, 2e-2, "lse"),
                        expect_norm_close(a.dq, a.dq_r, 1e-2, 2e-2, "dq"),
                        expect_norm_close(a.dk, a.dk_r, 1e-2, 2e-2, "dk"),
                        expect_norm_close(a.dv, a.dv_r, 1e-2, 2e-2, "dv")};
    for (int i = 0; i < 5; ++i) worst[i] = std::max(worst[i], e[i]);
#if defined(__AVX512BF16__)
    // The bf16 path really rounds (it is not the fp32 kernel under another name).
    std::vector<float> out32(a.out.size()), lse32(a.lse.size());
    attention_forward(a.q.data(), a.k.data(), a.v.data(), out32.data(), lse32.data(), a.s);
    if (c.T > 1) EXPECT_NE(a.out, out32);
#endif
  }
  RecordProperty("worst_norm_rel_err", testing::PrintToString(std::vector<double>(worst, worst + 5)));
  std::printf("bf16 attention, worst norm-wise rel. error: out %.2e lse %.2e dq %.2e dk %.2e dv %.2e\n", worst[0],
              worst[1], worst[2], worst[3], worst[4]);
}

TEST(KernelAttention, Bf16Deterministic) {
  for (int hd : {64, 40}) {
    const AttnShape s{2, 150, 4, 2, hd};
    const size_t nq = size_t(2) * 150 * 4 * hd, nk = nq / 2;
    auto q = randv(nq, 11), k = randv(nk, 12), v = randv(nk, 13), dout = randv(nq, 14);
    std::vector<float> out(nq), lse(2 * 4 * 150), dq(nq), dk(nk), dv(nk);
    attention_forward_bf16(q.data(), k.data(), v.data(), out.data(), lse.data(), s);
    attention_backward_bf16(q.data(), k.data(), v.data(), out.data(), dout.data(), lse.data(), dq.data(), dk.data(),
                            dv.data(), s);
    auto o2 = out, l2 = lse, dq2 = dq, dk2 = dk, dv2 = dv;
    attention_forward_bf16(q.data(), k.data(), v.data(), o2.data(), l2.data(), s);
    attention_backward_bf16(q.data(), k.data(), v.data(), o2.data(), dout.data(), l2.data(), dq2.data(), dk2.data(),
                            dv2.data(), s);
    EXPECT_EQ(out, o2);
    EXPECT_EQ(lse, l2);
    EXPECT_EQ(dq, dq2);
    EXPECT_EQ(dk, dk2);
    EXPECT_EQ(dv, dv2);
  }
}

// What the attention backward keeps per thread (plan counts it per core) is what it really
// allocates: on one thread, in a fresh process (ctest runs each test alone), after a backward
// of one row of the same kernel (which also lets the OpenMP runtime set itself up), the heap
// grows by the difference of the reported bytes (each kernel's buffers are its own).
TEST(KernelAttention, BackwardScratchBytesAreWhatItAllocates) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  auto heap = [] {
    const struct mallinfo2 m = mallinfo2();
    return double(m.uordblks + m.hblkhd);  // small chunks + mmap'd ones
  };
  struct Case {
    AttnShape s;
    bool bf16;
  };
  // tiled fp32 (hd 64), tiled bf16 (hd 48), generic bf16 (hd 40), generic fp32 (hd 40: none).
  const Case cases[] = {{{2, 300, 8, 2, 64}, false}, {{1, 650, 6, 2, 48}, true}, {{1, 333, 4, 1, 40}, true},
                        {{1, 333, 4, 1, 40}, false}};
  double total = 0;
  for (const Case& c : cases) {
    const AttnShape& s = c.s;
    const AttnShape one{1, 1, s.H, s.KV, s.hd};
    const size_t nq = size_t(s.B) * s.T * s.H * s.hd, nk = size_t(s.B) * s.T * s.KV * s.hd;
    auto q = randv(nq, 31), k = randv(nk, 32), v = randv(nk, 33), dout = randv(nq, 34);
    std::vector<float> out(nq), lse(size_t(s.B) * s.H * s.T), dq(nq), dk(nk), dv(nk);
    auto backward = [&](const AttnShape& x) {
      (c.bf16 ? attention_backward_bf16 : attention_backward)(q.data(), k.data(), v.data(), out.data(), dout.data(),
                                                              lse.data(), dq.data(), dk.data(), dv.data(), x);
    };
    (c.bf16 ? attention_forward_bf16 : attention_forward)(q.data(), k.data(), v.data(), out.data(), lse.data(), one);
    backward(one);
    (c.bf16 ? attention_forward_bf16 : attention_forward)(q.data(), k.data(), v.data(), out.data(), lse.data(), s);
    const double before = heap();
    backward(s);
    const double grown = heap() - before,
                 want = double(attention_backward_scratch_bytes(s, c.bf16)) -
                        double(attention_backward_scratch_bytes(one, c.bf16));
    total += want;
    EXPECT_GE(grown, want) << "hd " << s.hd << (c.bf16 ? " bf16" : " fp32");
    // Allocator and OpenMP-runtime bookkeeping (a few hundred bytes); buffers of 128 KiB and
    // more are mmap'd whole pages.
    const double slack = want >= 131072 ? 2 * 4096 + 512 : 512;
    EXPECT_LE(grown, want + slack) << "hd " << s.hd << (c.bf16 ? " bf16" : " fp32");
  }
  EXPECT_GT(total, 100000.0);  // the cases do allocate (bf16: > 100 KB each)
  omp_set_num_threads(saved);
}

// The attention kernels split work into tasks that each own their outputs and sum in a fixed
// order, so the thread count does not change a bit (fp32 and bf16 compute).
TEST(KernelAttention, SameBitsForAnyThreadCount) {
  const AttnShape s{2, 150, 4, 2, 64};
  const size_t nq = size_t(2) * 150 * 4 * 64, nk = nq / 2;
  auto q = randv(nq, 21), k = randv(nk, 22), v = randv(nk, 23), dout = randv(nq, 24);
  const int saved = omp_get_max_threads();
  for (bool bf : {false, true}) {
    std::vector<float> res[2][5];
    for (int t : {0, 1}) {
      omp_set_num_threads(t == 0 ? 1 : 3);
      std::vector<float> out(nq), lse(2 * 4 * 150), dq(nq), dk(nk), dv(nk);
      (bf ? attention_forward_bf16 : attention_forward)(q.data(), k.data(), v.data(), out.data(), lse.data(), s);
      (bf ? attention_backward_bf16 : attention_backward)(q.data(), k.data(), v.data(), out.data(), dout.data(),
                                                          lse.data(), dq.data(), dk.data(), dv.data(), s);
      res[t][0] = out, res[t][1] = lse, res[t][2] = dq, res[t][3] = dk, res[t][4] = dv;
    }
    for (int i = 0; i < 5; ++i) EXPECT_EQ(res[0][i], res[1][i]) << (bf ? "bf16" : "fp32") << " output " << i;
  }
  omp_set_num_threads(saved);
}

TEST(KernelRmsNorm, ForwardBackwardVsDouble) {
  for (int D : {1, 7, 64, 288, 333}) {
    const int N = 13;
    const float eps = 1e-5f;
    auto x = randv(size_t(N) * D, D), w = randv(size_t(D), D + 1), dy = randv(size_t(N) * D, D + 2);
    std::vector<float> y(x.size()), rstd(N), dx(x.size(), 0.5f), dw(size_t(D), 0.25f);
    rmsnorm_forward(x.data(), w.data(), y.data(), rstd.data(), N, D, eps);
    std::vector<float> y_r(x.size()), dx_r(x.size()), dw_r(static_cast<size_t>(D));
    std::vector<double> dwd(size_t(D), 0.25);
    for (int n = 0; n < N; ++n) {
      double ss = 0;
      for (int i = 0; i < D; ++i) ss += double(x[n * D + i]) * x[n * D + i];
      double r = 1.0 / std::sqrt(ss / D + eps);
      double dot = 0;  // Σ dy·w·x
      for (int i = 0; i < D; ++i) {
        y_r[n * D + i] = float(x[n * D + i] * r * w[i]);
        dot += double(dy[n * D + i]) * w[i] * x[n * D + i];
        dwd[i] += double(dy[n * D + i]) * x[n * D + i] * r;
      }
      for (int i = 0; i < D; ++i)
        dx_r[n * D + i] = float(0.5 + r * dy[n * D + i] * w[i] - r * r * r * x[n * D + i] * dot / D);
    }
    for (int i = 0; i < D; ++i) dw_r[i] = float(dwd[i]);
    expect_close(y, y_r, 1e-6, 1e-5, "rmsnorm y");
    rmsnorm_backward(dy.data(), x.data(), w.data(), rstd.data(), dx.data(), dw.data(), N, D, true);
    expect_close(dx, dx_r, 1e-5, 1e-4, "rmsnorm dx");
    expect_close(dw, dw_r, 1e-5, 1e-4, "rmsnorm dw");
  }
}

TEST(KernelRmsNorm, FusedResidualAddEqualsAddThenNorm) {
  const int N = 9, D = 37;
  auto a = randv(size_t(N) * D, 1), b = randv(size_t(N) * D, 2), w = randv(size_t(D), 3);
  std::vector<float> sum(a.size()), y(a.size()), y_r(a.size()), rstd(N), rstd_r(N);
  for (size_t i = 0; i < a.size(); ++i) sum[i] = a[i] + b[i];
  rmsnorm_forward(sum.data(), w.data(), y_r.data(), rstd_r.data(), N, D, 1e-5f);
  add_rmsnorm_forward(a.data(), b.data(), w.data(), y.data(), rstd.data(), N, D, 1e-5f);
  EXPECT_EQ(a, sum);
  expect_close(y, y_r, 1e-6, 1e-6, "fused add+rmsnorm y");
  expect_close(rstd, rstd_r, 1e-6, 1e-6, "fused add+rmsnorm rstd");
}

TEST(KernelRope, DirectFormulaAndInverse) {
  const int B = 2, T = 11, H = 3, hd = 10;
  const float theta = 10000.0f;
  std::vector<float> c(size_t(T) * hd / 2), s(c.size());
  std::vector<double> inv_freq(hd / 2);
  for (int i = 0; i < hd / 2; ++i) inv_freq[size_t(i)] = std::pow(double(theta), -2.0 * i / hd);
  rope_tables(c.data(), s.data(), T, hd, inv_freq.data());
  auto x = randv(size_t(B) * T * H * hd, 5), y = x;
  rope_forward(y.data(), c.data(), s.data(), B * T, T, H, hd);
  std::vector<float> ref(x.size());
  for (int n = 0; n < B * T; ++n)
    for (int h = 0; h < H; ++h)
      for (int i = 0; i < hd; ++i) {
        // HF: out = x·cos + rotate_half(x)·sin, rotate_half(x) = [−x2, x1], freq index i mod hd/2.
        int f = i % (hd / 2);
        double ang = double(n % T) * std::pow(double(theta), -2.0 * f / hd);
        const float* xr = x.data() + (size_t(n) * H + h) * hd;
        double rot = i < hd / 2 ? -xr[i + hd / 2] : xr[i - hd / 2];
        ref[(size_t(n) * H + h) * hd + i] = float(xr[i] * std::cos(ang) + rot * std::sin(ang));
      }
  expect_close(y, ref, 1e-5, 1e-5, "rope");
  rope_backward(y.data(), c.data(), s.data(), B * T, T, H, hd);  // inverse rotation
  expect_close(y, x, 1e-5, 1e-5, "rope inverse");
}

TEST(KernelSwiGLU, ForwardBackwardVsDouble) {
  const int n = 1001;
  auto g = randv(n, 1, 3.0f), u = randv(n, 2), dh = randv(n, 3);
  std::vector<float> h(n), dg(n), du(n), h_r(n), dg_r(n), du_r(n);
  swiglu_forward(g.data(), u.data(), h.data(), n);
  swiglu_backward(dh.data(), g.data(), u.data(), dg.data(), du.data(), n);
  for (int i = 0; i < n; ++i) {
    double sg = 1.0 / (1.0 + std::exp(-double(g[i])));
    h_r[i] = float(g[i] * sg * u[i]);
    du_r[i] = float(dh[i] * g[i] * sg);
    dg_r[i] = float(dh[i] * u[i] * (sg + g[i] * sg * (1 - sg)));
  }
  expect_close(h, h_r, 1e-6, 1e-5, "swiglu h");
  expect_close(dg, dg_r, 1e-6, 1e-5, "swiglu dg");
  expect_close(du, du_r, 1e-6, 1e-5, "swiglu du");
}

TEST(KernelEmbedding, VocabRangeForwardBackward) {
  const int N = 29, D = 19, vb = 10, V = 8;
  std::vector<int32_t> tok(N);
  for (int n = 0; n < N; ++n) tok[n] = (n * 7) % 25;  // some inside [10, 18), some outside
  auto table = randv(size_t(V) * D, 3), dout = randv(size_t(N) * D, 4);
  std::vector<float> out(size_t(N) * D, 9.f), dt(size_t(V) * D, 1.f), dt_r(dt.size(), 1.f);
  embedding_forward(tok.data(), table.data(), out.data(), N, D, vb, V);
  embedding_backward(tok.data(), dout.data(), dt.data(), N, D, vb, V);
  for (int n = 0; n < N; ++n) {
    int r = tok[n] - vb;
    for (int i = 0; i < D; ++i) {
      float want = (r >= 0 && r < V) ? table[r * D + i] : 0.0f;
      ASSERT_EQ(out[n * D + i], want);
      if (r >= 0 && r < V) dt_r[r * D + i] += dout[n * D + i];
    }
  }
  expect_close(dt, dt_r, 1e-6, 1e-6, "embedding dtable");
}

TEST(KernelCrossEntropy, PiecesVsDoubleSoftmax) {
  // A tiny vocabulary (all tail), and one whose halves run the 64-wide blocks of the one-pass
  // max/sum with a tail, with logits spread wide enough that the running max moves often.
  struct Case {
    int Vfull, split;
    float amp;
    std::vector<int32_t> tg;
  };
  const Case cases[] = {{37, 18, 4.0f, {0, 36, 5, -1, 17, 18, 30, -100, 2}},
                        {1000, 333, 30.0f, {0, 999, 5, -1, 517, 333, 332, -100, 2}}};
  for (const Case& c : cases) {
    const int R = 9, Vfull = c.Vfull;
    const std::vector<int32_t>& tg = c.tg;
    auto logits = randv(size_t(R) * Vfull, 8, c.amp);
    const float scale = 0.125f;
    // Two "ranks" over [0, split) and [split, Vfull), combined by hand as the LM head does.
    const int vb[2] = {0, c.split}, vl[2] = {c.split, Vfull - c.split};
    std::vector<float> part[2], mx[2], se[2], tl[2];
    for (int p = 0; p < 2; ++p) {
      part[p].resize(size_t(R) * vl[p]);
      for (int r = 0; r < R; ++r)
        for (int j = 0; j < vl[p]; ++j) part[p][r * vl[p] + j] = logits[r * Vfull + vb[p] + j];
      mx[p].resize(R);
      se[p].resize(R);
      tl[p].resize(R);
      ce_row_stats(part[p].data(), R, vl[p], vb[p], tg.data(), mx[p].data(), se[p].data(), tl[p].data());
    }
    std::vector<float> lse(R), tlog(R);
    for (int r = 0; r < R; ++r) {
      const float m = std::max(mx[0][r], mx[1][r]);
      lse[r] = m + std::log(se[0][r] * std::exp(mx[0][r] - m) + se[1][r] * std::exp(mx[1][r] - m));
      tlog[r] = tl[0][r] + tl[1][r];
    }
    // The bf16-output variant: the same gradient, rounded once (relative error <= 2^-9), logits untouched.
    std::vector<bf16> gh[2];
    for (int p = 0; p < 2; ++p) {
      auto before = part[p];
      gh[p].resize(part[p].size());
      double l2 = ce_loss_and_grad(part[p].data(), R, vl[p], vb[p], tg.data(), lse.data(), tlog.data(), scale,
                                   gh[p].data());
      EXPECT_GT(l2, 0.0);
      EXPECT_EQ(part[p], before);
    }
    double loss = 0;
    for (int p = 0; p < 2; ++p)
      loss += ce_loss_and_grad(part[p].data(), R, vl[p], vb[p], tg.data(), lse.data(), tlog.data(), scale);
    loss /= 2;  // each rank returns the same total
    double loss_r = 0;
    for (int r = 0; r < R; ++r) {
      double mxd = -1e300, s = 0;
      for (int j = 0; j < Vfull; ++j) mxd = std::max(mxd, double(logits[r * Vfull + j]));
      for (int j = 0; j < Vfull; ++j) s += std::exp(double(logits[r * Vfull + j]) - mxd);
      double z = mxd + std::log(s);
      EXPECT_NEAR(lse[r], z, 1e-5 * std::max(1.0, std::fabs(z))) << Vfull << " row " << r;
      if (tg[r] >= 0) loss_r += z - logits[r * Vfull + tg[r]];
      for (int j = 0; j < Vfull; ++j) {
        double gr = tg[r] < 0 ? 0.0 : scale * (std::exp(double(logits[r * Vfull + j]) - z) - (j == tg[r]));
        int p = j < c.split ? 0 : 1;
        EXPECT_NEAR(part[p][r * vl[p] + j - vb[p]], gr, 1e-6) << Vfull << ": " << r << "," << j;
        EXPECT_NEAR(bf16_to_float(gh[p][r * vl[p] + j - vb[p]]), gr, 1e-6 + std::fabs(gr) / 256)
            << Vfull << ": " << r << "," << j;
      }
    }
    EXPECT_NEAR(loss, loss_r, 1e-5 * std::fabs(loss_r)) << Vfull;
  }
}

TEST(KernelAdamW, MatchesScalarPyTorchLoop) {
  const int n = 517;
  auto p = randv(n, 1), g = randv(n, 2), m = randv(n, 3, 0.1f), v = randv(n, 4, 0.1f);
  for (auto& x : v) x = x * x;
  std::vector<double> pd(p.begin(), p.end()), md(m.begin(), m.end()), vd(v.begin(), v.end());
  const AdamWParams a{3e-3, 0.9, 0.95, 1e-8, 0.1, 7, 0.5f};
  adamw_update(p.data(), g.data(), m.data(), v.data(), n, a);
  // torch.optim.AdamW (foreach=False) step t: decay, moments, bias-corrected update.
  const double bc1 = 1 - std::pow(a.beta1, 7.0), bc2 = 1 - std::pow(a.beta2, 7.0);
  for (int i = 0; i < n; ++i) {
    double gi = double(g[i]) * a.grad_scale;
    pd[i] *= 1 - a.lr * a.weight_decay;
    md[i] = a.beta1 * md[i] + (1 - a.beta1) * gi;
    vd[i] = a.beta2 * vd[i] + (1 - a.beta2) * gi * gi;
    double denom = std::sqrt(vd[i]) / std::sqrt(bc2) + a.eps;
    pd[i] -= a.lr / bc1 * md[i] / denom;
  }
  expect_close(p, std::vector<float>(pd.begin(), pd.end()), 1e-6, 1e-5, "adamw p");
  expect_close(m, std::vector<float>(md.begin(), md.end()), 1e-7, 1e-5, "adamw m");
  expect_close(v, std::vector<float>(vd.begin(), vd.end()), 1e-8, 1e-5, "adamw v");
  double ss = sum_squares(g.data(), n), ss_r = 0;
  for (float x : g) ss_r += double(x) * x;
  EXPECT_NEAR(ss, ss_r, 1e-9 * ss_r);
  // Several chunks, and the same bits for any thread count.
  const auto big = randv(100003, 5);
  double big_r = 0;
  for (float x : big) big_r += double(x) * x;
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const double one = sum_squares(big.data(), int64_t(big.size()));
  omp_set_num_threads(3);
  const double three = sum_squares(big.data(), int64_t(big.size()));
  omp_set_num_threads(saved);
  EXPECT_NEAR(one, big_r, 1e-9 * big_r);
  EXPECT_EQ(one, three);
}

TEST(KernelConvert, TransposedEqualsScalarRounding) {
  for (auto [rows, cols] : {std::pair<int, int>{1, 1}, {16, 16}, {33, 48}, {100, 17}, {64, 300}, {5, 40}}) {
    const auto x = randv(size_t(rows) * cols, uint32_t(rows * 1000 + cols));
    const int64_t ldy = rows + 3;
    std::vector<bf16> y(size_t(cols) * ldy, 0x7777);
    to_bf16_transposed(x.data(), rows, cols, y.data(), ldy);
    size_t bad = 0;
    for (int c = 0; c < cols; ++c)
      for (int64_t r = 0; r < ldy; ++r) {
        const bf16 want = r < rows ? float_to_bf16(x[size_t(r) * cols + c]) : bf16(0x7777);  // padding untouched
        bad += y[size_t(c) * ldy + r] != want;
      }
    EXPECT_EQ(bad, 0u) << rows << "x" << cols;
  }
  // 64-byte aligned output rows (the streamed stores) and the plain copy written alongside.
  const int rows = 96, cols = 80;
  const auto x = randv(size_t(rows) * cols, 77);
  Buffer yt(size_t(rows) * cols * sizeof(bf16)), yr(size_t(rows) * cols * sizeof(bf16));
  to_bf16_transposed(x.data(), rows, cols, yt.as<bf16>(), rows, yr.as<bf16>());
  size_t bad = 0;
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) {
      const bf16 want = float_to_bf16(x[size_t(r) * cols + c]);
      bad += (yt.as<bf16>()[size_t(c) * rows + r] != want) + (yr.as<bf16>()[size_t(r) * cols + c] != want);
    }
  EXPECT_EQ(bad, 0u);
}

}  // namespace
}  // namespace lt::cpu
