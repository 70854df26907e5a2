// The CPU stage against the PyTorch fixtures at real head sizes (tools/make_headdim_fixtures.py):
// head dims 64 (GQA group 4) and 128 (GQA group 8, tied embeddings), sequences of 80 and 100
// tokens (not multiples of the 64-token attention tile), fp32 and bf16 compute, with and without
// recomputation: logits, loss, every gradient, and ten AdamW steps. The weights are not stored
// but computed from the fixture's hash formula; gradients and final weights are stored as sums
// of squares, ±1 projections and sampled elements (see the script and tests/fixtures/README.md).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "model/headdim_fixture.h"
#include "model/stage_util.h"
#include "train/optimizer.h"
#include "train/pipeline.h"
#include "train/schedule.h"

namespace lt {
namespace {

using test::compare;
using test::Errors;
using test::init_from_hash;

TEST(HeadDimFixture, HashIsThePublishedOne) {
  EXPECT_EQ(test::fnv1a64("a"), 0xAF63DC4C8601EC8Cull);
  EXPECT_EQ(test::splitmix64(0), 0xE220A8397B1DCDAFull);
}

struct Tolerances {
  double logits, loss, grad_sq, grad_proj, grad_samp;
};
// fp32 against the float64 reference: fp32 rounding only (measured on both fixtures: logits
// ≤ 8e-7, loss ≤ 6e-8, gradient Σg² ≤ 5e-7, projections ≤ 4.3e-6, samples ≤ 6.2e-6). bf16
// compute (8 mantissa bits; measured: logits ≤ 4.9e-3, loss ≤ 2.6e-5, Σg² ≤ 2.3e-3,
// projections ≤ 2.9e-2, samples ≤ 7.1e-2): about 3x margin.
constexpr Tolerances kFp32{1e-5, 1e-5, 2e-5, 1e-4, 1e-4};
constexpr Tolerances kBf16{1.5e-2, 1e-3, 1e-2, 7.5e-2, 0.2};

class HeadDimFixtureTest : public ::testing::TestWithParam<std::string> {};

TEST_P(HeadDimFixtureTest, LogitsLossAndGradientsMatchPyTorch) {
  test::Fixture fx(GetParam());
  ParamLayout layout(fx.config, ShardSpec{});
  const auto inputs = fx.i32("inputs"), targets = fx.i32("targets");
  int count = 0;
  for (int t : targets) count += t >= 0;
  for (Precision prec : {Precision::fp32, Precision::bf16})
    for (bool recompute : {false, true}) {
      const Tolerances& tol = prec == Precision::bf16 ? kBf16 : kFp32;
      StageOptions opt;
      opt.micro_batch = fx.B;
      opt.seq_len = fx.T;
      opt.recompute = recompute;
      opt.precision = prec;
      test::TestStage stage = test::make_cpu_stage(layout, opt);
      init_from_hash(layout, stage->weights());
      stage->refresh_weights();
      stage->zero_grads();
      stage->forward(0, inputs.data(), targets.data(), 1.0f / float(count), true);
      const double loss = stage->take_loss() / count;
      std::vector<float> logits(size_t(fx.B) * fx.T * fx.config.vocab_size);
      stage->logits(0, logits.data());
      stage->backward(0);
      const std::string what = std::string(enum_name(prec)) + (recompute ? " recompute" : "");
      const auto ref_logits = fx.f32("logits");
      const double el = test::norm_rel_err(logits.data(), ref_logits.data(), logits.size());
      EXPECT_LT(el, tol.logits) << what;
      EXPECT_NEAR(loss, fx.f32("loss")[0], tol.loss * fx.f32("loss")[0]) << what;
      Errors worst;
      for (const auto& p : layout.params()) {
        const Errors e = compare(fx, "g", p.name, stage->grads() + p.offset, p.numel);
        EXPECT_LT(e.sq, tol.grad_sq) << "gradient of " << p.name << ", " << what;
        EXPECT_LT(e.proj, tol.grad_proj) << "gradient of " << p.name << ", " << what;
        EXPECT_LT(e.samp, tol.grad_samp) << "gradient of " << p.name << ", " << what;
        worst.max_with(e);
      }
      std::printf("%s %s: logits %.2e, loss %.2e, gradients: sq %.2e proj %.2e samples %.2e\n", GetParam().c_str(),
                  what.c_str(), el, std::fabs(loss / fx.f32("loss")[0] - 1), worst.sq, worst.proj, worst.samp);
    }
}

// Ten AdamW steps (warm-up + cosine, clipping, no decay on norms) through the pipeline driver and
// the sharded optimizer, in fp32: per-step losses, gradient norms, learning rates, final weights.
TEST_P(HeadDimFixtureTest, TenAdamWStepsMatchPyTorch) {
  test::Fixture fx(GetParam());
  const auto& o = fx.optim;
  ParamLayout layout(fx.config, ShardSpec{});
  StageOptions so;
  so.micro_batch = fx.B;
  so.seq_len = fx.T;
  test::TestStage stage = test::make_cpu_stage(layout, so);
  ShardedAdamW opt(layout, {o["beta1"], o["beta2"], o["eps"], o["weight_decay"], true}, 0, 1, false, *stage.backend);
  float *w = stage->weights(), *g = stage->grads();
  init_from_hash(layout, w);
  stage->refresh_weights();
  PipelineSchedule pipe(*stage.stage, nullptr, 1);
  LrSchedule sched{ScheduleKind::cosine, o["max_lr"], o["min_lr"], o["warmup_steps"], o["total_steps"]};
  const auto inputs = fx.i32("inputs"), targets = fx.i32("targets");
  int count = 0;
  for (int t : targets) count += t >= 0;
  const auto ref_losses = fx.f32("train_losses"), ref_norms = fx.f32("grad_norms"), ref_lrs = fx.f32("lrs");
  const double clip = o["grad_clip"];
  for (int s = 0; s < 10; ++s) {
    stage->zero_grads();
    const double loss = pipe.train(inputs.data(), targets.data(), 1.0f / float(count)) / count;
    const double norm = std::sqrt(opt.range_sum_squares(g));
    const double lr = sched.at(s);
    EXPECT_NEAR(loss, ref_losses[s], 1e-4 * ref_losses[s]) << "loss at step " << s;
    EXPECT_NEAR(norm, ref_norms[s], 1e-4 * ref_norms[s]) << "grad norm at step " << s;
    EXPECT_NEAR(lr, ref_lrs[s], 1e-6 * ref_lrs[s]) << "lr at step " << s;
    const double c = clip / (norm + 1e-6);
    opt.update(w, g, lr, c < 1.0 ? float(c) : 1.0f, s + 1);
    stage->refresh_weights();
  }
  Errors worst;
  for (const auto& p : layout.params()) {
    const Errors e = compare(fx, "f", p.name, w + p.offset, p.numel);
    EXPECT_LT(e.proj, 1e-4) << "final " << p.name;
    EXPECT_LT(e.samp, 1e-3) << "final " << p.name;
    worst.max_with(e);
  }
  std::printf("%s: final weights: sq %.2e proj %.2e samples %.2e\n", GetParam().c_str(), worst.sq, worst.proj,
              worst.samp);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, HeadDimFixtureTest, ::testing::Values("hd64_gqa4", "hd128_gqa8"));

}  // namespace
}  // namespace lt
