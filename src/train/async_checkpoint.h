// Asynchronous checkpoint writing (checkpoint.async): the files are written and checksummed on
// a thread of their own while training goes on.
//
//   save k:   wait for save k−1 on this rank (its files; on rank 0 also its finalisation)
//             rank 0 creates step_k.tmp/, barrier                     (as a synchronous save)
//             host memory (CPU): the writer reads the live weights and optimizer state, which
//               nothing changes before the next optimizer update; the update first waits until
//               the writer has read them (release_state(): copy-on-write at step granularity,
//               no copy, and no wait at all when writing takes less than a step's compute)
//             device memory: a snapshot — weights (dp rank 0) and this rank's optimizer range
//               copied to host buffers between steps
//             → writer thread: the shards with their .digest sidecars (size + xxhash64)
//               rank 0's writer then waits until every file the checkpoint needs has its
//               sidecar (each rank's writer leaves it last, after the file is renamed into
//               place) and finalises: meta.json, DONE, rename to step_k/, `latest`, retention
//   training goes on meanwhile; the last save (train.steps, SIGTERM, the wall-clock stop)
//   waits for completion before the process exits (finish()).
//
// Nothing changes for crash safety: a checkpoint is complete only once finalised, so a kill at
// any moment leaves at most a step_k.tmp/ that loading never takes. A writer's error (disk
// full, ...) is rethrown by the next save or finish(), naming the file; rank 0 gives up waiting
// for the other ranks' files after `peer_timeout_s` with an error that names the missing ones
// (the checkpoint directory must be shared by all ranks, as for a synchronous save).
//
// MPI is only ever called by the main thread (MPI_THREAD_FUNNELED): the writer touches files
// and host memory alone.
#pragma once
#include <cstddef>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <memory>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "ckpt/checkpoint_meta.h"
#include "core/buffer.h"
#include "core/flat_access.h"
#include "model/layout.h"

namespace lt {

// One (tp, pp) shard a rank writes: its model file and/or its optimizer part.
struct ShardWrite {
  const ParamLayout* layout = nullptr;
  bool model = false;                // write model/tp_pp.safetensors (dp rank 0)
  bool optim = false;                // write optim/tp_pp_dp.safetensors
  int part = 0, parts = 1;
  size_t begin = 0, end = 0;         // the optimizer range [begin, end) of the flat buffer
};
// Where a shard's state is: the whole flat weight buffer, AdamW's m and v of [begin, end).
struct ShardAccess {
  FlatAccess* weights = nullptr;
  FlatAccess* exp_avg = nullptr;
  FlatAccess* exp_avg_sq = nullptr;
};

// What one rank writes for one checkpoint (a shard per model chunk it holds).
struct CheckpointJob {
  std::string root, tmp_dir;         // checkpoint.dir and its step_k.tmp/
  std::vector<ShardWrite> shards;
  std::optional<CheckpointMeta> meta;  // rank 0: finalise with this meta (files filled in)
  int keep_last = 0;
  double delay_s = 0;                // test hook: wait with the shards written, before finalising
  double peer_timeout_s = 1800;      // rank 0: longest wait for the other ranks' files
  std::function<void(const std::string& dir)> on_final;  // rank 0: after finalising (log, upload)
};

class AsyncCheckpointWriter {
 public:
  AsyncCheckpointWriter() = default;
  // Waits for the writer, which stops waiting for the other ranks' files at once (an unfinished
  // checkpoint stays a .tmp); an error is logged (it cannot be thrown).
  ~AsyncCheckpointWriter();

  // Copies this rank's state into the host snapshot, per shard: the whole weight buffer when
  // it writes the model, else [begin, end) of it; AdamW's m and v of [begin, end) when it
  // writes the optimizer. The previous job must be finished (wait()).
  void snapshot(const CheckpointJob& job, const std::vector<ShardAccess>& state);
  // Starts writing the snapshot; returns at once.
  void start(CheckpointJob job);
  // Starts writing straight from `state` (host memory), which must not change until
  // release_state() has returned; `access` keeps its FlatAccess objects alive meanwhile.
  void start_live(CheckpointJob job, std::vector<ShardAccess> state, std::vector<std::unique_ptr<FlatAccess>> access);
  // Until a live job has read the state (at once when there is none); the seconds waited.
  double release_state();
  // Until the running job (if any) is done; rethrows its error.
  void wait();
  bool busy() const { return thread_.joinable(); }

  // Synchronous: writes the shards straight from the state (no host copy).
  static void write(const CheckpointJob& job, const std::vector<ShardAccess>& state);

 private:
  void run(const CheckpointJob& job);
  void finish_job(const CheckpointJob& job);  // delay hook, then rank 0 finalises
  struct Snapshot {
    Buffer weights, m, v;        // reused from save to save
    size_t weights_offset = 0;   // flat element held at weights[0]
  };
  std::vector<Snapshot> snaps_;
  std::thread thread_;
  std::exception_ptr error_;
  std::atomic<bool> cancel_{false};  // set by the destructor: stop waiting for the other ranks
  std::mutex mu_;
  std::condition_variable cv_;
  bool reading_ = false;  // a live job still reads the state
};

// Rank 0: waits until every file `meta` implies is in `tmp_dir` with its .digest sidecar;
// throws naming the missing files after `timeout_s`.
// Throws when `cancel` becomes true meanwhile (the process is unwinding on an error).
void wait_for_shards(const std::string& tmp_dir, const CheckpointMeta& meta, double timeout_s,
                     const std::atomic<bool>* cancel = nullptr);

}  // namespace lt
