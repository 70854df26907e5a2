// Interleaved 1F1B (parallel.virtual_stages): every layout trains exactly as one process does
// (fp32, losses and final weights within 1e-5), with data, tensor and sequence parallelism, a
// tied embedding across the ring, recomputation and evaluation; its checkpoints are those of a
// v·pp-stage pipeline and resume at another v (and back).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "ckpt/checkpoint.h"
#include "ckpt/reshard.h"
#include "model/config.h"
#include "model/fixture.h"
#include "train/run_compare.h"
#include "train/train_util.h"

namespace lt {
namespace {

namespace fs = std::filesystem;
using test::run_cmd;

// 8 layers, 4 heads / 2 KV heads, vocabulary 67; 8 sequences of 16 tokens per step in
// micro-batches of 2 (4 per replica at dp 1, 2 at dp 2).
struct Job : test::TinyFiles {
  Job(const std::string& name, bool tied) : TinyFiles(name, test::tiny_config(48, 8, 4, 2, 100, 67, tied), 40000, 67, 3) {}
  std::string args(const std::string& run, int steps, const std::string& extra) const {
    return " train model=" + model + " data.path=" + data + " run.dir=" + (dir / run).string() +
           " train.seq_len=16 train.global_batch_size=8 train.micro_batch_size=2 optim.lr=3e-3 optim.warmup_steps=2"
           " optim.decay_steps=12 train.steps=" + std::to_string(steps) + " " + extra;
  }
  test::CmdResult single(const std::string& run, int steps, const std::string& extra = "") const {
    return run_cmd(test::train_env(1) + test::binary_path() + args(run, steps, extra));
  }
  test::CmdResult mpi(int np, const std::string& run, int steps, const std::string& extra) const {
    return run_cmd(test::mpirun(np) + test::binary_path() + args(run, steps, extra));
  }
  void expect_same(const std::string& ref, const std::string& run, const char* key = "loss") const {
    auto a = test::run_metric(dir / ref, key), b = test::run_metric(dir / run, key);
    ASSERT_GE(a.size(), 2u) << ref;
    ASSERT_EQ(a.size(), b.size()) << run;
    for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(b[i], a[i], 1e-5 * std::abs(a[i])) << run << " " << key << " " << i;
    if (std::string(key) != "loss") return;
    auto wa = test::final_weights(model, dir / ref), wb = test::final_weights(model, dir / run);
    ASSERT_EQ(wa.size(), wb.size());
    EXPECT_LT(test::norm_rel_err(wb.data(), wa.data(), wa.size()), 1e-5) << run << ": final weights";
  }
};

TEST(InterleavedTrain, EveryLayoutMatchesOneProcess) {
  Job j("interleaved_layouts", false);
  const std::string eval = "data.valid_path=" + j.data + " eval.every=5 eval.batches=3 ";
  ASSERT_EQ(j.single("single", 10, eval).status, 0);
  struct Case {
    const char* name;
    int np;
    std::string extra;
  };
  const std::vector<Case> cases = {
      {"pp2_v2", 2, "parallel.pp=2 parallel.virtual_stages=2 " + eval},
      {"pp2_v4", 2, "parallel.pp=2 parallel.virtual_stages=4"},
      {"pp4_v2", 4, "parallel.pp=4 parallel.virtual_stages=2 " + eval},
      {"pp2_v2_dp2", 4, "parallel.pp=2 parallel.virtual_stages=2"},
      {"tp2_pp2_v2_sp", 4, "parallel.tp=2 parallel.pp=2 parallel.virtual_stages=2 parallel.sequence_parallel=true"},
      {"pp2_v2_recompute_even", 2, "parallel.pp=2 parallel.virtual_stages=2 train.recompute=true parallel.stage_starts=even"},
  };
  for (const Case& c : cases) {
    auto r = j.mpi(c.np, c.name, 10, c.extra);
    ASSERT_EQ(r.status, 0) << c.name << "\n" << r.output;
    EXPECT_NE(r.output.find("chunks per rank"), std::string::npos) << r.output;
    j.expect_same("single", c.name);
  }
  j.expect_same("single", "pp2_v2", "eval_loss");
  j.expect_same("single", "pp4_v2", "eval_loss");
}

TEST(InterleavedTrain, TiedEmbeddingAcrossTheRing) {
  Job j("interleaved_tied", true);
  ASSERT_EQ(j.single("single", 8).status, 0);
  auto r = j.mpi(2, "pp2_v2", 8, "parallel.pp=2 parallel.virtual_stages=2");
  ASSERT_EQ(r.status, 0) << r.output;
  j.expect_same("single", "pp2_v2");
}

// A checkpoint of an interleaved run is the checkpoint of a v·pp-stage pipeline; training goes
// on at another v (and at v 1) from it as if uninterrupted.
TEST(InterleavedTrain, CheckpointsResumeAtAnotherV) {
  Job j("interleaved_resume", false);
  ASSERT_EQ(j.single("single", 12).status, 0);
  auto a = j.mpi(2, "moved", 4, "parallel.pp=2 parallel.virtual_stages=2");
  ASSERT_EQ(a.status, 0) << a.output;
  const CheckpointMeta m = open_checkpoint((j.dir / "moved/checkpoints").string()).meta;
  EXPECT_EQ(m.pp, 4);
  EXPECT_EQ(m.stage_starts.size(), 4u);
  EXPECT_TRUE(fs::exists(j.dir / "moved/checkpoints/step_00000004/model/tp0_pp3.safetensors"));
  auto b = j.mpi(2, "moved", 8, "parallel.pp=2");
  ASSERT_EQ(b.status, 0) << b.output;
  EXPECT_NE(b.output.find("saved at tp1 pp4 dp1, running at tp1 pp2 dp1"), std::string::npos) << b.output;
  auto c = j.mpi(2, "moved", 12, "parallel.pp=2 parallel.virtual_stages=4");
  ASSERT_EQ(c.status, 0) << c.output;
  EXPECT_NE(c.output.find("running at tp1 pp2 v4 dp1"), std::string::npos) << c.output;
  j.expect_same("single", "moved");
}

TEST(InterleavedTrain, BadLayoutsSayWhy) {
  Job j("interleaved_bad", false);
  // 8 sequences / micro-batch 2 = 4 micro-batches, not a multiple of pp 3.
  auto r = j.mpi(3, "pp3", 4, "parallel.pp=3 parallel.virtual_stages=2");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("must be a multiple of parallel.pp = 3"), std::string::npos) << r.output;
  // 4 ranks x 3 chunks = 12 chunks of 8 layers.
  r = j.mpi(4, "pp4v3", 4, "parallel.pp=4 parallel.virtual_stages=3");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("more than the model's 8 layers"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace lt
