// cuBLASLt GEMM wrapper: the row-major → column-major mapping (any machine), and the GEMMs
// against kernels/cpu's reference on the GPU (odd shapes, transposes, strides, accumulate,
// bf16 output), and determinism.
#include "kernels/cuda/gemm.h"

#include <gtest/gtest.h>

#include "cuda_test_util.h"
#include "kernels/cpu/gemm.h"

namespace lt {
namespace {

// Column-major C (m × n, ldc) = op(X)·op(Y), X/Y stored column-major as the call describes.
std::vector<float> run_column_major(const cuda::ColumnMajorCall& c, const std::vector<float>& first,
                                    const std::vector<float>& second, std::vector<float> C) {
  auto at = [](const std::vector<float>& m, int64_t ld, int64_t r, int64_t col) { return m[size_t(col * ld + r)]; };
  for (int64_t i = 0; i < c.m; ++i)
    for (int64_t j = 0; j < c.n; ++j) {
      double acc = 0;
      for (int64_t k = 0; k < c.k; ++k) {
        const float x = c.trans_first ? at(first, c.first_ld, k, i) : at(first, c.first_ld, i, k);
        const float y = c.trans_second ? at(second, c.second_ld, j, k) : at(second, c.second_ld, k, j);
        acc += double(x) * y;
      }
      C[size_t(j * c.ldc + i)] = float(acc);
    }
  return C;
}

TEST(CudaGemmPlan, ColumnMajorCallComputesTheRowMajorProduct) {
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      const int64_t M = 5, N = 7, K = 3;
      cuda::GemmShape s{M, N, K, ta, tb, ta ? M + 2 : K + 1, tb ? K + 3 : N, N + 1};
      const cuda::ColumnMajorCall c = cuda::column_major(s);
      EXPECT_EQ(c.m, N);
      EXPECT_EQ(c.n, M);
      EXPECT_EQ(c.k, K);
      EXPECT_EQ(c.trans_first, tb);
      EXPECT_EQ(c.trans_second, ta);
      // A and B row-major with their strides; the reference packs them densely.
      const int64_t a_rows = ta ? K : M, a_cols = ta ? M : K, b_rows = tb ? N : K, b_cols = tb ? K : N;
      const std::vector<float> A = test::normal(size_t(a_rows * s.lda), 1), B = test::normal(size_t(b_rows * s.ldb), 2);
      std::vector<float> Ad(size_t(a_rows * a_cols)), Bd(size_t(b_rows * b_cols)), R(size_t(M * N));
      for (int64_t r = 0; r < a_rows; ++r)
        for (int64_t q = 0; q < a_cols; ++q) Ad[size_t(r * a_cols + q)] = A[size_t(r * s.lda + q)];
      for (int64_t r = 0; r < b_rows; ++r)
        for (int64_t q = 0; q < b_cols; ++q) Bd[size_t(r * b_cols + q)] = B[size_t(r * s.ldb + q)];
      cpu::matmul_ref(Ad.data(), Bd.data(), R.data(), M, N, K, ta, tb, false);
      const std::vector<float> C = run_column_major(c, B, A, std::vector<float>(size_t(M * s.ldc), 0.0f));
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j)
          EXPECT_NEAR(C[size_t(i * s.ldc + j)], R[size_t(i * N + j)], 1e-5) << "ta=" << ta << " tb=" << tb;
    }
}

TEST(CudaGemmPlan, RejectsStridesNarrowerThanRows) {
  EXPECT_THROW(cuda::resolved({4, 4, 8, false, false, 7, 0, 0}), Error);
  EXPECT_THROW(cuda::resolved({4, 4, 8, false, false, 0, 3, 0}), Error);
  const cuda::GemmShape r = cuda::resolved({4, 6, 8, true, true});
  EXPECT_EQ(r.lda, 4);
  EXPECT_EQ(r.ldb, 8);
  EXPECT_EQ(r.ldc, 6);
}

}  // namespace
}  // namespace lt

namespace lt {
namespace {

// Row-major A (rows × cols at stride ld) packed densely, as floats.
std::vector<float> dense(const std::vector<float>& m, int64_t rows, int64_t cols, int64_t ld) {
  std::vector<float> d(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) d[size_t(r * cols + c)] = m[size_t(r * ld + c)];
  return d;
}

// Tolerance: exact bf16 products summed in fp32 by cuBLAS against double: K·2^-24 relative at
// worst, far below 1e-4 for K ≤ 1000; bf16 outputs add one rounding (2^-8).
TEST(CudaGemm, MatchesCpuReferenceOnOddShapesTransposesAndStrides) {
  LT_REQUIRE_GPU();
  cuda::Gemm gemm;
  struct Case {
    int64_t M, N, K;
    bool ta, tb;
    int64_t lda, ldb, ldc;
  };
  const std::vector<Case> cases = {
      {67, 45, 129, false, true, 0, 0, 0},     // y = x·Wᵀ
      {130, 96, 64, false, false, 0, 0, 0},    // dx = dy·W
      {96, 64, 1000, true, false, 0, 0, 0},    // dW = dyᵀ·x, long K
      {33, 70, 40, true, true, 48, 56, 80},    // strided everything
      {16, 1000, 24, false, true, 2000, 0, 0}, // A read at a doubled stride (the in-place CE gradient)
  };
  for (const Case& c : cases)
    for (bool acc : {false, true})
      for (cuda::GemmOut out : {cuda::GemmOut::f32, cuda::GemmOut::bf16}) {
        if (acc && out == cuda::GemmOut::bf16) continue;
        cuda::GemmShape s{c.M, c.N, c.K, c.ta, c.tb, c.lda, c.ldb, c.ldc, out, acc};
        const cuda::GemmShape r = cuda::resolved(s);
        const int64_t a_rows = c.ta ? c.K : c.M, a_cols = c.ta ? c.M : c.K;
        const int64_t b_rows = c.tb ? c.N : c.K, b_cols = c.tb ? c.K : c.N;
        const auto A = test::bf16_normal(size_t(a_rows * r.lda), 41), B = test::bf16_normal(size_t(b_rows * r.ldb), 42);
        const auto C0 = test::normal(size_t(c.M * r.ldc), 43);
        std::vector<float> want = dense(C0, c.M, c.N, r.ldc);
        cpu::matmul_ref(dense(A, a_rows, a_cols, r.lda).data(), dense(B, b_rows, b_cols, r.ldb).data(), want.data(),
                        c.M, c.N, c.K, c.ta, c.tb, acc);
        cuda::DeviceBuffer dA = cuda::upload(test::to_bits(A)), dB = cuda::upload(test::to_bits(B));
        std::vector<float> got;
        if (out == cuda::GemmOut::f32) {
          cuda::DeviceBuffer dC = cuda::upload(C0);
          gemm.run(dA.as<bf16>(), dB.as<bf16>(), dC.as<float>(), s, nullptr);
          got = dense(cuda::download(dC.as<float>(), C0.size()), c.M, c.N, r.ldc);
        } else {
          cuda::DeviceBuffer dC(C0.size() * 2);
          gemm.run(dA.as<bf16>(), dB.as<bf16>(), dC.as<bf16>(), s, nullptr);
          got = dense(test::from_bits(cuda::download(dC.as<bf16>(), C0.size())), c.M, c.N, r.ldc);
        }
        EXPECT_LT(test::rel_err(got, want), out == cuda::GemmOut::f32 ? 1e-4 : 1e-2)
            << c.M << "x" << c.N << "x" << c.K << " ta=" << c.ta << " tb=" << c.tb << " acc=" << acc;
      }
  EXPECT_GT(gemm.cached_plans(), 0u);
  for (const std::string& line : gemm.describe()) std::printf("%s\n", line.c_str());
}

TEST(CudaGemm, SameKeySameBits) {
  LT_REQUIRE_GPU();
  cuda::Gemm gemm;
  const int64_t M = 512, N = 768, K = 4096;  // a weight-gradient shape where split-K pays
  const auto A = test::bf16_normal(size_t(K * M), 44), B = test::bf16_normal(size_t(K * N), 45);
  cuda::DeviceBuffer dA = cuda::upload(test::to_bits(A)), dB = cuda::upload(test::to_bits(B));
  std::vector<float> runs[2];
  for (auto& r : runs) {
    cuda::DeviceBuffer dC = cuda::upload(std::vector<float>(size_t(M * N), 1.0f));
    gemm.run(dA.as<bf16>(), dB.as<bf16>(), dC.as<float>(), {M, N, K, true, false, 0, 0, 0, cuda::GemmOut::f32, true},
             nullptr);
    r = cuda::download(dC.as<float>(), size_t(M * N));
  }
  EXPECT_TRUE(test::bitwise_equal(runs[0], runs[1]));
  EXPECT_EQ(gemm.cached_plans(), 1u);
}

}  // namespace
}  // namespace lt
