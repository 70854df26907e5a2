// Tensor, pipeline and data parallelism (with and without ZeRO-1) under mpirun give the same
// losses and final weights as one process — plus uneven pipeline cuts, GQA with tp > kv heads,
// a vocabulary not divisible by tp, tied embeddings across stages, and resuming a checkpoint
// under another layout.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "ckpt/checkpoint.h"
#include "ckpt/reshard.h"
#include "core/buffer.h"
#include "model/config.h"
#include "model/fixture.h"
#include "train/train_util.h"

namespace lt {
namespace {

namespace fs = std::filesystem;
using test::run_cmd;

struct TinyJob {
  fs::path dir;
  std::string model, data;
  TinyJob(const std::string& name, bool tied) : dir(test::scratch_dir(name)) {
    model = (dir / "config.json").string();
    data = (dir / "tokens.bin").string();
    // 5 layers (pp=3 cuts 2/2/1), 4 heads / 2 KV heads (tp=4 replicates KV), vocab 67 (odd).
    test::write_text(model, test::tiny_config(48, 5, 4, 2, 100, 67, tied));
    test::write_tokens(data, 40000, 67, 3);
  }
  std::string args(const std::string& run, int steps, const std::string& extra) const {
    return " train model=" + model + " data.path=" + data + " run.dir=" + (dir / run).string() +
           " train.seq_len=16 train.global_batch_size=8 train.micro_batch_size=2 optim.lr=3e-3 optim.warmup_steps=3" +
           " optim.decay_steps=20 train.steps=" + std::to_string(steps) + " " + extra;
  }
  test::CmdResult single(const std::string& run, int steps, const std::string& extra = "") const {
    return run_cmd(test::train_env(1) + test::binary_path() + args(run, steps, extra));
  }
  test::CmdResult mpi(int np, const std::string& run, int steps, const std::string& extra) const {
    return run_cmd(test::mpirun(np) + test::binary_path() + args(run, steps, extra));
  }
  std::vector<double> losses(const std::string& run) const {
    std::vector<double> out;
    for (const auto& j : test::read_steps((dir / run).string())) out.push_back(j["loss"].get<double>());
    return out;
  }
  // The final weights of a run, reassembled into one tp1/pp1 buffer whatever its layout.
  std::vector<float> weights(const std::string& run) const {
    CheckpointRef ref = open_checkpoint((dir / run / "checkpoints").string());
    ParamLayout layout(resolve_model_config(model), ShardSpec{});
    std::vector<float> w(layout.total());
    load_model(ref, layout, w.data());
    return w;
  }
};

void expect_same_run(const TinyJob& s, const std::string& ref, const std::string& run, double loss_tol,
                     double weight_tol) {
  auto a = s.losses(ref), b = s.losses(run);
  ASSERT_GE(a.size(), 12u) << ref;
  ASSERT_EQ(a.size(), b.size()) << run;
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(b[i], a[i], loss_tol * std::abs(a[i])) << run << " step " << i + 1;
  auto wa = s.weights(ref), wb = s.weights(run);
  ASSERT_EQ(wa.size(), wb.size());
  EXPECT_LT(test::norm_rel_err(wb.data(), wa.data(), wa.size()), weight_tol) << run << ": final weights";
}

struct Layout {
  const char* name;
  int np;
  std::string extra;
};

TEST(ParallelTrain, EveryLayoutMatchesOneProcess) {
  TinyJob s("parallel_layouts", false);
  auto ref = s.single("single", 20);
  ASSERT_EQ(ref.status, 0) << ref.output;
  std::vector<Layout> layouts = {
      {"tp2", 2, "parallel.tp=2"},
      {"pp2", 2, "parallel.pp=2"},
      {"dp2", 2, "parallel.zero1=false"},
      {"dp2_zero1", 2, "parallel.zero1=true"},
      {"tp2pp2", 4, "parallel.tp=2 parallel.pp=2"},
      {"tp2dp2_zero1", 4, "parallel.tp=2"},
      {"pp2dp2", 4, "parallel.pp=2 parallel.zero1=false"},
      {"pp3_uneven", 3, "parallel.pp=3"},
      {"tp4_kv_replicated", 4, "parallel.tp=4"},
      {"tp2pp2dp2_zero1", 8, "parallel.tp=2 parallel.pp=2"},
  };
  for (const auto& l : layouts) {
    auto r = s.mpi(l.np, l.name, 20, l.extra);
    ASSERT_EQ(r.status, 0) << l.name << "\n" << r.output;
    expect_same_run(s, "single", l.name, 1e-5, 1e-5);
  }
}

TEST(ParallelTrain, TiedEmbeddingsAcrossPipelineStages) {
  TinyJob s("parallel_tied", true);
  ASSERT_EQ(s.single("single", 12).status, 0);
  auto r = s.mpi(4, "tp2pp2", 12, "parallel.tp=2 parallel.pp=2");
  ASSERT_EQ(r.status, 0) << r.output;
  expect_same_run(s, "single", "tp2pp2", 1e-5, 1e-5);
}

TEST(ParallelTrain, CheckpointResumesUnderAnotherLayout) {
  TinyJob s("parallel_reshard", false);
  ASSERT_EQ(s.single("single", 12).status, 0);
  // Six steps at tp2 x pp2, then six more at dp2 (ZeRO-1) from that checkpoint.
  auto a = s.mpi(4, "moved", 6, "parallel.tp=2 parallel.pp=2");
  ASSERT_EQ(a.status, 0) << a.output;
  auto b = s.mpi(2, "moved", 12, "parallel.zero1=true");
  ASSERT_EQ(b.status, 0) << b.output;
  EXPECT_NE(b.output.find("saved at tp2 pp2 dp1, running at tp1 pp1 dp2"), std::string::npos) << b.output;
  expect_same_run(s, "single", "moved", 1e-5, 1e-5);
}

}  // namespace
}  // namespace lt
