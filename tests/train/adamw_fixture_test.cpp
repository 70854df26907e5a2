// Ten AdamW steps (warm-up + cosine, clipping, no decay on norms) on the PyTorch fixtures:
// the per-step losses, gradient norms, learning rates and the final weights must match.
#include <gtest/gtest.h>

#include <cmath>

#include "core/buffer.h"
#include "model/fixture.h"
#include "model/stage_util.h"
#include "train/optimizer.h"
#include "train/pipeline.h"
#include "train/schedule.h"

namespace lt {
namespace {

class AdamWFixtureTest : public ::testing::TestWithParam<std::string> {};

TEST_P(AdamWFixtureTest, TenStepsMatchPyTorch) {
  test::Fixture fx(GetParam());
  const auto& o = fx.optim;
  ParamLayout layout(fx.config, ShardSpec{});
  AdamWConfig ac{o["beta1"], o["beta2"], o["eps"], o["weight_decay"], true};
  StageOptions so;
  so.micro_batch = fx.B;
  so.seq_len = fx.T;
  test::TestStage stage = test::make_cpu_stage(layout, so);
  ShardedAdamW opt(layout, ac, 0, 1, false, *stage.backend);
  float *w = stage->weights(), *g = stage->grads();
  fx.load_params(layout, w);
  PipelineSchedule pipe(*stage.stage, nullptr, 1);
  LrSchedule sched{ScheduleKind::cosine, o["max_lr"], o["min_lr"], o["warmup_steps"], o["total_steps"]};
  auto inputs = fx.i32("inputs"), targets = fx.i32("targets");
  int count = 0;
  for (int t : targets) count += t >= 0;
  auto ref_losses = fx.f32("train_losses"), ref_norms = fx.f32("grad_norms"), ref_lrs = fx.f32("lrs");
  const double clip = o["grad_clip"];
  for (int s = 0; s < 10; ++s) {
    stage->zero_grads();
    double loss = pipe.train(inputs.data(), targets.data(), 1.0f / float(count)) / count;
    double norm = std::sqrt(opt.range_sum_squares(g));
    double lr = sched.at(s);
    EXPECT_NEAR(loss, ref_losses[s], 1e-5 * ref_losses[s]) << "loss at step " << s;
    EXPECT_NEAR(norm, ref_norms[s], 1e-4 * ref_norms[s]) << "grad norm at step " << s;
    EXPECT_NEAR(lr, ref_lrs[s], 1e-6 * ref_lrs[s]) << "lr at step " << s;
    double c = clip / (norm + 1e-6);
    opt.update(w, g, lr, c < 1.0 ? float(c) : 1.0f, s + 1);
    stage->refresh_weights();
  }
  for (const auto& p : layout.params()) {
    auto ref = fx.f32("final." + p.name);
    EXPECT_LT(test::norm_rel_err(w + p.offset, ref.data(), p.numel), 1e-4) << "final " << p.name;
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, AdamWFixtureTest,
                         ::testing::Values("gqa2", "gqa4_tied", "mqa", "rope_llama3", "rope_linear"));

TEST(LrSchedule, WarmupCosineLinearConstant) {
  LrSchedule c{ScheduleKind::cosine, 1.0, 0.1, 2, 12};
  EXPECT_DOUBLE_EQ(c.at(0), 0.5);
  EXPECT_DOUBLE_EQ(c.at(1), 1.0);
  EXPECT_DOUBLE_EQ(c.at(2), 1.0);
  EXPECT_NEAR(c.at(7), 0.55, 1e-12);
  EXPECT_DOUBLE_EQ(c.at(12), 0.1);
  EXPECT_DOUBLE_EQ(c.at(100), 0.1);
  LrSchedule l{ScheduleKind::linear, 1.0, 0.0, 0, 10};
  EXPECT_NEAR(l.at(5), 0.5, 1e-12);
  LrSchedule k{ScheduleKind::constant, 1.0, 0.0, 4, 10};
  EXPECT_DOUBLE_EQ(k.at(1), 0.5);
  EXPECT_DOUBLE_EQ(k.at(50), 1.0);
}

}  // namespace
}  // namespace lt
