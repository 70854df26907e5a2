// Remote checkpoint storage against a directory store (no server needed): the store
// contract, DONE-last uploads, newest-complete selection, download, pruning, and reading the
// AWS configuration (the run's sync: checkpoint_sync_test.cpp).
#include <gtest/gtest.h>

#include <cstdlib>
#include <mutex>
#include <thread>

#include "ckpt/remote_sync.h"
#include "ckpt/s3_client.h"
#include "ops_test_util.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace lt;

TEST(OpsRemoteStore, DirectoryStoreContract) {
  fs::path dir = test::scratch_dir("ops_dirstore");
  test::write_bytes(dir / "src.bin", test::random_bytes(5000, 1));
  DirectoryStore store((dir / "remote").string());
  store.put_file((dir / "src.bin").string(), "run1/a/x.bin");
  store.put_file((dir / "src.bin").string(), "run1/b.bin");
  store.put_file((dir / "src.bin").string(), "run10/c.bin");
  EXPECT_TRUE(store.exists("run1/a/x.bin"));
  EXPECT_FALSE(store.exists("run1/a/y.bin"));
  auto listed = store.list("run1/");
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0].key, "run1/a/x.bin");
  EXPECT_EQ(listed[0].size, 5000u);
  EXPECT_EQ(listed[1].key, "run1/b.bin");
  EXPECT_EQ(store.list("run1").size(), 3u);  // a plain string prefix, like S3
  store.get_file("run1/a/x.bin", (dir / "back" / "x.bin").string());
  EXPECT_EQ(test::read_bytes(dir / "back" / "x.bin"), test::read_bytes(dir / "src.bin"));
  store.remove("run1/a/x.bin");
  store.remove("run1/a/x.bin");  // removing twice is fine
  EXPECT_FALSE(fs::exists(dir / "remote" / "run1" / "a"));  // empty folders go too
  EXPECT_THROW(store.get_file("run1/a/x.bin", (dir / "y").string()), Error);
  EXPECT_THROW(store.put_file((dir / "src.bin").string(), "../escape"), Error);
}

TEST(OpsRemoteStore, OpenRemoteParsesUrls) {
  fs::path dir = test::scratch_dir("ops_open_remote");
  auto loc = open_remote("file://" + (dir / "r").string());
  EXPECT_EQ(loc.prefix, "");
  EXPECT_TRUE(fs::is_directory(dir / "r"));
  EXPECT_THROW(open_remote("gs://bucket/x"), Error);
  EXPECT_THROW(open_remote("s3:///nobucket"), Error);
}

TEST(OpsRemoteSync, UploadPutsDoneLastAndNewestSkipsIncomplete) {
  fs::path dir = test::scratch_dir("ops_sync_upload");
  auto inner = std::make_shared<DirectoryStore>((dir / "remote").string());
  test::HookedStore store(inner);
  upload_checkpoint(test::make_local_checkpoint(dir / "local", 10).string(), store, "run1");
  ASSERT_EQ(store.put_keys.size(), 4u);
  EXPECT_EQ(store.put_keys.back(), "run1/step_00000010/DONE");
  upload_checkpoint(test::make_local_checkpoint(dir / "local", 20).string(), store, "run1");
  // Step 30 lost its DONE upload: it must not count.
  store.before_put = [](const std::string& key) {
    if (key.ends_with("/DONE")) fail("injected failure before {}", key);
  };
  EXPECT_THROW(upload_checkpoint(test::make_local_checkpoint(dir / "local", 30).string(), store, "run1"),
               Error);
  EXPECT_FALSE(inner->exists("run1/step_00000030/DONE"));
  EXPECT_TRUE(inner->exists("run1/step_00000030/meta.json"));
  auto newest = newest_complete_remote(store, "run1");
  ASSERT_TRUE(newest.has_value());
  EXPECT_EQ(newest->step, 20);
  EXPECT_EQ(newest->name, "step_00000020");
  EXPECT_FALSE(newest_complete_remote(store, "run2").has_value());
  // A directory without DONE is not uploaded at all.
  test::write_bytes(dir / "local" / "step_00000040" / "meta.json", "{}");
  store.put_keys.clear();
  EXPECT_THROW(upload_checkpoint((dir / "local" / "step_00000040").string(), store, "run1"), Error);
  EXPECT_THROW(upload_checkpoint((dir / "local" / "step_00000050").string(), store, "run1"), Error);
  EXPECT_THROW(upload_checkpoint((dir / "local" / "not_a_step").string(), store, "run1"), Error);
  EXPECT_TRUE(store.put_keys.empty());
}

TEST(OpsRemoteSync, ReuploadSkipsCompleteCopyAndRestoreDownloadsNewest) {
  fs::path dir = test::scratch_dir("ops_sync_restore");
  auto inner = std::make_shared<DirectoryStore>((dir / "remote").string());
  test::HookedStore store(inner);
  fs::path ck10 = test::make_local_checkpoint(dir / "local", 10, 3000);
  fs::path ck20 = test::make_local_checkpoint(dir / "local", 20, 4000);
  upload_checkpoint(ck10.string(), store, "");
  upload_checkpoint(ck20.string(), store, "");
  store.put_keys.clear();
  upload_checkpoint(ck20.string(), store, "");  // already complete: nothing sent
  EXPECT_TRUE(store.put_keys.empty());

  // Local directory empty (a new machine): the newest complete remote comes back.
  fs::path fresh = dir / "fresh";
  auto restored = restore_newest_if_local_empty(fresh.string(), store, "");
  ASSERT_TRUE(restored.has_value());
  EXPECT_EQ(fs::path(*restored), fresh / "step_00000020");
  for (const char* f : {"meta.json", "shards/tp0_pp0.safetensors", "shards/tp1_pp0.safetensors", "DONE"})
    EXPECT_EQ(test::read_bytes(fresh / "step_00000020" / f), test::read_bytes(ck20 / f)) << f;
  EXPECT_FALSE(fs::exists(fresh / "step_00000020.tmp"));
  // Not empty any more: nothing is downloaded.
  EXPECT_FALSE(restore_newest_if_local_empty(fresh.string(), store, "").has_value());
  // Downloading over an existing directory is refused.
  EXPECT_THROW(download_checkpoint(store, "", "step_00000020", fresh.string()), Error);
}

TEST(OpsRemoteSync, PruneKeepsNewestAndNewerIncomplete) {
  fs::path dir = test::scratch_dir("ops_sync_prune");
  DirectoryStore store((dir / "remote").string());
  for (int s : {10, 20, 30}) upload_checkpoint(test::make_local_checkpoint(dir / "l", s).string(), store, "p");
  // An incomplete one older than the kept ones and one newer (maybe still uploading).
  test::write_bytes(dir / "x", "x");
  store.put_file((dir / "x").string(), "p/step_00000005/meta.json");
  store.put_file((dir / "x").string(), "p/step_00000040/meta.json");
  EXPECT_EQ(prune_remote(store, "p", 2), 2);  // step 5 and step 10
  auto left = list_complete_remote(store, "p");
  ASSERT_EQ(left.size(), 2u);
  EXPECT_EQ(left[0].step, 20);
  EXPECT_EQ(left[1].step, 30);
  EXPECT_TRUE(store.exists("p/step_00000040/meta.json"));
  EXPECT_TRUE(store.list("p/step_00000010/").empty());
  EXPECT_TRUE(store.list("p/step_00000005/").empty());
}

namespace {
// Sets environment variables for one test and restores them afterwards.
class ScopedEnv {
 public:
  void set(const char* name, const std::string& value) {
    save(name);
    setenv(name, value.c_str(), 1);
  }
  void unset(const char* name) {
    save(name);
    unsetenv(name);
  }
  ~ScopedEnv() {
    for (auto& [name, old] : saved_)
      if (old) setenv(name.c_str(), old->c_str(), 1);
      else unsetenv(name.c_str());
  }

 private:
  void save(const char* name) {
    const char* v = getenv(name);
    saved_.emplace_back(name, v ? std::optional<std::string>(v) : std::nullopt);
  }
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};
}  // namespace

TEST(OpsS3Config, EnvironmentAndProfiles) {
  fs::path dir = test::scratch_dir("ops_s3config");
  test::write_bytes(dir / "credentials",
                    "[default]\naws_access_key_id = DEFAULTKEY\naws_secret_access_key = defaultsecret\n"
                    "[work]\naws_access_key_id=WORKKEY\naws_secret_access_key=worksecret\n"
                    "aws_session_token = worktoken\n");
  test::write_bytes(dir / "config",
                    "[default]\nregion = eu-west-1\n[profile work]\nregion = ap-south-1\n"
                    "s3 =\n  endpoint_url = http://minio.local:9000\n");
  ScopedEnv env;
  for (const char* v : {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
                        "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"})
    env.unset(v);
  env.set("AWS_SHARED_CREDENTIALS_FILE", (dir / "credentials").string());
  env.set("AWS_CONFIG_FILE", (dir / "config").string());

  S3Config c = S3Config::from_environment();
  EXPECT_EQ(c.access_key_id, "DEFAULTKEY");
  EXPECT_EQ(c.secret_access_key, "defaultsecret");
  EXPECT_EQ(c.region, "eu-west-1");
  EXPECT_EQ(c.endpoint, "https://s3.eu-west-1.amazonaws.com");
  EXPECT_FALSE(c.path_style);

  env.set("AWS_PROFILE", "work");
  c = S3Config::from_environment();
  EXPECT_EQ(c.access_key_id, "WORKKEY");
  EXPECT_EQ(c.session_token, "worktoken");
  EXPECT_EQ(c.region, "ap-south-1");
  EXPECT_EQ(c.endpoint, "http://minio.local:9000");
  EXPECT_TRUE(c.path_style);

  env.set("AWS_ACCESS_KEY_ID", "ENVKEY");
  env.set("AWS_SECRET_ACCESS_KEY", "envsecret");
  env.set("AWS_REGION", "us-west-2");
  env.set("AWS_ENDPOINT_URL", "http://127.0.0.1:1/");
  c = S3Config::from_environment();
  EXPECT_EQ(c.access_key_id, "ENVKEY");
  EXPECT_EQ(c.session_token, "");
  EXPECT_EQ(c.region, "us-west-2");
  EXPECT_EQ(c.endpoint, "http://127.0.0.1:1");
  env.set("AWS_ENDPOINT_URL_S3", "http://s3only:2");
  EXPECT_EQ(S3Config::from_environment().endpoint, "http://s3only:2");

  env.unset("AWS_ACCESS_KEY_ID");
  env.set("AWS_PROFILE", "nosuchprofile");
  try {
    S3Config::from_environment();
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no AWS credentials"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("nosuchprofile"), std::string::npos) << e.what();
  }
}

TEST(OpsS3Config, UriEncodingAndSha256) {
  EXPECT_EQ(s3_uri_encode("run1/step 1/a+b~_.-*", true), "run1/step%201/a%2Bb~_.-%2A");
  EXPECT_EQ(s3_uri_encode("run1/", false), "run1%2F");
  // FIPS 180-2 test vectors.
  EXPECT_EQ(sha256_hex("abc", 3), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("", 0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}
