// Checkpointer: the trainer's checkpoints — where a run starts from (checkpoint.resume, the
// remote copy, `init` weights or seeded random ones), what a checkpoint holds (meta.json:
// step, tokens, layout, data position, scheduler, run config), saving every rank's shards
// through bounded host buffers (the stage's memory may be on a GPU), loading at any tp/pp/dp
// layout, rolling back after a diverged step, and the background upload to checkpoint.remote.
// An interleaved pipeline's chunks are saved as the shards of its v·pp virtual stages.
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "ckpt/checkpoint.h"
#include "ckpt/checkpoint_sync.h"
#include "launch/fault_hooks.h"
#include "model/backend.h"
#include "parallel/topology.h"
#include "train/async_checkpoint.h"
#include "train/rank_model.h"
#include "train/run_config.h"

namespace lt {

// The trainer's position, as a checkpoint stores it.
struct TrainPosition {
  int64_t step = 0, tokens_seen = 0;
  int64_t data_position = 0;  // global samples consumed (data/loader.h)
  // Saved into meta.json's "extra" beside the run config (data state, spike guard); a loaded
  // position carries the checkpoint's whole "extra" and its "scheduler".
  nlohmann::json extra = nlohmann::json::object();
  nlohmann::json scheduler;
};

class Checkpointer {
 public:
  Checkpointer(const RunConfig& cfg, const LlamaConfig& model, ProcessGroups& groups, RankModel& rank, Backend& backend,
               const FaultHooks& hooks);
  ~Checkpointer();

  // checkpoint.remote: restore the newest complete remote checkpoint into an empty local
  // directory (as SageMaker does) and upload every new checkpoint in the background.
  // Collective over the world.
  void setup_remote();
  // Where this run starts: the checkpoint checkpoint.resume names (auto: the newest complete
  // one under checkpoint.dir), loaded at this layout; else, with init_mode full, the whole state
  // of the `init` checkpoint; else the `init` weights or seeded random ones with a fresh
  // optimizer (returns position 0). Rank 0 logs one line saying which, and what was reset.
  // Collective.
  TrainPosition restore_or_init();
  // Back to the newest complete checkpoint's weights, optimizer state, step and token count
  // (NaN rollback); its data position is returned too, but a caller that wants the diverged
  // batches not to be replayed keeps its own. Collective.
  TrainPosition rollback(int64_t at_step);
  // Saves step `pos.step`; `scheduler` is stored as meta.json's "scheduler". Collective.
  // With checkpoint.async it returns once the state is copied to host memory and writes the
  // files in the background (train/async_checkpoint.h), after waiting for the previous save.
  void save(const TrainPosition& pos, const nlohmann::json& scheduler);
  // Before the optimizer changes the weights: waits until an asynchronous save writing from
  // the live state (host memory) has read it; the wait counts as checkpoint stall.
  void release_state();
  // Waits until every save this rank started is written (rank 0: finalised), then for every
  // rank (collective); rethrows a background writer's error. Call before exiting.
  void finish();
  int64_t written() const { return written_; }
  // At exit (world rank 0): waits at most checkpoint.remote_wait_s for the remote copies and
  // reports them (nullopt without checkpoint.remote); a report that is not complete makes the
  // run exit kExitRemoteIncomplete.
  std::optional<RemoteSyncStatus> finish_remote();
  // Seconds the step loop spent inside save() and release_state() (the stall checkpoints cost it).
  double stall_seconds() const { return stall_s_; }

 private:
  TrainPosition load(const CheckpointRef& ref);

  const RunConfig& cfg_;
  const LlamaConfig& model_;
  ProcessGroups& groups_;
  RankModel& rank_;
  Backend& backend_;
  const FaultHooks& hooks_;
  std::unique_ptr<CheckpointSync> sync_;  // world rank 0, when checkpoint.remote is set
  AsyncCheckpointWriter writer_;           // after sync_: joined before it is destroyed
  int64_t written_ = 0;
  double stall_s_ = 0;
};

}  // namespace lt
