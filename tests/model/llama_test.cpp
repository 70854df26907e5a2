// The model's forward and backward against the PyTorch reference fixtures.
#include "model/init.h"

#include <gtest/gtest.h>

#include <utility>

#include "core/buffer.h"
#include "model/fixture.h"
#include "model/stage_util.h"

namespace lt {
namespace {

class LlamaFixtureTest : public ::testing::TestWithParam<std::string> {};

TEST_P(LlamaFixtureTest, LogitsLossAndGradientsMatchPyTorch) {
  test::Fixture fx(GetParam());
  ParamLayout layout(fx.config, ShardSpec{});
  // Recomputation on / off; weights packed for the GEMMs (default) / read in place.
  for (auto [recompute, pack] : {std::pair{false, true}, {true, true}, {false, false}}) {
    StageOptions opt;
    opt.micro_batch = fx.B;
    opt.seq_len = fx.T;
    opt.recompute = recompute;
    opt.pack_weights = pack;
    test::TestStage stage = test::make_cpu_stage(layout, opt);
    fx.load_params(layout, stage->weights());
    const float* g = stage->grads();
    auto inputs = fx.i32("inputs");
    auto targets = fx.i32("targets");
    int count = 0;
    for (int t : targets) count += t >= 0;
    stage->forward(0, inputs.data(), targets.data(), 1.0f / float(count), true);
    const double loss_sum = stage->take_loss();
    // Logits before backward (backward does not touch the head's inputs).
    std::vector<float> logits(size_t(fx.B) * fx.T * fx.config.vocab_size);
    stage->logits(0, logits.data());
    stage->backward(0);
    auto ref_logits = fx.f32("logits");
    EXPECT_LT(test::norm_rel_err(logits.data(), ref_logits.data(), logits.size()), 1e-5) << "logits";
    float loss = float(loss_sum / count);
    EXPECT_NEAR(loss, fx.f32("loss")[0], 1e-5 * std::abs(fx.f32("loss")[0])) << "loss";
    for (const auto& p : layout.params()) {
      auto ref = fx.f32("grad." + p.name);
      ASSERT_EQ(ref.size(), p.numel) << p.name;
      EXPECT_LT(test::norm_rel_err(g + p.offset, ref.data(), p.numel), 1e-4)
          << "gradient of " << p.name << (recompute ? " (recompute)" : "") << (pack ? "" : " (unpacked)");
    }
  }
}

// rope_llama3 / rope_linear: rope_scaling, T beyond the original context (tools/make_rope_fixture.py).
INSTANTIATE_TEST_SUITE_P(Fixtures, LlamaFixtureTest,
                         ::testing::Values("gqa2", "gqa4_tied", "mqa", "rope_llama3", "rope_linear"));

TEST(LlamaInit, IndependentOfTensorParallelLayout) {
  LlamaConfig c = preset_config("stories260k");
  ParamLayout whole(c, ShardSpec{});
  Buffer w(whole.total() * 4);
  init_weights(whole, w.as<float>(), 7);
  for (int r = 0; r < 2; ++r) {
    ShardSpec s;
    s.tp = 2;
    s.tp_rank = r;
    ParamLayout part(c, s);
    Buffer p(part.total() * 4);
    init_weights(part, p.as<float>(), 7);
    for (const auto& info : part.params()) {
      const ParamInfo* full = whole.find(info.name);
      ASSERT_NE(full, nullptr);
      int64_t rows = info.shape[0], cols = info.shape.size() > 1 ? info.shape[1] : 1;
      int64_t gcols = full->shape.size() > 1 ? full->shape[1] : 1;
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < cols; ++j) {
          int64_t gi = info.split_dim == 0 ? info.split_begin + i : i;
          int64_t gj = info.split_dim == 1 ? info.split_begin + j : j;
          ASSERT_EQ(p.as<float>()[info.offset + i * cols + j], w.as<float>()[full->offset + gi * gcols + gj])
              << info.name;
        }
    }
  }
}

}  // namespace
}  // namespace lt
