// Training checkpoints: <root>/step_00000100/{meta.json, model/, optim/, DONE}.
//
// Saving is three calls so that many ranks can share it (single process: call all three):
//   rank 0:     dir = begin_checkpoint(root, step)         creates step_N.tmp/ (stale one removed)
//   barrier
//   every rank: write_model_shard(dir, layout, weights, dtype)          (one rank per (tp, pp))
//               write_optim_shard(dir, layout, part, parts, a, b, ...)  (one rank per (tp, pp, dp))
//   barrier
//   rank 0:     finalize_checkpoint(root, meta, keep_last)  meta.json with checksums, DONE,
//                                                          rename to step_N/, `latest`, retention
// Each file is written under a temporary name and renamed, with a ".digest" sidecar (size +
// xxhash64 computed while writing) that finalize folds into meta.json, so no rank re-reads
// what another wrote. A crash at any point leaves step_N.tmp/, which is never resolved.
//
// Loading: find_latest_checkpoint() walks step directories newest first and skips (with a
// warning naming the problem) any without DONE, with a missing or truncated file, or with a
// checksum mismatch. load_model/load_optimizer (ckpt/reshard.h) read into any tp/pp/dp layout.
// Many ranks: hashing reads every byte, so let rank 0 resolve with Verify::checksums,
// broadcast the step, and have the others open_checkpoint(root, step, Verify::sizes).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ckpt/checkpoint_meta.h"
#include "core/dtype.h"
#include "core/flat_access.h"
#include "model/layout.h"

namespace lt {

// "step_00000100"
std::string step_dir_name(int64_t step);
// <root>/step_00000100.tmp: the directory ranks write into (same on every rank).
std::string checkpoint_tmp_dir(const std::string& root, int64_t step);

// Rank 0 only. Creates <root>/step_N.tmp/{model,optim}/, removing a stale one. Returns it.
std::string begin_checkpoint(const std::string& root, int64_t step);

// Writes model/tp{t}_pp{p}.safetensors: every parameter of `layout` (except tied LM-head
// copies, which are re-made from the embedding on load) converted to `dtype` (F32, BF16, F16),
// each with its global shape and slice in the metadata. `weights` is the shard's flat buffer.
// `weights` reaches the shard's flat buffer wherever it lives (one tensor at a time).
void write_model_shard(const std::string& tmp_dir, const ParamLayout& layout, FlatAccess& weights, DType dtype);
void write_model_shard(const std::string& tmp_dir, const ParamLayout& layout, const float* weights, DType dtype);

// Writes optim/tp{t}_pp{p}_dp{part}.safetensors: the AdamW state of flat elements [begin, end)
// of the shard's buffer (a ZeRO-1 partition; without ZeRO-1: part 0 of 1, [0, layout.total())).
// master/exp_avg/exp_avg_sq point at element `begin` (they hold end - begin floats). Stored per
// parameter as 1-D F32 tensors "master.<name>", "exp_avg.<name>", "exp_avg_sq.<name>" holding
// elements [a, b) of the flattened local tensor, a and b in the metadata.
void write_optim_shard(const std::string& tmp_dir, const ParamLayout& layout, int part, int parts, size_t begin,
                       size_t end, const float* master, const float* exp_avg, const float* exp_avg_sq);
// The same through FlatAccess (element 0 of each is flat element `begin`).
void write_optim_shard(const std::string& tmp_dir, const ParamLayout& layout, int part, int parts, size_t begin,
                       size_t end, FlatAccess& master, FlatAccess& exp_avg, FlatAccess& exp_avg_sq);

// The __metadata__ of a model shard file: format, layout, and per tensor its slice record
// {"global_shape", "split_dim", "split_begin"} (tied LM-head copies are not stored).
std::map<std::string, std::string> model_shard_metadata(const ParamLayout& layout);
// Leaves `path`.digest (size + xxhash64) for finalize_checkpoint to fold into meta.json.
void record_file_digest(const std::string& path, const FileDigest& d);

// Rank 0 only, after every rank has written. Checks that every file `meta` implies is present,
// records size + xxhash64 of each in meta.json, writes DONE, fsyncs, renames step_N.tmp to
// step_N (replacing an older step_N), writes `latest`, removes ".tmp" leftovers of older steps,
// then deletes all but the newest
// `keep_last` complete steps (keep_last <= 0: keep all; prune_checkpoints). meta.step names the
// step; meta.files is filled here. Returns the final directory.
std::string finalize_checkpoint(const std::string& root, CheckpointMeta meta, int keep_last);

// Convenience for one process holding every (tp, pp) shard: begin + write each model shard
// (and its optimizer state as one partition when `master` is set) + finalize.
struct ShardState {
  const ParamLayout* layout = nullptr;
  const float* weights = nullptr;
  const float* master = nullptr;  // whole-shard AdamW state, or all nullptr
  const float* exp_avg = nullptr;
  const float* exp_avg_sq = nullptr;
};
std::string save_checkpoint(const std::string& root, CheckpointMeta meta, const std::vector<ShardState>& shards,
                            DType model_dtype, int keep_last);

enum class Verify { sizes, checksums };

// Reads and checks one step directory: meta.json parses, DONE exists, every listed file has
// its size (and, with Verify::checksums, its xxhash64). Throws naming the problem.
CheckpointMeta verify_checkpoint(const std::string& step_dir, Verify verify = Verify::checksums);

struct CheckpointRef {
  std::string dir;  // the step directory
  CheckpointMeta meta;
};
// The newest valid step under `root`; invalid ones are skipped with a warning. nullopt: none.
std::optional<CheckpointRef> find_latest_checkpoint(const std::string& root, Verify verify = Verify::checksums);
// What `checkpoint.resume: auto` continues from: the newest valid step under `root`, or nullopt
// when `root` holds no step directory at all (a new run). When step directories exist but none
// verifies, throws an error listing each and what is wrong with it, and changes nothing:
// starting from random weights would overwrite checkpoints that may be partly intact.
std::optional<CheckpointRef> find_resume_checkpoint(const std::string& root, Verify verify = Verify::checksums);

// A step_N directory under a checkpoint root (complete when it has DONE; not verified).
struct StepDir {
  int64_t step = 0;
  std::string dir;
  bool done = false;
};
// Every step_N directory under `root`, newest first (no ".tmp" or other suffixes).
std::vector<StepDir> list_step_dirs(const std::string& root);

// Retention: keeps the newest `keep_last` (>= 1) complete steps under `root` and deletes the
// older complete ones for which `may_remove(step_dir)` is true (default: all of them), plus,
// older than the newest kept step, directories without DONE (a deletion that was cut short).
// Returns the step directories deleted. (finalize_checkpoint removes ".tmp" leftovers.)
std::vector<std::string> prune_checkpoints(const std::string& root, int keep_last,
                                           const std::function<bool(const std::string&)>& may_remove = {});
// Deletes a step directory so that it never looks complete while it goes: DONE is removed (and
// that made durable) before anything else, so a kill at any moment leaves either a complete
// checkpoint or a directory without DONE, which every reader skips.
void remove_checkpoint_dir(const std::string& step_dir);
// `path` is a step directory (has meta.json) or a root; `step` >= 0 asks for that step.
// Throws when nothing valid is found, naming what was skipped and why.
CheckpointRef open_checkpoint(const std::string& path, int64_t step = -1, Verify verify = Verify::checksums);
// True when `path` looks like a checkpoint root or step directory (for open_weights).
bool is_checkpoint_path(const std::string& path);

}  // namespace lt
