// Keeping a run's checkpoints in remote storage (`checkpoint.remote`), for the trainer's rank 0.
//
//   start:   open the store (S3: one cheap request, so wrong credentials or a missing bucket
//            fail at once), restore the newest complete remote checkpoint into an empty local
//            directory (what SageMaker does), start the background thread.
//   thread:  "reconcile" whenever a checkpoint is saved, and after a failure again with back-off
//            (retry_min_s doubling up to retry_max_s) for as long as the run lasts:
//              - the newest `keep` local checkpoints that verify must be complete remotely:
//                upload those that are not, oldest first, DONE last (ckpt/remote_sync.h) — so
//                a restart uploads what an earlier run left missing, and a server that comes
//                back gets everything it missed;
//              - prune the remote to the newest `keep` complete checkpoints;
//              - local retention (finalize_checkpoint's is off while syncing), once this
//                process has saved a checkpoint: a local checkpoint beyond `keep` is deleted
//                only when its remote copy is complete, or when `keep` newer ones are complete
//                remotely (the remote would not keep it either), or when `prune_unsynced`
//                allows it.
//   finish:  at exit, wait at most `exit_wait_s` (kept inside `launch --stop-grace`), cancel
//            what is in flight, and report which checkpoints lack a complete remote copy; the
//            trainer writes that into exit.json and exits kExitRemoteIncomplete if any do.
#pragma once
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <cstdint>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "ckpt/checkpoint.h"
#include "ckpt/remote_store.h"

namespace lt {

// Exit status of a run (trainer and launcher) that finished, or stopped after saving, while
// some of its newest checkpoints have no complete remote copy. Running the same command again
// uploads them (distinct from 0 done, 1 error, 85 stopped, 86 time limit).
constexpr int kExitRemoteIncomplete = 87;

struct RemoteSyncOptions {
  int keep = 3;                 // checkpoint.keep: newest complete checkpoints, locally and remotely
  bool prune_unsynced = false;  // checkpoint.prune_unsynced: local retention ignores the remote
  double exit_wait_s = 120;     // checkpoint.remote_wait_s: the longest finish() waits by default
  double retry_min_s = 5;       // back-off after a failed reconcile, doubling ...
  double retry_max_s = 60;      // ... up to this
};

struct RemoteSyncStatus {
  std::string remote;                // the URL, for messages
  bool complete = true;              // every checkpoint that should be remote is, completely
  std::vector<std::string> missing;  // step directory names without a complete remote copy
  std::string error;                 // the last failure, empty when the last attempt worked
  int uploaded = 0;                  // checkpoints uploaded by this process
  nlohmann::json to_json() const;    // exit.json's "remote": {url, complete, missing, error, uploaded}
  std::string summary() const;       // one line for logs
};

class CheckpointSync {
 public:
  // Opens `url` (ckpt/remote_store.h), checks access, restores into an empty `local_root` when
  // `restore` is set, and starts syncing. Throws lt::Error when the store cannot be used.
  static std::unique_ptr<CheckpointSync> start(const std::string& url, const std::string& local_root, bool restore,
                                               const RemoteSyncOptions& options);
  CheckpointSync(std::shared_ptr<RemoteStore> store, std::string prefix, std::string url, std::string local_root,
                 RemoteSyncOptions options);
  ~CheckpointSync();  // finish() unless it was called

  // A checkpoint was saved under local_root: reconcile soon. Returns at once.
  void checkpoint_saved();
  // Waits at most `seconds` until every checkpoint that should be remote is, then stops the
  // thread (cancelling an upload in flight) and reports. Later calls return the same report.
  RemoteSyncStatus finish(double seconds);
  RemoteSyncStatus finish() { return finish(options_.exit_wait_s); }
  // The state after the latest reconcile, without waiting.
  RemoteSyncStatus status() const;

 private:
  void run();
  bool reconcile();  // one pass; false (and error_ set) when the store failed
  // The newest `keep` local checkpoints that verify: those the remote must hold.
  std::vector<StepDir> wanted_local(Verify verify) const;
  static std::vector<std::string> missing_names(const std::vector<StepDir>& wanted, const std::set<int64_t>& remote);
  RemoteSyncStatus status_locked() const;

  std::shared_ptr<RemoteStore> store_;
  std::string prefix_, url_, local_root_;
  RemoteSyncOptions options_;
  std::atomic<bool> cancel_{false};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool wake_ = true;     // a reconcile is due (the first one runs at start)
  bool in_sync_ = false;  // the last reconcile left nothing missing and nothing was saved since
  bool stop_ = false, finished_ = false;
  bool saved_ = false;    // checkpoint_saved() was called: local retention may run
  std::set<int64_t> remote_known_;  // complete remote steps as last seen (the thread's own)
  std::vector<std::string> missing_;
  std::string error_;
  int uploaded_ = 0;
  RemoteSyncStatus final_;
  std::thread thread_;
};

}  // namespace lt
