#include "train/checkpointer.h"

#include <algorithm>

#include "ckpt/remote_store.h"
#include "ckpt/reshard.h"
#include "ckpt/tensor_source.h"
#include "core/error.h"
#include "core/log.h"
#include "core/timer.h"
#include "model/init.h"

namespace lt {

Checkpointer::Checkpointer(const RunConfig& cfg, const LlamaConfig& model, ProcessGroups& groups, RankModel& rank,
                           Backend& backend, const FaultHooks& hooks)
    : cfg_(cfg), model_(model), groups_(groups), rank_(rank), backend_(backend), hooks_(hooks) {}

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
  for (int c = 0; c < rank_.chunks(); ++c) {
    ModelChunk& k = rank_.chunk(c);
    const ParamLayout& layout = *k.layout;
    float* w = k.stage->weights();
    load_model(ref, layout, *backend_.access(w, layout.total()));
    const size_t total = layout.total(), b = std::min(k.opt->begin(), total), e = std::min(k.opt->end(), total);
    // fp32 training: the master weights are the weights themselves.
    load_optimizer(ref, layout, b, e, *backend_.access(w + b, e - b), *backend_.access(k.opt->exp_avg(), e - b),
                   *backend_.access(k.opt->exp_avg_sq(), e - b));
    k.stage->refresh_weights();
  }
  const ParallelDims& d = groups_.dims();
  if (groups_.world().rank() == 0)
    log::info("loaded {} (step {}, saved at tp{} pp{} dp{}, running at tp{} pp{}{} dp{})", ref.dir, m.step, m.tp, m.pp,
              m.dp, d.tp, d.pp, rank_.chunks() > 1 ? fmt::format(" v{}", rank_.chunks()) : "", d.dp);
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

  std::unique_ptr<TensorSource> src;
  if (!cfg_.init.empty()) {
    src = open_weights(cfg_.init);
    LT_CHECK(same_architecture(src->config(), model_), "init '{}' holds a model with {}, but model '{}' has {}",
             cfg_.init, architecture_summary(src->config()), cfg_.model, architecture_summary(model_));
  }
  for (int c = 0; c < rank_.chunks(); ++c) {
    ModelChunk& k = rank_.chunk(c);
    auto w = backend_.access(k.stage->weights(), k.layout->total());
    if (src)
      load_weights(*src, *k.layout, *w);
    else
      init_weights(*k.layout, *w, cfg_.seed);
    w.reset();
    k.stage->refresh_weights();
  }
  if (world.rank() == 0) {
    if (src) {
      log::info("initialised weights from {}", src->describe());
      log::info("start: init_mode weights: the weights of {}; reset: optimizer state (zero), step (0), learning-rate "
                "schedule (from its start), data position (every source from its first sample)",
                cfg_.init);
    } else {
      log::info("initialised {} weights from seed {}", model_.name, cfg_.seed);
      log::info("start: a fresh run from random weights: step 0, new optimizer state, data from its beginning");
    }
  }
  return {};
}

TrainPosition Checkpointer::rollback(int64_t at_step) {
  writer_.wait();  // the newest checkpoint may still be being written
  int64_t at = -1;
  Comm& world = groups_.world();
  if (world.rank() == 0)
    if (auto ref = find_latest_checkpoint(cfg_.checkpoint_dir)) at = ref->meta.step;
  world.broadcast(&at, sizeof at, 0);
  LT_CHECK(at >= 0, "step {}: a rollback (train.nan_policy or train.spike_policy) found no checkpoint to roll back to", at_step);
  return load(open_checkpoint(cfg_.checkpoint_dir, at, Verify::sizes));
}

void Checkpointer::save(const TrainPosition& pos, const nlohmann::json& scheduler) {
  Timer timer;
  writer_.wait();  // the next save waits for the previous one
  Comm& world = groups_.world();
  const RankCoords& rc = groups_.coords();
  const int dp = groups_.dims().dp;
  CheckpointJob job;
  job.root = cfg_.checkpoint_dir;
  job.tmp_dir = checkpoint_tmp_dir(cfg_.checkpoint_dir, pos.step);
  // With a remote, retention waits for the remote copies (the sync applies checkpoint.keep).
  job.keep_last = sync_ ? 0 : cfg_.checkpoint_keep;
  job.delay_s = hooks_.save_delay_s;
  std::vector<std::unique_ptr<FlatAccess>> access;
  std::vector<ShardAccess> state;
  for (int c = 0; c < rank_.chunks(); ++c) {
    ModelChunk& k = rank_.chunk(c);
    const size_t total = k.layout->total();
    ShardWrite w;
    w.layout = k.layout.get();
    // ZeRO-1: each data-parallel rank writes its range; otherwise dp rank 0 writes everything.
    w.model = rc.dp_rank == 0;
    w.optim = k.opt->zero1() || rc.dp_rank == 0;
    w.part = k.opt->zero1() ? rc.dp_rank : 0;
    w.parts = k.opt->zero1() ? dp : 1;
    w.begin = std::min(k.opt->begin(), total);
    w.end = std::min(k.opt->end(), total);
    job.shards.push_back(w);
    access.push_back(backend_.access(k.stage->weights(), total));
    access.push_back(backend_.access(k.opt->exp_avg(), w.end - w.begin));
    access.push_back(backend_.access(k.opt->exp_avg_sq(), w.end - w.begin));
    state.push_back({access[access.size() - 3].get(), access[access.size() - 2].get(), access.back().get()});
  }
  if (world.rank() == 0) {
    const ShardSpec& s = rank_.chunk(0).layout->shard();
    CheckpointMeta m;
    m.step = pos.step;
    m.tokens_seen = pos.tokens_seen;
    m.config = model_;
    m.tp = s.tp;
    m.pp = s.pp;  // v·pp with an interleaved pipeline: its chunks are the shards
    m.stage_starts = s.stage_starts;
    m.dp = dp;
    m.optim_parts = rank_.chunk(0).opt->zero1() ? dp : 1;
    m.model_dtype = DType::F32;
    m.data_position = pos.data_position;
    m.data_seed = cfg_.seed;
    m.scheduler = scheduler;
    m.extra = pos.extra;
    m.extra["run_config"] = cfg_.resolved;
    job.meta = std::move(m);
    job.on_final = [this](const std::string& dir) {
      log::info("checkpoint saved: {}", dir);
      if (sync_) sync_->checkpoint_saved();
    };
    begin_checkpoint(cfg_.checkpoint_dir, pos.step);
  }
  world.barrier();
  if (cfg_.checkpoint_async && backend_.device() == Device::cpu) {
    writer_.start_live(std::move(job), std::move(state), std::move(access));
  } else if (cfg_.checkpoint_async) {
    writer_.snapshot(job, state);
    writer_.start(std::move(job));
  } else {
    AsyncCheckpointWriter::write(job, state);
    hooks_.delay_save();  // test hook: a kill mid-save finds the shards written, nothing final
    world.barrier();
    if (job.meta) job.on_final(finalize_checkpoint(job.root, *job.meta, job.keep_last));
    world.barrier();
  }
  ++written_;
  const double stall = timer.seconds();
  stall_s_ += stall;
  if (world.rank() == 0)
    log::info("checkpoint step {}: the step loop waited {:.3f} s ({})", pos.step, stall,
              !cfg_.checkpoint_async ? "written synchronously"
              : backend_.device() == Device::cpu
                  ? "files written in the background; the next optimizer update waits until they have read the state"
                  : "state copied, files written in the background");
}

void Checkpointer::release_state() { stall_s_ += writer_.release_state(); }

// Collective: no rank may exit before rank 0 has finalised the last checkpoint — a rank that
// exits with 85 (stopped) makes mpirun / srun end the others, finalisation included.
void Checkpointer::finish() {
  writer_.wait();
  groups_.world().barrier();
}

}  // namespace lt
