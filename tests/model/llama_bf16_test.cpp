// Mixed precision (StageOptions::precision = bf16) against the fp32 PyTorch fixtures with bf16
// tolerances, per tensor (llm.c style): the norm-wise relative error ||a − b|| / ||b|| and the
// worst element |a − b| <= atol + rtol·max|b|. bf16 keeps 8 mantissa bits (relative rounding
// 2^-9 ≈ 2e-3 per operand), so a GEMM output is off by ~2e-3·√(terms)/√(terms) ≈ 3e-3 in norm;
// errors compound through the layers and the backward, hence the budgets below
// (docs/PERFORMANCE.md, "bf16 numerics").
#include <gtest/gtest.h>

#include <cmath>

#include "core/buffer.h"
#include "model/fixture.h"
#include "model/stage_util.h"

namespace lt {
namespace {

// Measured on the three fixtures: logits ≤ 3.4e-3, loss ≤ 4e-5, gradients ≤ 7.4e-3 (≈ 3× margin).
constexpr double kLogitsNormTol = 1e-2, kLossRelTol = 1e-3, kGradNormTol = 2.5e-2;
constexpr double kElemAtol = 1e-6, kElemRtol = 0.1;  // worst element, relative to the tensor's max |b|

double max_abs_err_scaled(const float* a, const float* b, size_t n) {
  double mx = 0, worst = 0;
  for (size_t i = 0; i < n; ++i) mx = std::max(mx, double(std::fabs(b[i])));
  for (size_t i = 0; i < n; ++i) worst = std::max(worst, std::fabs(double(a[i]) - b[i]) - kElemAtol);
  return worst / (mx + 1e-30);
}

class LlamaBf16Test : public ::testing::TestWithParam<std::string> {};

TEST_P(LlamaBf16Test, MatchesFp32FixturesWithinBf16Tolerance) {
  test::Fixture fx(GetParam());
  ParamLayout layout(fx.config, ShardSpec{});
  for (bool recompute : {false, true}) {
    StageOptions opt;
    opt.micro_batch = fx.B;
    opt.seq_len = fx.T;
    opt.recompute = recompute;
    opt.precision = Precision::bf16;
    test::TestStage stage = test::make_cpu_stage(layout, opt);
    fx.load_params(layout, stage->weights());
    stage->refresh_weights();
    const float* g = stage->grads();
    auto inputs = fx.i32("inputs");
    auto targets = fx.i32("targets");
    int count = 0;
    for (int t : targets) count += t >= 0;
    stage->forward(0, inputs.data(), targets.data(), 1.0f / float(count), true);
    const double loss_sum = stage->take_loss();
    std::vector<float> logits(size_t(fx.B) * fx.T * fx.config.vocab_size);
    stage->logits(0, logits.data());
    stage->backward(0);
    auto ref_logits = fx.f32("logits");
    EXPECT_LT(test::norm_rel_err(logits.data(), ref_logits.data(), logits.size()), kLogitsNormTol);
    EXPECT_LT(max_abs_err_scaled(logits.data(), ref_logits.data(), logits.size()), kElemRtol);
    const float ref_loss = fx.f32("loss")[0];
    EXPECT_NEAR(float(loss_sum / count), ref_loss, kLossRelTol * std::abs(ref_loss));
    double worst = 0;
    for (const auto& p : layout.params()) {
      auto ref = fx.f32("grad." + p.name);
      const float* a = g + p.offset;
      const double e = test::norm_rel_err(a, ref.data(), p.numel);
      worst = std::max(worst, e);
      EXPECT_LT(e, kGradNormTol) << "gradient of " << p.name << (recompute ? " (recompute)" : "");
      EXPECT_LT(max_abs_err_scaled(a, ref.data(), p.numel), kElemRtol) << "gradient of " << p.name;
    }
    RecordProperty("worst_grad_norm_rel_err", std::to_string(worst));
    std::printf("%s%s: logits %.2e, loss %.2e, worst gradient %.2e\n", GetParam().c_str(),
                recompute ? " (recompute)" : "", test::norm_rel_err(logits.data(), ref_logits.data(), logits.size()),
                std::fabs(loss_sum / count - ref_loss) / ref_loss, worst);
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, LlamaBf16Test, ::testing::Values("gqa2", "gqa4_tied", "mqa"));

}  // namespace
}  // namespace lt
