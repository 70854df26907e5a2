// S3 against a real S3-compatible server on 127.0.0.1 (npm @20minutes/s3rver, which checks
// AWS Signature V4), started by these tests through scripts/s3rver.sh. If the server cannot
// be installed or started the tests FAIL: a silent skip would hide a broken S3 path.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>

#include "ckpt/checkpoint_sync.h"
#include "ckpt/remote_sync.h"
#include "ckpt/s3_client.h"
#include "ops_test_util.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace lt;

namespace {

int free_port() {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    return -1;
  close(s);
  return ntohs(a.sin_port);
}

// One server for the whole suite; tests use distinct key prefixes.
class OpsS3 : public ::testing::Test {
 protected:
  static inline fs::path dir_;
  static inline int port_ = 0;
  static inline bool up_ = false;

  static int script(const std::string& args) {
    std::string cmd = "S3RVER_OWNER_PID=" + std::to_string(getpid()) + " S3RVER_NPM_DIR='" +
                      (fs::current_path() / "s3rver-npm").string() + "' bash '" +
                      test::source_path("scripts/s3rver.sh") + "' " + args;
    return std::system(cmd.c_str());
  }
  static bool start() { return script("start '" + dir_.string() + "' " + std::to_string(port_)) == 0; }
  static void kill_server() { script("kill '" + dir_.string() + "'"); }

  static void SetUpTestSuite() {
    // Per process: ctest runs every TEST as its own process, possibly in parallel.
    dir_ = test::scratch_dir("ops_s3rver_" + std::to_string(getpid()));
    port_ = free_port();
    up_ = port_ > 0 && start();
  }
  static void TearDownTestSuite() {
    script("stop '" + dir_.string() + "'");
    fs::remove_all(dir_);
  }
  void SetUp() override { ASSERT_TRUE(up_) << "the S3 test server did not start (see scripts/s3rver.sh output above)"; }

  static S3Config config(const std::string& key = "testkey", const std::string& secret = "testsecret") {
    S3Config c;
    c.endpoint = "http://127.0.0.1:" + std::to_string(port_);
    c.access_key_id = key;
    c.secret_access_key = secret;
    c.credentials_source = "the test";
    c.multipart_threshold = 5 << 20;
    c.part_size = 5 << 20;
    c.max_attempts = 3;
    c.retry_base_seconds = 0.1;
    c.connect_timeout_seconds = 2;
    return c;
  }
};

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_F(OpsS3, PutGetListExistsRemoveSmallAndMultipart) {
  fs::path dir = test::scratch_dir("ops_s3_basic");
  std::string small = test::random_bytes(1000, 1), big = test::random_bytes(12 << 20, 2);  // 3 parts
  test::write_bytes(dir / "small", small);
  test::write_bytes(dir / "big", big);
  S3Config cfg = config();
  std::vector<int> parts;
  std::mutex parts_mu;
  cfg.after_part = [&](const std::string&, int part) {
    std::lock_guard<std::mutex> lock(parts_mu);
    parts.push_back(part);
  };
  S3Store store("ckpt", cfg);
  store.check_access();
  store.put_file((dir / "small").string(), "basic/a b+c/small.bin");  // needs percent-encoding
  store.put_file((dir / "big").string(), "basic/big.bin");
  std::sort(parts.begin(), parts.end());  // parts go up in parallel
  EXPECT_EQ(parts, (std::vector<int>{1, 2, 3}));
  auto listed = store.list("basic/");
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0].key, "basic/a b+c/small.bin");
  EXPECT_EQ(listed[0].size, 1000u);
  EXPECT_EQ(listed[1].key, "basic/big.bin");
  EXPECT_EQ(listed[1].size, uint64_t(12 << 20));
  EXPECT_TRUE(store.exists("basic/big.bin"));
  EXPECT_FALSE(store.exists("basic/nothing"));
  store.get_file("basic/big.bin", (dir / "back" / "big").string());
  store.get_file("basic/a b+c/small.bin", (dir / "back" / "small").string());
  EXPECT_TRUE(test::read_bytes(dir / "back" / "big") == big);
  EXPECT_TRUE(test::read_bytes(dir / "back" / "small") == small);
  EXPECT_NE(error_of([&] { store.get_file("basic/nothing", (dir / "x").string()); }).find("no such object"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(dir / "x"));
  store.remove("basic/big.bin");
  EXPECT_FALSE(store.exists("basic/big.bin"));
  EXPECT_EQ(store.list("basic/").size(), 1u);
}

TEST_F(OpsS3, ListingFollowsContinuationTokens) {
  fs::path dir = test::scratch_dir("ops_s3_many");
  test::write_bytes(dir / "f", "x");
  S3Config cfg = config();
  cfg.list_page_size = 4;  // S3 pages at 1000 keys; fewer here to keep the test fast
  S3Store store("ckpt", cfg);
  for (int i = 0; i < 10; ++i) store.put_file((dir / "f").string(), fmt::format("many/{:02d}", i));
  store.put_file((dir / "f").string(), "many0");  // shares the prefix "many" but not "many/"
  auto listed = store.list("many/");
  ASSERT_EQ(listed.size(), 10u);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(listed[i].key, fmt::format("many/{:02d}", i));
}

TEST_F(OpsS3, CheckpointRoundTripNewestCompleteAndPrune) {
  fs::path dir = test::scratch_dir("ops_s3_ckpt");
  S3Store store("ckpt", config());
  fs::path ck10 = test::make_local_checkpoint(dir / "local", 10, 6 << 20);  // multipart file inside
  fs::path ck20 = test::make_local_checkpoint(dir / "local", 20, 6 << 20);
  upload_checkpoint(ck10.string(), store, "run1");
  upload_checkpoint(ck20.string(), store, "run1");
  // A newer checkpoint whose upload never finished: files but no DONE.
  fs::path ck30 = test::make_local_checkpoint(dir / "local", 30);
  store.put_file((ck30 / "meta.json").string(), "run1/step_00000030/meta.json");
  auto newest = newest_complete_remote(store, "run1");
  ASSERT_TRUE(newest.has_value());
  EXPECT_EQ(newest->step, 20);

  // The local checkpoint directory was lost: restore from the remote.
  auto restored = restore_newest_if_local_empty((dir / "fresh").string(), store, "run1");
  ASSERT_TRUE(restored.has_value());
  for (const char* f : {"meta.json", "shards/tp0_pp0.safetensors", "shards/tp1_pp0.safetensors", "DONE"})
    EXPECT_TRUE(test::read_bytes(fs::path(*restored) / f) == test::read_bytes(ck20 / f)) << f;

  EXPECT_EQ(prune_remote(store, "run1", 1), 1);
  auto left = list_complete_remote(store, "run1");
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].step, 20);
  EXPECT_TRUE(store.exists("run1/step_00000030/meta.json"));  // newer, maybe still uploading
}

TEST_F(OpsS3, ServerKilledMidUploadLeavesNoCompleteCheckpoint) {
  fs::path dir = test::scratch_dir("ops_s3_killed");
  S3Config cfg = config();
  fs::path ck = test::make_local_checkpoint(dir / "local", 50, 11 << 20);
  std::atomic<bool> killed{false};
  cfg.after_part = [&](const std::string&, int part) {
    if (part == 1 && !killed.exchange(true)) kill_server();  // SIGKILL, like a crash
  };
  std::string err;
  {
    S3Store store("ckpt", cfg);
    err = error_of([&] { upload_checkpoint(ck.string(), store, "killed"); });
  }
  EXPECT_TRUE(killed);
  EXPECT_NE(err.find("gave up after 3 attempts"), std::string::npos) << err;
  EXPECT_NE(err.find("is the endpoint reachable?"), std::string::npos) << err;
  ASSERT_TRUE(start());
  S3Store store("ckpt", config());
  EXPECT_FALSE(store.exists("killed/step_00000050/DONE"));
  EXPECT_FALSE(newest_complete_remote(store, "killed").has_value());
  EXPECT_FALSE(store.exists("killed/step_00000050/shards/tp0_pp0.safetensors"));  // never completed
}

TEST_F(OpsS3, CheckpointSyncSurvivesAServerRestart) {
  fs::path dir = test::scratch_dir("ops_s3_restart");
  S3Config cfg = config();
  fs::path ck = test::save_tiny_checkpoint(dir / "local", 60, 200000);  // a 12.8 MB model shard: multipart
  std::atomic<bool> killed{false};
  std::thread restarter;
  cfg.after_part = [&](const std::string&, int part) {
    if (part != 1 || killed.exchange(true)) return;
    kill_server();
    restarter = std::thread([] {
      std::this_thread::sleep_for(std::chrono::milliseconds(800));
      start();
    });
  };
  auto store = std::make_shared<S3Store>("ckpt", cfg);
  {
    RemoteSyncOptions o;
    o.keep = 2;
    o.retry_min_s = 0.5;
    CheckpointSync sync(store, "restart", "s3://ckpt/restart", (dir / "local").string(), o);
    RemoteSyncStatus st = sync.finish(60);
    EXPECT_TRUE(st.complete) << st.summary();
    EXPECT_EQ(st.uploaded, 1);
  }
  if (restarter.joinable()) restarter.join();
  EXPECT_TRUE(killed);
  auto newest = newest_complete_remote(*store, "restart");
  ASSERT_TRUE(newest.has_value());
  std::string back = download_checkpoint(*store, "restart", newest->name, (dir / "back").string());
  EXPECT_TRUE(test::read_bytes(fs::path(back) / "model/tp0_pp0.safetensors") ==
              test::read_bytes(ck / "model/tp0_pp0.safetensors"));
}

// s3rver accepts unsigned requests, so a wrong secret being refused on every kind of request
// is what shows that every request is signed.
TEST_F(OpsS3, WrongCredentialsAreClearErrorsOnEveryRequest) {
  fs::path dir = test::scratch_dir("ops_s3_creds");
  test::write_bytes(dir / "small", "abc");
  test::write_bytes(dir / "big", test::random_bytes(6 << 20, 3));
  S3Store good("ckpt", config());
  good.put_file((dir / "small").string(), "creds/present");

  S3Store bad("ckpt", config("testkey", "wrong-secret-value"));
  std::vector<std::pair<std::string, std::string>> errors = {
      {"put", error_of([&] { bad.put_file((dir / "small").string(), "creds/x"); })},
      {"multipart", error_of([&] { bad.put_file((dir / "big").string(), "creds/big"); })},
      {"get", error_of([&] { bad.get_file("creds/present", (dir / "got").string()); })},
      {"list", error_of([&] { bad.list("creds/"); })},
      {"exists", error_of([&] { bad.exists("creds/present"); })},
      {"remove", error_of([&] { bad.remove("creds/present"); })},
      {"check", error_of([&] { bad.check_access(); })},
  };
  for (const auto& [op, e] : errors) {
    EXPECT_NE(e.find("access denied"), std::string::npos) << op << ": " << e;
    EXPECT_NE(e.find("testkey"), std::string::npos) << op << ": " << e;  // names the key id
    EXPECT_EQ(e.find("wrong-secret-value"), std::string::npos) << op << ": secret leaked: " << e;
    if (op != "exists") {  // HEAD answers have no body, hence no error code
      EXPECT_NE(e.find("SignatureDoesNotMatch"), std::string::npos) << op << ": " << e;
    }
  }
  EXPECT_TRUE(good.exists("creds/present"));  // the refused DELETE did nothing
  EXPECT_FALSE(good.exists("creds/x"));

  std::string unknown = error_of([&] { S3Store("ckpt", config("nosuchkey", "x")).check_access(); });
  EXPECT_NE(unknown.find("InvalidAccessKeyId"), std::string::npos) << unknown;
}

TEST_F(OpsS3, UnreachableEndpointAndMissingBucketAreClearErrors) {
  S3Config cfg = config();
  cfg.endpoint = "http://127.0.0.1:" + std::to_string(free_port());  // nothing listens there
  cfg.max_attempts = 2;
  std::string e = error_of([&] { S3Store("ckpt", cfg).check_access(); });
  EXPECT_NE(e.find("gave up after 2 attempts"), std::string::npos) << e;
  EXPECT_NE(e.find(cfg.endpoint), std::string::npos) << e;
  EXPECT_NE(e.find("is the endpoint reachable?"), std::string::npos) << e;

  std::string b = error_of([&] { S3Store("no-such-bucket", config()).list("x/"); });
  EXPECT_NE(b.find("bucket 'no-such-bucket' does not exist"), std::string::npos) << b;
}
