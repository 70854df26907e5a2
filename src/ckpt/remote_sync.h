// Copying checkpoint directories to and from a RemoteStore, independent of what the files
// inside are. A local checkpoint is a directory <root>/step_XXXXXXXX/ whose `DONE` marker is
// written last by the checkpoint writer; remotely it becomes the keys
// <prefix>/step_XXXXXXXX/<relative path>, and its DONE object is uploaded LAST, after every
// other object exists, so a remote checkpoint is complete exactly when its DONE is there.
// Readers (newest_complete_remote, download_checkpoint) only trust checkpoints with DONE;
// pruning deletes DONE FIRST, so a half-deleted checkpoint is never taken for a complete one.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "ckpt/remote_store.h"

namespace lt {

inline constexpr const char* kCheckpointDoneMarker = "DONE";

struct RemoteCheckpoint {
  int64_t step = 0;
  std::string name;  // "step_00000100"
};

// Uploads `local_step_dir` (must contain DONE) to <prefix>/<its name>/..., DONE last.
// Skips the work if the remote copy is already complete with the same file sizes; if an
// older complete copy of the same step is there, its DONE is removed before re-uploading.
void upload_checkpoint(const std::string& local_step_dir, RemoteStore& store,
                       const std::string& prefix);

// Complete remote checkpoints under `prefix`, oldest first.
std::vector<RemoteCheckpoint> list_complete_remote(RemoteStore& store, const std::string& prefix);
std::optional<RemoteCheckpoint> newest_complete_remote(RemoteStore& store,
                                                       const std::string& prefix);

// Downloads the complete remote checkpoint `name` into <local_root>/<name>.tmp, checks every
// file's size against the listing, then renames it to <local_root>/<name> (returned).
// Fails if <local_root>/<name> already exists or the remote checkpoint has no DONE.
std::string download_checkpoint(RemoteStore& store, const std::string& prefix,
                                 const std::string& name, const std::string& local_root);

// SageMaker's behaviour at start: when `local_root` holds no complete checkpoint (no
// step_* directory with DONE), downloads the newest complete remote one and returns its
// local path; otherwise (or when the remote has none) returns nothing.
std::optional<std::string> restore_newest_if_local_empty(const std::string& local_root,
                                                         RemoteStore& store,
                                                         const std::string& prefix);

// Keeps the newest `keep_last` complete remote checkpoints and deletes older ones (DONE
// first), plus incomplete ones older than the oldest kept. Returns how many were deleted.
int prune_remote(RemoteStore& store, const std::string& prefix, int keep_last);

// Uploads checkpoints on a thread of its own so that training never waits for the network.
// Each upload is retried (whole checkpoint; each request also retries inside the store);
// a checkpoint that still fails is logged and recorded in failures(), and the next one is
// tried. After each success, prune_remote(keep_last) runs when keep_last > 0.
class BackgroundUploader {
 public:
  struct Options {
    int keep_last = 0;            // 0: keep every remote checkpoint
    int max_attempts = 3;         // per checkpoint
    double retry_seconds = 10.0;  // wait before attempt k+1: retry_seconds * k
  };
  BackgroundUploader(std::shared_ptr<RemoteStore> store, std::string prefix, Options options);
  BackgroundUploader(std::shared_ptr<RemoteStore> store, std::string prefix)
      : BackgroundUploader(std::move(store), std::move(prefix), Options{}) {}
  ~BackgroundUploader();  // finishes what is queued, then joins

  void enqueue(const std::string& local_step_dir);  // returns at once
  void wait_idle();                                 // until the queue is empty
  // Like wait_idle, but gives up after `seconds`; true when the queue emptied in time.
  bool wait_idle_for(double seconds);
  // Drops the checkpoints queued but not started (an upload in progress goes on) and
  // returns them: for an exit that cannot wait (the destructor otherwise drains the queue).
  std::vector<std::string> abandon_queued();
  // Directories queued or being uploaded: local retention must not delete these yet.
  std::vector<std::string> pending() const;
  std::vector<std::string> failures() const;  // one message per checkpoint given up on
  int uploaded() const;                       // checkpoints uploaded (or found complete)

 private:
  void run();

  std::shared_ptr<RemoteStore> store_;
  std::string prefix_;
  Options options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;  // front is the one being uploaded while busy_
  bool busy_ = false, stop_ = false;
  std::vector<std::string> failures_;
  int uploaded_ = 0;
  std::thread thread_;
};

}  // namespace lt
