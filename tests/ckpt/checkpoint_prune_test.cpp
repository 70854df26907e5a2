// Checkpoint retention: the directory being deleted loses DONE before anything else, so a kill
// at any moment never leaves a DONE-marked directory with files missing (observed with
// inotify: the order in which the kernel saw the removals).
#include <gtest/gtest.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "ckpt/checkpoint.h"
#include "ops/ops_test_util.h"
#include "test_util.h"

namespace lt {
namespace {

namespace fs = std::filesystem;

// Removals seen under the watched directories, in order, as paths relative to `root`.
class RemovalLog {
 public:
  explicit RemovalLog(fs::path root) : fd_(inotify_init1(IN_NONBLOCK)), root_(std::move(root)) {}
  ~RemovalLog() { close(fd_); }
  void watch(const fs::path& dir) {
    int wd = inotify_add_watch(fd_, dir.c_str(), IN_DELETE);
    ASSERT_GE(wd, 0) << dir;
    names_[wd] = fs::relative(dir, root_).string();
    for (const auto& e : fs::directory_iterator(dir))
      if (e.is_directory()) watch(e.path());
  }
  std::vector<std::string> read() {
    std::vector<std::string> out;
    alignas(inotify_event) char buf[1 << 16];
    for (;;) {
      ssize_t n = ::read(fd_, buf, sizeof buf);
      if (n <= 0) break;
      for (char* p = buf; p < buf + n;) {
        auto* ev = reinterpret_cast<inotify_event*>(p);
        if (ev->len) out.push_back(names_[ev->wd] + "/" + ev->name);
        p += sizeof(inotify_event) + ev->len;
      }
    }
    return out;
  }

 private:
  int fd_;
  fs::path root_;
  std::map<int, std::string> names_;
};

TEST(CheckpointPrune, DoneIsTheFirstThingRemoved) {
  fs::path root = test::scratch_dir("ckpt_prune_done_first");
  for (int s : {1, 2, 3}) test::save_tiny_checkpoint(root, s);
  RemovalLog log(root);
  log.watch(root / "step_00000001");
  log.watch(root / "step_00000002");
  // A fourth save with keep 2: the retention of finalize_checkpoint deletes steps 1 and 2.
  LlamaConfig c = open_checkpoint(root.string(), 3).meta.config;
  ParamLayout layout(c, ShardSpec{});
  std::vector<float> w(layout.total(), 4.0f);
  CheckpointMeta m;
  m.step = 4;
  save_checkpoint(root.string(), m, {ShardState{&layout, w.data()}}, DType::F32, 2);
  EXPECT_FALSE(fs::exists(root / "step_00000001"));
  EXPECT_FALSE(fs::exists(root / "step_00000002"));
  std::vector<std::string> removed = log.read();
  for (std::string step : {"step_00000001/", "step_00000002/"}) {
    auto first = std::find_if(removed.begin(), removed.end(), [&](const std::string& r) { return r.rfind(step, 0) == 0; });
    ASSERT_NE(first, removed.end()) << step;
    EXPECT_EQ(*first, step + "DONE") << "the first removal under " << step << " was " << *first;
  }
  EXPECT_EQ(open_checkpoint(root.string()).meta.step, 4);
}

TEST(CheckpointPrune, LeftoverWithoutDoneIsRemovedNextTime) {
  fs::path root = test::scratch_dir("ckpt_prune_leftover");
  for (int s : {1, 2, 3}) test::save_tiny_checkpoint(root, s);
  fs::remove(root / "step_00000001" / "DONE");  // a deletion killed right after its first act
  std::vector<std::string> removed = prune_checkpoints(root.string(), 2);
  EXPECT_EQ(removed, std::vector<std::string>{(root / "step_00000001").string()});
  EXPECT_TRUE(fs::exists(root / "step_00000002" / "DONE"));
  EXPECT_TRUE(fs::exists(root / "step_00000003" / "DONE"));
}

TEST(CheckpointPrune, KeepsWhatTheCallerHoldsOn) {
  fs::path root = test::scratch_dir("ckpt_prune_hold");
  for (int s : {1, 2, 3, 4}) test::save_tiny_checkpoint(root, s);
  auto removed = prune_checkpoints(root.string(), 1, [](const std::string& d) { return d.ends_with("_00000002"); });
  EXPECT_EQ(removed, std::vector<std::string>{(root / "step_00000002").string()});
  EXPECT_TRUE(fs::exists(root / "step_00000001" / "DONE"));
  EXPECT_TRUE(fs::exists(root / "step_00000003" / "DONE"));
}

}  // namespace
}  // namespace lt
