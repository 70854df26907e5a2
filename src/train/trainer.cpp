#include "train/trainer.h"

#include <omp.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <csignal>
#include <limits>
#include <memory>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/buffer.h"
#include "core/error.h"
#include "core/file.h"
#include "core/log.h"
#include "core/timer.h"
#include "data/batch.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "launch/fault_hooks.h"
#include "model/backend.h"
#include "parallel/job_layout.h"
#include "parallel/runtime.h"
#include "parallel/topology.h"
#include "parallel/tp_comm_ops.h"
#include "train/checkpointer.h"
#include "train/grad_reducer.h"
#include "train/metrics.h"
#include "train/nan_guard.h"
#include "train/optimizer.h"
#include "train/pipeline.h"
#include "train/rank_model.h"
#include "train/run_status.h"
#include "train/schedule.h"
#include "train/validator.h"

namespace lt {

using json = nlohmann::json;

namespace {

std::atomic<int> g_stop_signal{0};
extern "C" void on_stop_signal(int sig) { g_stop_signal.store(sig); }

struct StepResult {
  double loss = 0, grad_norm = 0;
  bool skipped = false;  // non-finite loss or gradient norm: no update
};

class Trainer {
 public:
  Trainer(const RunConfig& cfg, Runtime& rt);
  int run(const TrainOptions& opts);

 private:
  void setup_data();
  StepResult train_step(double lr);
  bool is_log_rank() const { return rt_.world().rank() == 0; }
  json rank_stats(int64_t steps) const;

  RunConfig cfg_;
  Runtime& rt_;
  FaultHooks hooks_ = FaultHooks::from_env();
  std::unique_ptr<ProcessGroups> groups_;
  std::unique_ptr<Comm> mp_;  // tp × pp of one data-parallel replica (the norm without ZeRO-1)
  LlamaConfig model_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<CommTpOps> tp_ops_;
  std::unique_ptr<RankModel> rank_;  // this rank's stage, or its chunks of an interleaved pipeline
  std::unique_ptr<PipelineSchedule> pipe_;
  std::unique_ptr<Checkpointer> ckpt_;
  std::unique_ptr<TokenDataset> data_, valid_;
  std::unique_ptr<Loader> loader_;
  std::unique_ptr<Validator> validator_;
  std::vector<int32_t> samples_, inputs_, targets_;
  int dp_ = 1, micro_batches_ = 1, local_batch_ = 1;
  LrSchedule sched_;
  TrainPosition pos_;
  NanGuard nan_guard_;
  double pipe_wait_s_ = 0, timed_step_s_ = 0;
};

Trainer::Trainer(const RunConfig& cfg, Runtime& rt)
    : cfg_(cfg), rt_(rt), nan_guard_(cfg.nan_policy, rt.world().rank() == 0) {
  model_ = resolve_model_config(cfg.model);
  groups_ = std::make_unique<ProcessGroups>(rt.world(), cfg.tp, cfg.pp);
  const ParallelDims& d = groups_->dims();
  const RankCoords& rc = groups_->coords();
  dp_ = d.dp;
  // The seed's vocabulary: dp from the world size, micro-batches from the global batch;
  // a clash is an error that names the numbers and suggests values that work.
  JobLayout job = derive_job_layout(job_shape(cfg, 1, rt.world().size()), model_);
  if (is_log_rank())
    for (const auto& w : job.warnings) log::warn("{}", w);
  local_batch_ = cfg.global_batch_size / dp_;
  micro_batches_ = local_batch_ / cfg.micro_batch_size;
  mp_ = rt.world().split(rc.dp_rank, rt.world().rank());
  if (cfg.sequence_parallel && d.tp == 1 && is_log_rank())
    log::warn("parallel.sequence_parallel has no effect with parallel.tp = 1");

  backend_ = make_backend(cfg.device, {omp_get_max_threads(), rt.launch().local_rank});
  RankModelOptions ro;
  ro.geometry = {model_, {}, {}, dp_, cfg.zero1 && dp_ > 1, omp_get_max_threads()};
  StageOptions& so = ro.geometry.options;
  so.micro_batch = cfg.micro_batch_size;
  so.seq_len = cfg.seq_len;
  so.recompute = cfg.recompute;
  so.pack_weights = cfg.pack_weights;
  so.precision = cfg.precision;
  so.sequence_parallel = cfg.sequence_parallel;
  ro.cut = cfg.stage_starts;
  ro.virtual_stages = cfg.virtual_stages;
  ro.micro_batches = micro_batches_;
  ro.adam = {cfg.beta1, cfg.beta2, cfg.eps, cfg.weight_decay, cfg.decay_embeddings};
  ro.reduce = {cfg.overlap_grad_reduce, size_t(cfg.grad_bucket_mb * 1048576.0)};
  if (d.tp > 1) tp_ops_ = std::make_unique<CommTpOps>(groups_->tp());
  rank_ = std::make_unique<RankModel>(*groups_, *backend_, tp_ops_.get(), ro);
  pipe_ = std::make_unique<PipelineSchedule>(rank_->stages(), d.pp > 1 ? &groups_->pp() : nullptr, micro_batches_);
  for (int c = 0; c < rank_->chunks(); ++c) pipe_->set_grad_ready_hook(c, rank_->chunk(c).reducer->hook());
  ckpt_ = std::make_unique<Checkpointer>(cfg_, model_, *groups_, *rank_, *backend_, hooks_);
  sched_ = {cfg.schedule, cfg.lr, cfg.min_lr, cfg.warmup_steps, cfg.decay_steps};
}

void Trainer::setup_data() {
  data_ = TokenDataset::open(cfg_.data_path, cfg_.seq_len + 1);
  LT_CHECK(data_->sample_tokens() >= cfg_.seq_len,
           "data.path '{}': samples hold {} tokens, fewer than train.seq_len = {}", cfg_.data_path,
           data_->sample_tokens(), cfg_.seq_len);
  LT_CHECK(data_->max_token_id() < model_.vocab_size,
           "data.path '{}' holds token id {} but the model's vocab_size is {} (prepared with another tokenizer?)",
           cfg_.data_path, data_->max_token_id(), model_.vocab_size);
  loader_ = std::make_unique<Loader>(*data_, cfg_.seed, cfg_.data_shuffle, groups_->coords().dp_rank, dp_);
  samples_.resize(size_t(local_batch_) * size_t(data_->sample_tokens()));
  inputs_.resize(size_t(local_batch_) * size_t(cfg_.seq_len));
  targets_.resize(inputs_.size());
  if (!cfg_.valid_path.empty()) {
    valid_ = TokenDataset::open(cfg_.valid_path, cfg_.seq_len + 1);
    LT_CHECK(valid_->max_token_id() < model_.vocab_size, "data.valid_path '{}' holds token id {} >= vocab_size {}",
             cfg_.valid_path, valid_->max_token_id(), model_.vocab_size);
    validator_ = std::make_unique<Validator>(*valid_, *groups_, *pipe_, cfg_.micro_batch_size, cfg_.seq_len,
                                             cfg_.eval_batches);
  }
  if (is_log_rank()) log::info("data: {}", data_->describe());
}

// Loader → pipeline (1F1B forward/backward) → gradient sums → global norm, clipping → AdamW on
// this rank's range → all-gather of the weights (ZeRO-1) → the stage's compute copies.
StepResult Trainer::train_step(double lr) {
  loader_->next_batch(cfg_.global_batch_size, samples_.data());
  int64_t counted = samples_to_inputs_targets(samples_.data(), local_batch_, data_->sample_tokens(), cfg_.seq_len,
                                              inputs_.data(), targets_.data());
  if (dp_ > 1) groups_->dp().all_reduce_sum(&counted, 1);
  LT_CHECK(counted > 0, "step {}: the global batch has no target tokens", pos_.step);

  rank_->zero_grads();
  const double loss_sum = pipe_->train(inputs_.data(), targets_.data(), float(1.0 / double(counted)));
  pipe_wait_s_ += pipe_->wait_seconds();
  rank_->reduce();
  if (hooks_.take_nan(pos_.step + 1)) {  // test hook: a poisoned gradient, as a diverging run makes
    auto g = backend_->access(rank_->grad_range(0), 1);
    g->write(0, 1)[0] = std::numeric_limits<float>::quiet_NaN();
    g->flush();
  }
  // Loss: summed on the last stage's tp rank 0 of every replica. Norm: Σg² of every rank's
  // range (ZeRO-1: over the world; without it one replica's model-parallel group).
  const RankCoords& rc = groups_->coords();
  double sums[2] = {groups_->last_stage() && rc.tp_rank == 0 ? loss_sum : 0.0, rank_->range_sum_squares()};
  if (cfg_.zero1 && dp_ > 1) {
    rt_.world().all_reduce_sum(sums, 2);
  } else {
    rt_.world().all_reduce_sum(sums, 1);
    mp_->all_reduce_sum(sums + 1, 1);
  }
  StepResult r{sums[0] / double(counted), std::sqrt(sums[1])};
  r.skipped = !std::isfinite(r.loss) || !std::isfinite(r.grad_norm);
  if (r.skipped) return r;
  float coef = 1.0f;
  if (cfg_.grad_clip > 0 && cfg_.grad_clip / (r.grad_norm + 1e-6) < 1.0) coef = float(cfg_.grad_clip / (r.grad_norm + 1e-6));
  ckpt_->release_state();  // an asynchronous save may still be reading the weights
  rank_->update(lr, coef, pos_.step + 1);
  return r;
}

json Trainer::rank_stats(int64_t steps) const {
  const RankCoords& rc = groups_->coords();
  auto comm = [&](Comm& c) {
    const CommStats& s = c.stats();
    return json{{"size", c.size()}, {"calls_per_step", double(s.calls) / double(steps)},
                {"payload_bytes_per_step", double(s.payload_bytes) / double(steps)},
                {"sent_bytes_per_step", double(s.sent_bytes) / double(steps)},
                {"seconds_per_step", s.seconds / double(steps)}};
  };
  return {{"rank", rt_.world().rank()}, {"tp_rank", rc.tp_rank}, {"pp_rank", rc.pp_rank}, {"dp_rank", rc.dp_rank},
          {"steps", steps}, {"step_s", timed_step_s_ / double(steps)},
          {"pipeline_wait_s_per_step", pipe_wait_s_ / double(steps)}, {"micro_batches", micro_batches_},
          {"grad_reduce", rank_->reduce_stats(steps)}, {"virtual_stages", rank_->chunks()},
          {"sequence_parallel", rank_->chunk(0).stage->sequence_parallel()},
          {"activation_bytes", rank_->activation_bytes()},
          {"peak_rss_bytes", peak_rss_bytes()},
          {"comm", {{"tp", comm(groups_->tp())}, {"pp", comm(groups_->pp())}, {"dp", comm(groups_->dp())},
                    {"world", comm(rt_.world())}}}};
}

int Trainer::run(const TrainOptions& opts) {
  Comm& world = rt_.world();
  if (is_log_rank()) ensure_writable_dir(cfg_.run_dir, "run.dir");
  setup_data();
  ckpt_->setup_remote();
  pos_ = ckpt_->restore_or_init();
  loader_->set_position(pos_.data_position);
  if (is_log_rank()) {
    clear_exit_status(cfg_.run_dir);
    write_heartbeat(cfg_.run_dir, pos_.step, "start");
  }
  // A stop asked for while loading: nothing new to save.
  int64_t early_stop = g_stop_signal.load();
  world.all_reduce_sum(&early_stop, 1);
  if (early_stop) {
    if (is_log_rank()) {
      log::warn("stop signal received while starting: exiting at step {} without training", pos_.step);
      write_exit_status(cfg_.run_dir, kExitStopped, pos_.step, cfg_.steps);
    }
    return kExitStopped;
  }
  std::unique_ptr<MetricsSink> metrics;
  if (is_log_rank()) metrics = std::make_unique<MetricsSink>(cfg_.run_dir, pos_.step);
  const int64_t tokens_per_step = int64_t(cfg_.global_batch_size) * cfg_.seq_len;
  const double flops_per_step = model_.flops_per_token(cfg_.seq_len) * double(tokens_per_step);
  const double peak = backend_->peak_flops(cfg_.precision) * world.size();
  if (is_log_rank()) {
    const ParallelDims& d = groups_->dims();
    log::info("training {} ({:.2f}M params) for {} steps on {}: tp{} pp{}{} dp{}{}, {} micro-batches of {} x {} tokens "
              "per replica; layers cut at [{}]",
              model_.name, double(model_.num_params()) / 1e6, cfg_.steps, backend_->describe(), d.tp, d.pp,
              rank_->chunks() > 1 ? fmt::format(" (interleaved, {} chunks per rank)", rank_->chunks()) : "", dp_,
              rank_->chunk(0).stage->sequence_parallel() ? " sequence-parallel" : "", micro_batches_, cfg_.micro_batch_size,
              cfg_.seq_len, fmt::join(rank_->stage_starts(), ","));
    constexpr double MiB = 1024.0 * 1024.0;
    const RankModel& m = *rank_;
    log::info("memory of this rank's stage: weights {:.1f} MiB, gradients {:.1f}, optimizer {:.1f}, activations {:.1f}, "
              "workspace {:.1f} (total {:.1f} MiB)",
              m.bytes(MemKind::weights) / MiB, m.bytes(MemKind::gradients) / MiB, m.bytes(MemKind::optimizer) / MiB,
              m.bytes(MemKind::activations) / MiB, m.bytes(MemKind::workspace) / MiB,
              (m.bytes(MemKind::weights) + m.bytes(MemKind::gradients) + m.bytes(MemKind::optimizer) +
               m.bytes(MemKind::activations) + m.bytes(MemKind::workspace)) / MiB);
  }
  const int64_t first_step = pos_.step;
  StepStats stats;
  Timer run_timer;
  double last_loss = std::nan(""), first_loss = std::nan("");
  int exit_code = 0;
  while (pos_.step < cfg_.steps) {
    Timer t;
    const int64_t faults0 = page_faults();
    const double lr = sched_.at(pos_.step);
    const StepResult r = train_step(lr);
    ++pos_.step;
    pos_.tokens_seen += tokens_per_step;
    pos_.data_position = loader_->position();
    const bool rollback = r.skipped && nan_guard_.on_nonfinite(pos_.step, r.loss, r.grad_norm);
    if (std::isnan(first_loss)) first_loss = r.loss;
    last_loss = r.loss;
    const double dt = t.seconds();
    stats.add(dt, pos_.step - first_step > 1);
    if (pos_.step - first_step == 1) {  // the first step (primitive creation) is left out of the rank stats
      pipe_wait_s_ = 0;
      rank_->reset_stats();
      for (Comm* c : {&groups_->tp(), &groups_->pp(), &groups_->dp(), &world}) c->reset_stats();
    } else {
      timed_step_s_ += dt;
    }
    if (metrics) {
      StepRecord m;
      m.step = pos_.step;
      m.steps = cfg_.steps;
      m.loss = r.loss;
      m.lr = lr;
      m.grad_norm = r.grad_norm;
      m.step_s = dt;
      m.tokens_per_s = double(tokens_per_step) / dt;
      m.mfu = flops_per_step / dt / peak;
      m.tokens = pos_.tokens_seen;
      m.page_faults = page_faults() - faults0;
      m.rss_bytes = current_rss_bytes();
      m.peak_rss_bytes = peak_rss_bytes();
      m.eta_s = stats.mean() * double(cfg_.steps - pos_.step);
      m.skipped = r.skipped;
      metrics->step(m, pos_.step % cfg_.log_every == 0 || pos_.step == cfg_.steps);
    }
    if (rollback) {  // the step counter goes back; the data position keeps moving forward
      const TrainPosition at = ckpt_->rollback(pos_.step);
      pos_.step = at.step;
      pos_.tokens_seen = at.tokens_seen;
      nan_guard_.rolled_back();
      continue;
    }
    if (validator_ && cfg_.eval_every > 0 && pos_.step % cfg_.eval_every == 0) {
      const double el = validator_->evaluate();
      if (metrics) metrics->eval(pos_.step, el);
    }
    if (is_log_rank()) write_heartbeat(cfg_.run_dir, pos_.step, "train");
    int64_t stop = g_stop_signal.load();
    world.all_reduce_sum(&stop, 1);
    const bool last = pos_.step == cfg_.steps;
    if (last || stop || (cfg_.checkpoint_every > 0 && pos_.step % cfg_.checkpoint_every == 0))
      ckpt_->save(pos_, {{"kind", enum_name(sched_.kind)}, {"lr", sched_.lr}, {"min_lr", sched_.min_lr},
                         {"warmup", sched_.warmup}, {"decay", sched_.decay}, {"step", pos_.step}});
    if (stop && !last) {
      if (is_log_rank()) log::warn("stop signal received: checkpoint at step {} saved, exiting", pos_.step);
      exit_code = kExitStopped;
      break;
    }
  }
  ckpt_->finish();  // the last checkpoint is complete before the exit status says so
  const int64_t timed = pos_.step - first_step - 1;
  if (timed > 0) write_rank_stats(cfg_.run_dir, world.rank(), rank_stats(timed));
  if (is_log_rank()) {
    json s = {{"steps_run", pos_.step - first_step}, {"step", pos_.step}, {"first_loss", first_loss},
              {"final_loss", last_loss}, {"tokens_per_s", stats.mean() > 0 ? double(tokens_per_step) / stats.mean() : 0.0},
              {"mean_step_s", stats.mean()}, {"checkpoints_written", ckpt_->written()},
              {"checkpoint_stall_s", ckpt_->stall_seconds()},
              {"nan_skipped", nan_guard_.skipped()}, {"rollbacks", nan_guard_.rollbacks()},
              {"peak_rss_bytes", peak_rss_bytes()}, {"stopped", exit_code != 0}, {"wall_s", run_timer.seconds()}};
    if (metrics) metrics->summary(s);
    if (opts.json) std::printf("%s\n", s.dump().c_str());
    write_exit_status(cfg_.run_dir, exit_code, pos_.step, cfg_.steps);
  }
  return exit_code;
}

}  // namespace

int run_training(const RunConfig& cfg, const TrainOptions& opts) {
  RuntimeOptions ro;
  Runtime rt(ro);
  // Installed before anything slow, so a stop during start-up is seen (and acted on) too.
  std::signal(SIGTERM, on_stop_signal);
  std::signal(SIGINT, on_stop_signal);
  if (rt.distributed()) log::set_rank(rt.world().rank());
  int threads = cfg.threads;
  if (threads <= 0 && std::getenv("OMP_NUM_THREADS")) threads = omp_get_max_threads();
  if (threads <= 0) {
    int cores = int(sysconf(_SC_NPROCESSORS_ONLN));
    threads = std::max(1, cores / std::max(1, rt.launch().local_size));
  }
  omp_set_num_threads(threads);
  Trainer t(cfg, rt);
  return t.run(opts);
}

}  // namespace lt
