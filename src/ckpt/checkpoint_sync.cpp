#include "ckpt/checkpoint_sync.h"

#include <algorithm>
#include <chrono>
#include <map>

#include "ckpt/checkpoint.h"
#include "ckpt/remote_sync.h"
#include "ckpt/s3_client.h"
#include "core/error.h"
#include "core/log.h"

namespace lt {

nlohmann::json RemoteSyncStatus::to_json() const {
  return {{"url", remote}, {"complete", complete}, {"missing", missing}, {"error", error}, {"uploaded", uploaded}};
}

std::string RemoteSyncStatus::summary() const {
  if (complete) return fmt::format("every checkpoint that should be at {} is there ({} uploaded)", remote, uploaded);
  return fmt::format("remote copies missing at {}: {}{}", remote, missing.empty() ? "(not checked)" : fmt::format("{}", fmt::join(missing, ", ")),
                     error.empty() ? "" : "; last error: " + error);
}

std::unique_ptr<CheckpointSync> CheckpointSync::start(const std::string& url, const std::string& local_root,
                                                      bool restore, const RemoteSyncOptions& options) {
  RemoteLocation loc = open_remote(url);
  if (auto* s3 = dynamic_cast<S3Store*>(loc.store.get())) s3->check_access();
  std::shared_ptr<RemoteStore> store(std::move(loc.store));
  if (restore)
    if (auto got = restore_newest_if_local_empty(local_root, *store, loc.prefix))
      log::info("restored {} from {}", *got, url);
  return std::make_unique<CheckpointSync>(store, loc.prefix, url, local_root, options);
}

CheckpointSync::CheckpointSync(std::shared_ptr<RemoteStore> store, std::string prefix, std::string url,
                               std::string local_root, RemoteSyncOptions options)
    : store_(std::move(store)),
      prefix_(std::move(prefix)),
      url_(std::move(url)),
      local_root_(std::move(local_root)),
      options_(options) {
  LT_CHECK(store_, "CheckpointSync needs a store");
  LT_CHECK(options_.keep >= 1, "remote sync: keep must be at least 1, got {}", options_.keep);
  LT_CHECK(options_.retry_min_s > 0 && options_.retry_max_s >= options_.retry_min_s,
           "remote sync: retry back-off must be positive");
  store_->set_cancel_flag(&cancel_);
  thread_ = std::thread([this] { run(); });
}

CheckpointSync::~CheckpointSync() {
  finish();
  store_->set_cancel_flag(nullptr);
}

void CheckpointSync::checkpoint_saved() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    wake_ = true;
    in_sync_ = false;
    saved_ = true;
  }
  cv_.notify_all();
}

RemoteSyncStatus CheckpointSync::status_locked() const {
  RemoteSyncStatus s;
  s.remote = url_;
  s.complete = in_sync_ && missing_.empty() && error_.empty();
  s.missing = missing_;
  s.error = error_;
  s.uploaded = uploaded_;
  return s;
}

RemoteSyncStatus CheckpointSync::status() const {
  std::lock_guard<std::mutex> lock(mu_);
  return finished_ ? final_ : status_locked();
}

RemoteSyncStatus CheckpointSync::finish(double seconds) {
  bool in_time = false;
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (finished_) return final_;
    if (!in_sync_) wake_ = true;  // a failed store is tried again now, not after its back-off
    cv_.notify_all();
    in_time = cv_.wait_for(lock, std::chrono::duration<double>(std::max(0.0, seconds)), [this] { return in_sync_; });
    stop_ = true;
  }
  cancel_ = true;  // an upload in flight ends within about a second
  cv_.notify_all();
  thread_.join();
  // What is missing now: checkpoints saved while a slow attempt was in flight count too.
  std::vector<std::string> missing = missing_names(wanted_local(Verify::sizes), remote_known_);
  std::lock_guard<std::mutex> lock(mu_);
  missing_ = missing;
  finished_ = true;
  final_ = status_locked();
  if (!in_time) log::warn("remote checkpoints: stopped waiting after {:.0f} s (checkpoint.remote_wait_s)", seconds);
  if (final_.complete)
    log::info("remote checkpoints: {}", final_.summary());
  else
    log::error("remote checkpoints: {}", final_.summary());
  return final_;
}

void CheckpointSync::run() {
  double backoff = options_.retry_min_s;
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
      wake_ = false;
    }
    bool ok = reconcile();
    std::unique_lock<std::mutex> lock(mu_);
    in_sync_ = ok && !wake_;
    cv_.notify_all();
    if (stop_) return;
    if (ok) {
      backoff = options_.retry_min_s;
      cv_.wait(lock, [this] { return wake_ || stop_; });
    } else {
      log::warn("remote checkpoints: {}; trying again in {:.0f} s", status_locked().summary(), backoff);
      cv_.wait_for(lock, std::chrono::duration<double>(backoff), [this] { return wake_ || stop_; });
      backoff = std::min(backoff * 2, options_.retry_max_s);
    }
  }
}

std::vector<StepDir> CheckpointSync::wanted_local(Verify verify) const {
  std::vector<StepDir> wanted;
  for (const StepDir& s : list_step_dirs(local_root_)) {
    if (int(wanted.size()) >= options_.keep) break;
    if (!s.done) continue;
    try {
      verify_checkpoint(s.dir, verify);
      wanted.push_back(s);
    } catch (const Error& e) {
      log::warn("remote checkpoints: not uploading {}: {}", s.dir, e.what());
    }
  }
  return wanted;
}

std::vector<std::string> CheckpointSync::missing_names(const std::vector<StepDir>& wanted,
                                                       const std::set<int64_t>& remote) {
  std::vector<std::string> missing;
  for (const StepDir& s : wanted)
    if (!remote.count(s.step)) missing.push_back(step_dir_name(s.step));
  std::sort(missing.begin(), missing.end());
  return missing;
}

bool CheckpointSync::reconcile() {
  bool saved = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    saved = saved_;
  }
  // The newest `keep` local checkpoints that verify must be complete remotely. Before this
  // process saved one, they are an earlier run's: checksums too, so a damaged one never goes up.
  std::vector<StepDir> local = list_step_dirs(local_root_);
  std::vector<StepDir> wanted = wanted_local(saved ? Verify::sizes : Verify::checksums);
  // Complete remote steps: the listing, or when the store fails, what the last listing and the
  // uploads since showed (only this thread touches remote_known_).
  std::set<int64_t>& remote = remote_known_;
  std::string error;
  try {
    std::set<int64_t> listed;
    for (const RemoteCheckpoint& r : list_complete_remote(*store_, prefix_)) listed.insert(r.step);
    remote = listed;
    for (auto it = wanted.rbegin(); it != wanted.rend(); ++it) {  // oldest first
      if (remote.count(it->step)) continue;
      upload_checkpoint(it->dir, *store_, prefix_);
      remote.insert(it->step);
      std::lock_guard<std::mutex> lock(mu_);
      ++uploaded_;
    }
    prune_remote(*store_, prefix_, options_.keep);
  } catch (const std::exception& e) {
    error = e.what();
  }
  // Local retention with what is known about the remote (nothing, when listing failed); only
  // once this process saved a checkpoint: a run that stops at start (e.g. every checkpoint
  // damaged) changes nothing.
  std::map<std::string, int64_t> step_of;
  for (const StepDir& s : local) step_of[s.dir] = s.step;
  auto may_remove = [&](const std::string& dir) {
    if (options_.prune_unsynced) return true;
    auto known = step_of.find(dir);
    if (known == step_of.end()) return false;  // saved after the listing above
    int64_t step = known->second;
    if (remote.count(step)) return true;
    auto newer = std::distance(remote.upper_bound(step), remote.end());
    return newer >= options_.keep;
  };
  try {
    if (saved) prune_checkpoints(local_root_, options_.keep, may_remove);
  } catch (const std::exception& e) {
    log::warn("remote checkpoints: local retention failed: {}", e.what());
  }
  std::vector<std::string> missing = missing_names(wanted, remote);
  std::lock_guard<std::mutex> lock(mu_);
  missing_ = missing;
  error_ = error;
  return error.empty();
}

}  // namespace lt
