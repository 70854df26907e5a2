// `llamatrain train` end to end on tiny models: determinism, gradient accumulation, bit-exact
// resume, continual pretraining from converted weights, and clear errors for bad input.
#include <gtest/gtest.h>

#include <filesystem>

#include "ckpt/checkpoint.h"
#include "ckpt/reshard.h"
#include "core/buffer.h"
#include "core/file.h"
#include "train/train_util.h"

namespace lt {
namespace {

namespace fs = std::filesystem;
using test::run_cmd;

struct TinyRun {
  fs::path dir;
  std::string model, data;
  explicit TinyRun(const std::string& name, bool tied = false) : dir(test::scratch_dir(name)) {
    model = (dir / "config.json").string();
    data = (dir / "tokens.bin").string();
    test::write_text(model, test::tiny_config(48, 3, 6, 2, 100, 67, tied));
    test::write_tokens(data, 20000, 67);
  }
  std::string train(const std::string& run, const std::string& extra, int threads = 2) const {
    return test::train_env(threads) + test::binary_path() + " train model=" + model + " data.path=" + data +
           " run.dir=" + (dir / run).string() + " train.seq_len=16 train.global_batch_size=8 optim.lr=3e-3 " +
           "optim.warmup_steps=2 optim.decay_steps=12 " + extra;
  }
};

std::vector<double> losses(const std::string& run_dir) {
  std::vector<double> out;
  for (const auto& j : test::read_steps(run_dir)) out.push_back(j["loss"].get<double>());
  return out;
}

std::string model_bytes(const std::string& ckpt_step_dir) {
  return read_file(ckpt_step_dir + "/model/tp0_pp0.safetensors");
}

TEST(TrainCli, SameSeedGivesIdenticalBits) {
  TinyRun t("train_determinism");
  for (const char* r : {"a", "b"}) {
    auto res = run_cmd(t.train(r, "train.steps=6 train.micro_batch_size=4"));
    ASSERT_EQ(res.status, 0) << res.output;
  }
  auto la = losses((t.dir / "a").string()), lb = losses((t.dir / "b").string());
  ASSERT_EQ(la.size(), 6u);
  EXPECT_EQ(la, lb);  // bitwise: doubles printed with full precision by nlohmann
  EXPECT_LT(la.back(), la.front());
  EXPECT_EQ(model_bytes((t.dir / "a/checkpoints/step_00000006").string()),
            model_bytes((t.dir / "b/checkpoints/step_00000006").string()));
}

TEST(TrainCli, GradientAccumulationEqualsOneLargeBatch) {
  TinyRun t("train_accumulation");
  // One micro-batch of 8 sequences vs 4 micro-batches of 2: the same global batch.
  ASSERT_EQ(run_cmd(t.train("one", "train.steps=5 train.micro_batch_size=8")).status, 0);
  ASSERT_EQ(run_cmd(t.train("four", "train.steps=5 train.micro_batch_size=2")).status, 0);
  auto a = losses((t.dir / "one").string()), b = losses((t.dir / "four").string());
  ASSERT_EQ(a.size(), 5u);
  ASSERT_EQ(b.size(), 5u);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-5 * std::abs(a[i])) << "step " << i + 1;
}

TEST(TrainCli, ResumeIsBitExact) {
  TinyRun t("train_resume");
  // Uninterrupted: 10 steps. Interrupted: 4 steps, then a second process resumes to 10.
  ASSERT_EQ(run_cmd(t.train("full", "train.steps=10 train.micro_batch_size=4")).status, 0);
  auto first = run_cmd(t.train("split", "train.steps=4 train.micro_batch_size=4"));
  ASSERT_EQ(first.status, 0) << first.output;
  auto second = run_cmd(t.train("split", "train.steps=10 train.micro_batch_size=4"));
  ASSERT_EQ(second.status, 0) << second.output;
  EXPECT_NE(second.output.find("loaded"), std::string::npos) << second.output;
  auto full = losses((t.dir / "full").string()), split = losses((t.dir / "split").string());
  ASSERT_EQ(split.size(), 10u);
  EXPECT_EQ(full, split);
  EXPECT_EQ(model_bytes((t.dir / "full/checkpoints/step_00000010").string()),
            model_bytes((t.dir / "split/checkpoints/step_00000010").string()));
  auto meta_full = read_file((t.dir / "full/checkpoints/step_00000010/optim/tp0_pp0_dp0.safetensors").string());
  auto meta_split = read_file((t.dir / "split/checkpoints/step_00000010/optim/tp0_pp0_dp0.safetensors").string());
  EXPECT_EQ(meta_full, meta_split) << "optimizer state differs after resume";
}

TEST(TrainCli, ContinualPretrainingStartsFromGivenWeights) {
  TinyRun t("train_init");
  ASSERT_EQ(run_cmd(t.train("base", "train.steps=3")).status, 0);
  // init = a checkpoint: fresh optimizer and schedule, weights from the checkpoint.
  auto r = run_cmd(t.train("cont", "train.steps=3 init=" + (t.dir / "base/checkpoints").string()));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("initialised weights from"), std::string::npos) << r.output;
  auto base = losses((t.dir / "base").string()), cont = losses((t.dir / "cont").string());
  ASSERT_EQ(cont.size(), 3u);
  EXPECT_LT(cont[0], base[0]) << "continued run should start below a random init";
}

TEST(TrainCli, Bf16TracksFp32AndResumesBitExactly) {
  TinyRun t("train_bf16");
  ASSERT_EQ(run_cmd(t.train("fp32", "train.steps=8 train.micro_batch_size=4")).status, 0);
  ASSERT_EQ(run_cmd(t.train("bf16", "train.steps=8 train.micro_batch_size=4 train.precision=bf16")).status, 0);
  auto a = losses((t.dir / "fp32").string()), b = losses((t.dir / "bf16").string());
  ASSERT_EQ(b.size(), 8u);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(b[i], a[i], 2e-2 * a[i]) << "step " << i + 1;
  EXPECT_NE(a, b) << "bf16 run identical to fp32: is bf16 really used?";
  // Resume: fp32 master weights and AdamW state are what the checkpoint holds, so a bf16 run
  // stopped and resumed gives the same bits as an uninterrupted one.
  ASSERT_EQ(run_cmd(t.train("bf16_split", "train.steps=3 optim.decay_steps=12 train.micro_batch_size=4 "
                                          "train.precision=bf16")).status, 0);
  ASSERT_EQ(run_cmd(t.train("bf16_split", "train.steps=8 train.micro_batch_size=4 train.precision=bf16")).status, 0);
  EXPECT_EQ(losses((t.dir / "bf16_split").string()), b);
  EXPECT_EQ(model_bytes((t.dir / "bf16/checkpoints/step_00000008").string()),
            model_bytes((t.dir / "bf16_split/checkpoints/step_00000008").string()));
}

TEST(TrainCli, NonFiniteGradientsFollowTheNanPolicy) {
  TinyRun t("train_nan");
  // skip: the update of step 3 is dropped, training goes on.
  auto skip = run_cmd("LT_FAULT_NAN_AT_STEP=3 " + t.train("skip", "train.steps=5 train.micro_batch_size=4 --json"));
  ASSERT_EQ(skip.status, 0) << skip.output;
  auto steps = test::read_steps((t.dir / "skip").string());
  ASSERT_EQ(steps.size(), 5u);
  for (size_t i = 0; i < steps.size(); ++i) {
    EXPECT_EQ(steps[i]["skipped"].get<bool>(), i == 2) << "step " << i + 1;
    EXPECT_EQ(steps[i]["grad_norm"].is_null(), i == 2) << "step " << i + 1;
  }
  EXPECT_NE(skip.output.find("\"nan_skipped\":1"), std::string::npos) << skip.output;
  // rollback: back to the step-4 checkpoint's weights and optimizer state, then on to the end.
  auto rb = run_cmd("LT_FAULT_NAN_AT_STEP=5 " +
                    t.train("rollback", "train.steps=7 train.micro_batch_size=4 checkpoint.every=2 train.nan_policy=rollback --json"));
  ASSERT_EQ(rb.status, 0) << rb.output;
  EXPECT_NE(rb.output.find("\"rollbacks\":1"), std::string::npos) << rb.output;
  EXPECT_NE(rb.output.find("loaded"), std::string::npos) << rb.output;
  auto rsteps = test::read_steps((t.dir / "rollback").string());
  ASSERT_EQ(rsteps.size(), 8u);  // step 5 twice: the poisoned one, then again after the rollback
  EXPECT_EQ(rsteps[4]["step"].get<int>(), 5);
  EXPECT_TRUE(rsteps[4]["skipped"].get<bool>());
  EXPECT_EQ(rsteps[5]["step"].get<int>(), 5);
  EXPECT_FALSE(rsteps[5]["skipped"].get<bool>());
  // fail: a clear error and a non-zero exit.
  auto fl = run_cmd("LT_FAULT_NAN_AT_STEP=2 " + t.train("fail", "train.steps=4 train.nan_policy=fail"));
  EXPECT_EQ(fl.status, 1) << fl.output;
  EXPECT_NE(fl.output.find("train.nan_policy = fail"), std::string::npos) << fl.output;
}

struct BadCase {
  const char* name;
  std::string extra;
  std::string expect;
};

TEST(TrainCli, BadInputGivesClearErrors) {
  TinyRun t("train_bad");
  auto bad_cfg = (t.dir / "bad_heads.json").string();
  test::write_text(bad_cfg, test::tiny_config(50, 2, 6, 2, 64, 67, false));
  auto bad_kv = (t.dir / "bad_kv.json").string();
  test::write_text(bad_kv, test::tiny_config(48, 2, 6, 4, 64, 67, false));
  auto big_hd = (t.dir / "big_head_dim.json").string();  // 1040 / 2 heads = head dim 520
  test::write_text(big_hd, test::tiny_config(1040, 1, 2, 2, 64, 67, false));
  auto empty = (t.dir / "empty.bin").string();
  test::write_text(empty, "");
  auto short_file = (t.dir / "short.bin").string();
  test::write_tokens(short_file, 10, 67);
  auto big_ids = (t.dir / "big.bin").string();
  test::write_tokens(big_ids, 2000, 1000);
  std::vector<BadCase> cases = {
      {"unknown key", "train.step=3", "unknown config key 'train.step' (did you mean 'train.steps'?)"},
      {"bad value", "train.steps=3 optim.lr=fast", "config key 'optim.lr': expected a number"},
      {"warmup > steps", "train.steps=3 optim.warmup_steps=5", "optim.warmup_steps"},
      {"heads", "train.steps=3 model=" + bad_cfg, "num_attention_heads (6) must divide hidden_size (50)"},
      {"kv heads", "train.steps=3 model=" + bad_kv, "num_key_value_heads (4) must divide num_attention_heads (6)"},
      {"head dim", "train.steps=3 model=" + big_hd, "hidden_size/num_attention_heads = 520 is above the 256"},
      {"empty data", "train.steps=3 data.path=" + empty, "empty.bin"},
      {"short data", "train.steps=3 data.path=" + short_file, "short.bin"},
      {"ids >= vocab", "train.steps=3 data.path=" + big_ids, "vocab_size is 67"},
      {"missing data", "train.steps=3 data.path=/nonexistent/tokens.bin", "/nonexistent/tokens.bin"},
      {"unwritable run dir", "train.steps=3 run.dir=/proc/llamatrain_run", "run.dir '/proc/llamatrain_run'"},
      {"batch", "train.steps=3 train.micro_batch_size=3", "is not a multiple of micro-batch size 3"},
      {"sequence parallel rows", "train.steps=3 parallel.tp=2 parallel.sequence_parallel=true train.seq_len=15",
       "config key 'parallel.sequence_parallel': train.micro_batch_size x train.seq_len = 1 x 15 = 15 tokens per "
       "micro-batch must be divisible by parallel.tp = 2"},
  };
  for (const auto& c : cases) {
    // Later key=value arguments override earlier ones.
    auto r = run_cmd(t.train("bad", c.extra));
    EXPECT_EQ(r.status, 1) << c.name << ": " << r.output;
    EXPECT_NE(r.output.find(c.expect), std::string::npos) << c.name << ": " << r.output;
    EXPECT_NE(r.output.find("error: "), std::string::npos) << c.name;
  }
}

}  // namespace
}  // namespace lt
