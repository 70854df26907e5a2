#include "train/checkpointer.h"

#include <algorithm>

#include "ckpt/remote_store.h"
#include "ckpt/reshard.h"
#include "ckpt/tensor_source.h"
#include "core/error.h"
#include "core/log.h"
#include "model/init.h"

namespace lt {

Checkpointer::Checkpointer(const RunConfig& cfg, const LlamaConfig& model, ProcessGroups& groups, Stage& stage,
                           ShardedAdamW& opt, Backend& backend, const FaultHooks& hooks)
    : cfg_(cfg), model_(model), groups_(groups), stage_(stage), opt_(opt), backend_(backend), hooks_(hooks) {}

Checkpointer::~Checkpointer() = default;

std::optional<RemoteSyncStatus> Checkpointer::finish_remote() {
  if (!sync_) return std::nullopt;
  return sync_->finish();
}

void Checkpointer::setup_remote() {
  if (cfg_.remote.empty()) return;
  Comm& world = groups_.world();
  if (world.rank() == 0)
    sync_ = CheckpointSync::start(cfg_.remote, cfg_.checkpoint_dir, cfg_.resume == "auto",
                                  {cfg_.checkpoint_keep, cfg_.prune_unsynced, cfg_.remote_wait_s});
  world.barrier();
}

// Weights, optimizer state, step and token count from a checkpoint of any layout.
TrainPosition Checkpointer::load(const CheckpointRef& ref) {
  const CheckpointMeta& m = ref.meta;
  LT_CHECK(same_architecture(m.config, model_), "checkpoint {} holds a model with {}, but model '{}' has {}", ref.dir,
           architecture_summary(m.config), cfg_.model, architecture_summary(model_));
  const ParamLayout& layout = stage_.layout();
  float* w = stage_.weights();
  load_model(ref, layout, *backend_.access(w, layout.total()));
  const size_t total = layout.total(), b = std::min(opt_.begin(), total), e = std::min(opt_.end(), total);
  // fp32 training: the master weights are the weights themselves.
  load_optimizer(ref, layout, b, e, *backend_.access(w + b, e - b), *backend_.access(opt_.exp_avg(), e - b),
                 *backend_.access(opt_.exp_avg_sq(), e - b));
  stage_.refresh_weights();
  const ShardSpec& s = layout.shard();
  if (groups_.world().rank() == 0)
    log::info("loaded {} (step {}, saved at tp{} pp{} dp{}, running at tp{} pp{} dp{})", ref.dir, m.step, m.tp, m.pp,
              m.dp, s.tp, s.pp, groups_.dims().dp);
  return {m.step, m.tokens_seen, m.data_position, m.extra, m.scheduler};
}

TrainPosition Checkpointer::restore_or_init() {
  Comm& world = groups_.world();
  int64_t resume_step = -1;
  const std::string resume_root = cfg_.resume == "auto" || cfg_.resume == "none" ? cfg_.checkpoint_dir : cfg_.resume;
  if (cfg_.resume != "none") {
    // Hashing reads every byte: rank 0 verifies checksums, the others trust its choice.
    if (world.rank() == 0) {
      if (cfg_.resume == "auto") {
        // Every step directory damaged is an error listing them (nothing is overwritten).
        if (auto ref = find_resume_checkpoint(resume_root)) resume_step = ref->meta.step;
      } else {
        resume_step = open_checkpoint(resume_root).meta.step;
      }
    }
    world.broadcast(&resume_step, sizeof resume_step, 0);
  }
  if (resume_step >= 0) {
    TrainPosition p = load(open_checkpoint(resume_root, resume_step, Verify::sizes));
    if (world.rank() == 0 && !cfg_.init.empty())
      log::info("start: resuming this run at step {} (init '{}' is not read again)", p.step, cfg_.init);
    return p;
  }
  if (cfg_.init_mode == InitMode::full) {
    int64_t step = -1;
    if (world.rank() == 0) step = open_checkpoint(cfg_.init).meta.step;
    world.broadcast(&step, sizeof step, 0);
    TrainPosition p = load(open_checkpoint(cfg_.init, step, Verify::sizes));
    if (world.rank() == 0)
      log::info("start: init_mode full: the whole state of {} at step {} (weights, optimizer, step, tokens seen, data "
                "position) continues under this run's schedule and run directory; nothing reset",
                cfg_.init, p.step);
    return p;
  }

  const ParamLayout& layout = stage_.layout();
  auto w = backend_.access(stage_.weights(), layout.total());
  if (cfg_.init.empty()) {
    init_weights(layout, *w, cfg_.seed);
    if (world.rank() == 0) {
      log::info("initialised {} weights from seed {}", model_.name, cfg_.seed);
      log::info("start: a fresh run from random weights: step 0, new optimizer state, data from its beginning");
    }
  } else {
    auto src = open_weights(cfg_.init);
    LT_CHECK(same_architecture(src->config(), model_), "init '{}' holds a model with {}, but model '{}' has {}",
             cfg_.init, architecture_summary(src->config()), cfg_.model, architecture_summary(model_));
    load_weights(*src, layout, *w);
    if (world.rank() == 0) {
      log::info("initialised weights from {}", src->describe());
      log::info("start: init_mode weights: the weights of {}; reset: optimizer state (zero), step (0), learning-rate "
                "schedule (from its start), data position (every source from its first sample)",
                cfg_.init);
    }
  }
  stage_.refresh_weights();
  return {};
}

TrainPosition Checkpointer::rollback(int64_t at_step) {
  int64_t at = -1;
  Comm& world = groups_.world();
  if (world.rank() == 0)
    if (auto ref = find_latest_checkpoint(cfg_.checkpoint_dir)) at = ref->meta.step;
  world.broadcast(&at, sizeof at, 0);
  LT_CHECK(at >= 0, "step {}: a rollback (train.nan_policy or train.spike_policy) found no checkpoint to roll back to", at_step);
  return load(open_checkpoint(cfg_.checkpoint_dir, at, Verify::sizes));
}

void Checkpointer::save(const TrainPosition& pos, const nlohmann::json& scheduler) {
  Comm& world = groups_.world();
  const RankCoords& rc = groups_.coords();
  const int dp = groups_.dims().dp;
  const ParamLayout& layout = stage_.layout();
  const std::string tmp = checkpoint_tmp_dir(cfg_.checkpoint_dir, pos.step);
  if (world.rank() == 0) begin_checkpoint(cfg_.checkpoint_dir, pos.step);
  world.barrier();
  float* w = stage_.weights();
  const size_t total = layout.total();
  if (rc.dp_rank == 0) write_model_shard(tmp, layout, *backend_.access(w, total), DType::F32);
  if (opt_.zero1() || rc.dp_rank == 0) {
    // ZeRO-1: each data-parallel rank writes its range; otherwise dp rank 0 writes everything.
    const size_t b = std::min(opt_.begin(), total), e = std::min(opt_.end(), total);
    const int part = opt_.zero1() ? rc.dp_rank : 0, parts = opt_.zero1() ? dp : 1;
    write_optim_shard(tmp, layout, part, parts, b, e, *backend_.access(w + b, e - b),
                      *backend_.access(opt_.exp_avg(), e - b), *backend_.access(opt_.exp_avg_sq(), e - b));
  }
  hooks_.delay_save();  // test hook: a kill mid-save finds the shards written, nothing final
  world.barrier();
  if (world.rank() == 0) {
    CheckpointMeta m;
    m.step = pos.step;
    m.tokens_seen = pos.tokens_seen;
    m.config = model_;
    m.tp = layout.shard().tp;
    m.pp = layout.shard().pp;
    m.stage_starts = layout.shard().stage_starts;
    m.dp = dp;
    m.optim_parts = opt_.zero1() ? dp : 1;
    m.model_dtype = DType::F32;
    m.data_position = pos.data_position;
    m.data_seed = cfg_.seed;
    m.scheduler = scheduler;
    m.extra = pos.extra;
    m.extra["run_config"] = cfg_.resolved;
    // With a remote, retention waits for the remote copies (the sync applies checkpoint.keep).
    const std::string dir = finalize_checkpoint(cfg_.checkpoint_dir, m, sync_ ? 0 : cfg_.checkpoint_keep);
    log::info("checkpoint saved: {}", dir);
    if (sync_) sync_->checkpoint_saved();
  }
  ++written_;
  world.barrier();
}

}  // namespace lt
