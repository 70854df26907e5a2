// Copying checkpoint directories to and from a RemoteStore, independent of what the files
// inside are. A local checkpoint is a directory <root>/step_XXXXXXXX/ whose `DONE` marker is
// written last by the checkpoint writer; remotely it becomes the keys
// <prefix>/step_XXXXXXXX/<relative path>, and its DONE object is uploaded LAST, after every
// other object exists, so a remote checkpoint is complete exactly when its DONE is there.
// Readers (newest_complete_remote, download_checkpoint) only trust checkpoints with DONE;
// pruning deletes DONE FIRST, so a half-deleted checkpoint is never taken for a complete one.
// ckpt/checkpoint_sync.h keeps a training run's checkpoints in sync with these.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
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

}  // namespace lt
