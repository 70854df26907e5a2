// A run's remote checkpoints (ckpt/checkpoint_sync.h) against a directory store that can be
// made to fail: bounded waiting at exit with a report of what is missing, local retention that
// never deletes a checkpoint the remote does not have (unless allowed), a restart and a store
// that comes back uploading what was missed, damaged local checkpoints never uploaded.
#include "ckpt/checkpoint_sync.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "ckpt/remote_sync.h"
#include "ops_test_util.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace lt;

namespace {

// A store that is "down" (every call fails) while `down` is set.
class FlakyStore : public RemoteStore {
 public:
  explicit FlakyStore(std::shared_ptr<RemoteStore> inner) : inner_(std::move(inner)) {}
  std::atomic<bool> down{false};
  std::atomic<int> calls{0};
  void put_file(const std::string& l, const std::string& k) override { check(), inner_->put_file(l, k); }
  void get_file(const std::string& k, const std::string& l) override { check(), inner_->get_file(k, l); }
  std::vector<RemoteObject> list(const std::string& p) override { return check(), inner_->list(p); }
  bool exists(const std::string& k) override { return check(), inner_->exists(k); }
  void remove(const std::string& k) override { check(), inner_->remove(k); }
  std::string describe(const std::string& k) const override { return inner_->describe(k); }

 private:
  void check() {
    ++calls;
    if (down) fail("injected: the store is unreachable");
  }
  std::shared_ptr<RemoteStore> inner_;
};

// A store whose puts hang until the cancel flag is raised (a stalled connection).
class HangingStore : public FlakyStore {
 public:
  using FlakyStore::FlakyStore;
  void set_cancel_flag(const std::atomic<bool>* flag) override { cancel_ = flag; }
  void put_file(const std::string&, const std::string& k) override {
    while (!(cancel_ && cancel_->load())) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    fail("put {}: cancelled", k);
  }

 private:
  const std::atomic<bool>* cancel_ = nullptr;
};

RemoteSyncOptions fast(int keep) {
  RemoteSyncOptions o;
  o.keep = keep;
  o.retry_min_s = 0.02;
  o.retry_max_s = 0.05;
  return o;
}

std::vector<int64_t> local_steps(const fs::path& root) {
  std::vector<int64_t> out;
  for (const StepDir& s : list_step_dirs(root.string())) out.insert(out.begin(), s.step);
  return out;
}
std::vector<int64_t> remote_steps(RemoteStore& store) {
  std::vector<int64_t> out;
  for (const auto& r : list_complete_remote(store, "run")) out.push_back(r.step);
  return out;
}

}  // namespace

TEST(OpsCheckpointSync, StoreDownKeepsLocalCheckpointsAndARestartUploadsThem) {
  fs::path dir = test::scratch_dir("ops_csync_down");
  auto inner = std::make_shared<DirectoryStore>((dir / "remote").string());
  auto flaky = std::make_shared<FlakyStore>(inner);
  fs::path local = dir / "local";
  flaky->down = true;
  {
    CheckpointSync sync(flaky, "run", "test://down", local.string(), fast(2));
    for (int s = 1; s <= 5; ++s) {
      test::save_tiny_checkpoint(local, s);
      sync.checkpoint_saved();
    }
    auto t0 = std::chrono::steady_clock::now();
    RemoteSyncStatus st = sync.finish(0.3);
    double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_LT(waited, 2.0);
    EXPECT_FALSE(st.complete);
    EXPECT_EQ(st.missing, (std::vector<std::string>{"step_00000004", "step_00000005"}));
    EXPECT_NE(st.error.find("unreachable"), std::string::npos) << st.error;
    EXPECT_EQ(st.to_json()["complete"], false);
  }
  // Nothing reached the remote, so nothing was deleted locally.
  EXPECT_EQ(local_steps(local), (std::vector<int64_t>{1, 2, 3, 4, 5}));
  EXPECT_TRUE(remote_steps(*inner).empty());

  // The restart, with the store back: the newest two go up; a start deletes nothing locally.
  flaky->down = false;
  {
    CheckpointSync again(flaky, "run", "test://back", local.string(), fast(2));
    RemoteSyncStatus st = again.finish(30);
    EXPECT_TRUE(st.complete) << st.summary();
    EXPECT_TRUE(st.missing.empty());
    EXPECT_EQ(st.uploaded, 2);
  }
  EXPECT_EQ(remote_steps(*inner), (std::vector<int64_t>{4, 5}));
  EXPECT_EQ(local_steps(local), (std::vector<int64_t>{1, 2, 3, 4, 5}));
  // The next save: local retention applies, everything older than the kept two being remote
  // or superseded by two newer remote copies.
  CheckpointSync later(flaky, "run", "test://back", local.string(), fast(2));
  test::save_tiny_checkpoint(local, 6);
  later.checkpoint_saved();
  EXPECT_TRUE(later.finish(30).complete);
  EXPECT_EQ(remote_steps(*inner), (std::vector<int64_t>{5, 6}));
  EXPECT_EQ(local_steps(local), (std::vector<int64_t>{5, 6}));
}

TEST(OpsCheckpointSync, AStoreThatComesBackGetsWhatItMissed) {
  fs::path dir = test::scratch_dir("ops_csync_back");
  auto inner = std::make_shared<DirectoryStore>((dir / "remote").string());
  auto flaky = std::make_shared<FlakyStore>(inner);
  fs::path local = dir / "local";
  CheckpointSync sync(flaky, "run", "test://flaky", local.string(), fast(3));
  test::save_tiny_checkpoint(local, 10);
  sync.checkpoint_saved();
  flaky->down = true;
  test::save_tiny_checkpoint(local, 20);
  sync.checkpoint_saved();
  test::save_tiny_checkpoint(local, 30);
  sync.checkpoint_saved();
  int before = flaky->calls;
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_GT(flaky->calls, before) << "no retry while the store was down";
  EXPECT_FALSE(sync.status().complete);
  flaky->down = false;  // back, with no new checkpoint to trigger anything: the retry does
  for (int i = 0; i < 500 && !sync.status().complete; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_TRUE(sync.status().complete) << sync.status().summary();
  EXPECT_EQ(remote_steps(*inner), (std::vector<int64_t>{10, 20, 30}));
  EXPECT_TRUE(sync.finish(5).complete);
}

TEST(OpsCheckpointSync, PruneUnsyncedLetsLocalRetentionIgnoreTheRemote) {
  fs::path dir = test::scratch_dir("ops_csync_unsynced");
  auto flaky = std::make_shared<FlakyStore>(std::make_shared<DirectoryStore>((dir / "remote").string()));
  flaky->down = true;
  fs::path local = dir / "local";
  RemoteSyncOptions o = fast(2);
  o.prune_unsynced = true;
  CheckpointSync sync(flaky, "run", "test://down", local.string(), o);
  for (int s = 1; s <= 4; ++s) test::save_tiny_checkpoint(local, s);
  sync.checkpoint_saved();
  EXPECT_FALSE(sync.finish(0.2).complete);
  EXPECT_EQ(local_steps(local), (std::vector<int64_t>{3, 4}));
}

TEST(OpsCheckpointSync, FinishCancelsAHangingUploadInTime) {
  fs::path dir = test::scratch_dir("ops_csync_hang");
  auto hanging = std::make_shared<HangingStore>(std::make_shared<DirectoryStore>((dir / "remote").string()));
  fs::path local = dir / "local";
  test::save_tiny_checkpoint(local, 7);
  CheckpointSync sync(hanging, "run", "test://hang", local.string(), fast(1));
  auto t0 = std::chrono::steady_clock::now();
  RemoteSyncStatus st = sync.finish(0.2);
  double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(waited, 2.0);
  EXPECT_FALSE(st.complete);
  EXPECT_EQ(st.missing, std::vector<std::string>{"step_00000007"});
  EXPECT_NE(st.error.find("cancelled"), std::string::npos) << st.error;
}

TEST(OpsCheckpointSync, DamagedLocalCheckpointIsNotUploaded) {
  fs::path dir = test::scratch_dir("ops_csync_damaged");
  auto inner = std::make_shared<DirectoryStore>((dir / "remote").string());
  fs::path local = dir / "local";
  test::save_tiny_checkpoint(local, 1);
  fs::path bad = test::save_tiny_checkpoint(local, 2);
  fs::resize_file(bad / "model" / "tp0_pp0.safetensors", 10);  // truncated, DONE still there
  CheckpointSync sync(inner, "run", "test://dir", local.string(), fast(2));
  RemoteSyncStatus st = sync.finish(30);
  EXPECT_TRUE(st.complete) << st.summary();
  EXPECT_EQ(remote_steps(*inner), std::vector<int64_t>{1});
}
