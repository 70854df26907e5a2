// checkpoint.async: checkpoints written in the background hold the same bytes as synchronous
// ones (so the snapshot is the state between the right two steps, on every rank), training goes
// on while they are written, and the last save is complete when the process exits.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <thread>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/file.h"
#include "core/timer.h"
#include "train/async_checkpoint.h"
#include "train/train_util.h"

namespace lt {
namespace {

namespace fs = std::filesystem;
using test::run_cmd;

struct Job : test::TinyFiles {
  explicit Job(const std::string& name) : TinyFiles(name, test::tiny_config(48, 4, 4, 2, 100, 67, false), 20000, 67, 5) {}
  std::string args(const std::string& run, const std::string& extra) const {
    return " train model=" + model + " data.path=" + data + " run.dir=" + (dir / run).string() +
           " train.seq_len=16 train.global_batch_size=8 train.micro_batch_size=2 optim.warmup_steps=1 " + extra;
  }
};

// Every file of every checkpoint step of two runs, byte for byte.
void expect_same_checkpoints(const fs::path& a, const fs::path& b, const std::vector<int>& steps) {
  for (int s : steps) {
    const fs::path da = a / "checkpoints" / fmt::format("step_{:08d}", s), db = b / "checkpoints" / fmt::format("step_{:08d}", s);
    ASSERT_TRUE(fs::exists(da / "DONE")) << da;
    ASSERT_TRUE(fs::exists(db / "DONE")) << db;
    int files = 0;
    for (const auto& e : fs::recursive_directory_iterator(da)) {
      if (!e.is_regular_file() || !e.path().string().ends_with(".safetensors")) continue;
      const fs::path rel = fs::relative(e.path(), da);
      EXPECT_EQ(read_file(e.path().string()), read_file((db / rel).string())) << rel << " of step " << s;
      ++files;
    }
    EXPECT_GE(files, 4) << "step " << s;
  }
}

TEST(AsyncCheckpoint, SameBytesAsSynchronousOnEveryRank) {
  Job j("async_ckpt_bytes");
  // pp2 x dp2 with ZeRO-1: four ranks, each writing an optimizer part, two writing model shards.
  const std::string common = "train.steps=6 checkpoint.every=2 checkpoint.keep=10 parallel.pp=2 ";
  auto s = run_cmd(test::mpirun(4) + test::binary_path() + j.args("sync", common + "checkpoint.async=false"));
  ASSERT_EQ(s.status, 0) << s.output;
  auto a = run_cmd(test::mpirun(4) + test::binary_path() + j.args("async", common + "checkpoint.async=true"));
  ASSERT_EQ(a.status, 0) << a.output;
  EXPECT_NE(a.output.find("files written in the background"), std::string::npos) << a.output;
  expect_same_checkpoints(j.dir / "sync", j.dir / "async", {2, 4, 6});
}

// With every save held back 1.5 s after its shards are written (the test hook), the steps after
// a save run while it is still being finalised, and the step loop never waits for that delay
// except where the next save must wait for the previous one; the last checkpoint is complete
// when the process exits.
TEST(AsyncCheckpoint, TrainingContinuesWhileTheCheckpointIsWritten) {
  Job j("async_ckpt_overlap");
  auto r = run_cmd("LT_FAULT_SAVE_DELAY_S=1.5 " + test::train_env(1) + test::binary_path() +
                   j.args("run", "train.steps=3 checkpoint.every=2 --json"));
  ASSERT_EQ(r.status, 0) << r.output;
  const size_t saved2 = r.output.find("checkpoint saved: " + (j.dir / "run/checkpoints/step_00000002").string());
  const size_t step3 = r.output.find("step 3/3");
  ASSERT_NE(saved2, std::string::npos) << r.output;
  ASSERT_NE(step3, std::string::npos) << r.output;
  EXPECT_LT(step3, saved2) << "step 3 should run while step 2's checkpoint is still being written\n" << r.output;
  EXPECT_TRUE(fs::exists(j.dir / "run/checkpoints/step_00000003/DONE"));
  EXPECT_EQ(read_file((j.dir / "run/checkpoints/latest").string()), "step_00000003\n");
  // The summary's stall: the save of step 2 copied the state (milliseconds); the save of step 3
  // waited for step 2's (at most the 1.5 s delay).
  const auto summary = nlohmann::json::parse(r.output.substr(r.output.rfind("{\"")));
  EXPECT_LT(summary["checkpoint_stall_s"].get<double>(), 2.0);
  EXPECT_EQ(summary["checkpoints_written"].get<int>(), 2);
}

// A writer destroyed while rank 0 waits for another rank's files (the process unwinding on an
// error, that rank dead) gives up at once instead of after checkpoint.peer_timeout_s, and leaves
// the step unfinished: a .tmp, no DONE.
TEST(AsyncCheckpoint, AWriterDestroyedMidWaitAbandonsTheStep) {
  const fs::path root = test::scratch_dir("async_ckpt_cancel");
  CheckpointJob job;
  job.root = root.string();
  job.tmp_dir = (root / "step_00000003.tmp").string();
  fs::create_directories(job.tmp_dir);
  CheckpointMeta m;
  m.step = 3;
  m.tp = 1;
  m.pp = 2;  // expects tp0_pp0 and tp0_pp1: nobody writes them
  job.meta = m;
  job.keep_last = 3;
  job.peer_timeout_s = 600;
  Timer t;
  {
    AsyncCheckpointWriter w;
    w.start(job);  // no shards of its own: straight to waiting for the others
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    EXPECT_TRUE(w.busy());
  }
  EXPECT_LT(t.seconds(), 30.0);
  EXPECT_TRUE(fs::exists(job.tmp_dir));
  EXPECT_FALSE(fs::exists(root / "step_00000003" / "DONE"));
  EXPECT_FALSE(fs::exists(root / "step_00000003"));
}

}  // namespace
}  // namespace lt
