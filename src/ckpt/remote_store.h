// Remote checkpoint storage: a flat key -> file namespace that checkpoints are copied to
// and restored from. Two kinds: a directory on another filesystem (a shared mount) and
// S3-compatible object storage (ckpt/s3_client.h). Keys use '/' as separator, like S3 keys.
//
// Every call either completes or throws lt::Error naming the store, the key and the reason.
// put_file is all-or-nothing as seen by readers: an object appears whole or not at all
// (S3 gives that per object; the directory store writes a temp name and renames).
// Which objects form a complete checkpoint is decided above this layer (ckpt/remote_sync.h).
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace lt {

struct RemoteObject {
  std::string key;
  uint64_t size = 0;
};

class RemoteStore {
 public:
  virtual ~RemoteStore() = default;
  // Uploads the local file `local_path` as `key`, replacing any object already there.
  virtual void put_file(const std::string& local_path, const std::string& key) = 0;
  // Downloads `key` to `local_path` (written under a temp name, renamed when complete).
  virtual void get_file(const std::string& key, const std::string& local_path) = 0;
  // Every object whose key starts with `prefix` (plain string prefix), sorted by key.
  virtual std::vector<RemoteObject> list(const std::string& prefix) = 0;
  virtual bool exists(const std::string& key) = 0;
  // Removes `key`; removing a missing key is not an error.
  virtual void remove(const std::string& key) = 0;
  // Where `key` lives, for messages and logs: "s3://bucket/key" or a path.
  virtual std::string describe(const std::string& key) const = 0;
  // Fails early, with a message naming the store and the credentials' source, when the store
  // cannot be used (wrong credentials, a missing bucket); nothing to check by default.
  virtual void check_access() {}
  // While *flag is true, calls fail soon (within about a second, retries and back-off included)
  // instead of running to the end: for an exit that cannot wait. nullptr: never cancelled.
  // The flag must outlive every call made while it is set.
  virtual void set_cancel_flag(const std::atomic<bool>* flag) { (void)flag; }
};

// A directory as a store: key "a/b" is the file <root>/a/b.
class DirectoryStore : public RemoteStore {
 public:
  explicit DirectoryStore(std::string root);  // creates root if needed
  void put_file(const std::string& local_path, const std::string& key) override;
  void get_file(const std::string& key, const std::string& local_path) override;
  std::vector<RemoteObject> list(const std::string& prefix) override;
  bool exists(const std::string& key) override;
  void remove(const std::string& key) override;
  std::string describe(const std::string& key) const override;

 private:
  std::string path_of(const std::string& key) const;
  std::string root_;
};

// A store plus the key prefix a URL names inside it.
struct RemoteLocation {
  std::unique_ptr<RemoteStore> store;
  std::string prefix;  // no leading or trailing '/'; may be empty
};

// "s3://bucket/some/prefix" (credentials etc. from the AWS environment, ckpt/s3_client.h),
// "file:///mnt/x/run1" or a plain path "/mnt/x/run1" (a DirectoryStore, empty prefix).
RemoteLocation open_remote(const std::string& url);

// Copies a file durably: to `dst`.tmp.<pid>, fsync, rename over `dst`, fsync the directory.
// Creates dst's parent directories. Shared by the stores' downloads and the directory store.
void copy_file_atomic(const std::string& src, const std::string& dst);

}  // namespace lt
