#include "train/trainer.h"

#include <omp.h>

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
#include "launch/fault_hooks.h"
#include "model/backend.h"
#include "parallel/device_comm.h"
#include "parallel/job_layout.h"
#include "parallel/runtime.h"
#include "parallel/topology.h"
#include "parallel/tp_comm_ops.h"
#include "train/checkpointer.h"
#include "train/metrics.h"
#include "train/nan_guard.h"
#include "train/pipeline.h"
#include "train/rank_model.h"
#include "train/run_status.h"
#include "train/schedule.h"
#include "train/spike_guard.h"
#include "train/train_data.h"
#include "train/validator.h"

namespace lt {

using json = nlohmann::json;

namespace {

std::atomic<int> g_stop_signal{0};
extern "C" void on_stop_signal(int sig) { g_stop_signal.store(sig); }

struct StepResult {
  double loss = 0, grad_norm = 0;
  bool skipped = false;  // non-finite loss or gradient norm, or a spike: no update
  bool spike = false;
  std::string why;  // the spike: which value, by how much
};

class Trainer {
 public:
  Trainer(const RunConfig& cfg, Runtime& rt);
  int run(const TrainOptions& opts);

 private:
  void setup_data();
  void restore();
  StepResult train_step(double lr);
  void evaluate(MetricsSink* metrics);
  void on_spike(const StepResult& r, int64_t samples_from, MetricsSink* metrics);
  bool is_log_rank() const { return rt_.world().rank() == 0; }

  RunConfig cfg_;
  Runtime& rt_;
  FaultHooks hooks_ = FaultHooks::from_env();
  std::unique_ptr<ProcessGroups> groups_;         // MPI: host scalars, barriers, checkpoints
  std::unique_ptr<Comm> device_world_;            // NCCL when the stage's memory is on a GPU
  std::unique_ptr<ProcessGroups> device_groups_;  // carved from it: stage memory (else groups_)
  ProcessGroups& dev() const { return device_groups_ ? *device_groups_ : *groups_; }
  std::unique_ptr<Comm> mp_;  // tp × pp of one data-parallel replica (the norm without ZeRO-1)
  LlamaConfig model_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<CommTpOps> tp_ops_;
  std::unique_ptr<RankModel> rank_;  // this rank's stage, or its chunks of an interleaved pipeline
  std::unique_ptr<PipelineSchedule> pipe_;
  std::unique_ptr<Checkpointer> ckpt_;
  std::unique_ptr<TrainData> data_;
  std::unique_ptr<Validator> validator_;
  int dp_ = 1, micro_batches_ = 1, local_batch_ = 1;
  LrSchedule sched_;
  TrainPosition pos_;
  NanGuard nan_guard_;
  SpikeGuard spike_;
  RankTimes times_;  // for rank_<r>.json: the timed steps (all but the first)
  bool timing_ = false;  // past the run's first step (a rollback does not start it again)
};

Trainer::Trainer(const RunConfig& cfg, Runtime& rt)
    : cfg_(cfg),
      rt_(rt),
      nan_guard_(cfg.nan_policy, rt.world().rank() == 0),
      spike_(cfg.spike_policy, cfg.spike_sigma, cfg.spike_window, cfg.spike_lr_scale, cfg.spike_lr_steps) {
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
  device_world_ = make_device_world(*backend_, rt.world());
  if (device_world_) device_groups_ = std::make_unique<ProcessGroups>(*device_world_, cfg.tp, cfg.pp);
  const RankModelOptions ro = rank_model_options(cfg, model_, dp_, micro_batches_);
  if (d.tp > 1) tp_ops_ = std::make_unique<CommTpOps>(dev().tp());
  rank_ = std::make_unique<RankModel>(dev(), *backend_, tp_ops_.get(), ro);
  pipe_ = std::make_unique<PipelineSchedule>(rank_->stages(), d.pp > 1 ? &dev().pp() : nullptr, micro_batches_);
  for (int c = 0; c < rank_->chunks(); ++c) pipe_->set_grad_ready_hook(c, rank_->chunk(c).reducer->hook());
  ckpt_ = std::make_unique<Checkpointer>(cfg_, model_, *groups_, *rank_, *backend_, hooks_);
  sched_ = {cfg.schedule, cfg.lr,           cfg.min_lr,         cfg.warmup_steps,   cfg.decay_steps,
            cfg.cooldown_steps, cfg.decay_fraction, cfg.decay_shape, cfg.warmup_start_lr};
}

void Trainer::setup_data() {
  data_ = std::make_unique<TrainData>(cfg_, model_, groups_->coords().dp_rank, dp_, is_log_rank());
  if (!data_->valid_sets().empty())
    validator_ = std::make_unique<Validator>(data_->valid_sets(), *groups_, *pipe_, cfg_.micro_batch_size,
                                             cfg_.seq_len, cfg_.eval_batches, cfg_.document_mask,
                                             cfg_.restart_positions);
}

// Where the run starts (checkpointer), then the data position, the spike guard's window and
// the learning-rate plan, said once.
void Trainer::restore() {
  pos_ = ckpt_->restore_or_init();
  data_->restore(pos_.extra, pos_.data_position);
  spike_.restore(pos_.extra.value("spike_guard", nlohmann::json()));
  if (!is_log_rank()) return;
  log::info("lr plan: {}", sched_.describe(cfg_.steps));
  if (pos_.step > 0 && !pos_.scheduler.is_null())
    if (std::string note = schedule_change(pos_.scheduler, sched_, pos_.step); !note.empty()) log::warn("{}", note);
}

// Loader → pipeline (1F1B forward/backward) → gradient sums → global norm, clipping → AdamW on
// this rank's range → all-gather of the weights (ZeRO-1) → the stage's compute copies.
StepResult Trainer::train_step(double lr) {
  int64_t counted = data_->next_batch();
  if (dp_ > 1) groups_->dp().all_reduce_sum(&counted, 1);
  LT_CHECK(counted > 0, "step {}: the global batch has no target tokens", pos_.step);

  rank_->zero_grads();
  pipe_->set_documents(data_->doc_start(), cfg_.restart_positions);
  double loss_sum = pipe_->train(data_->inputs(), data_->targets(), float(1.0 / double(counted)));
  times_.pipeline_wait_s += pipe_->wait_seconds();
  rank_->reduce();
  const bool hook_rank = hooks_.on_rank(rt_.world().rank());
  if (hooks_.take_nan(pos_.step + 1) && hook_rank) {  // test hook: a poisoned gradient, as a diverging run makes
    auto g = backend_->access(rank_->grad_range(0), 1);
    g->write(0, 1)[0] = std::numeric_limits<float>::quiet_NaN();
    g->flush();
  }
  if (hooks_.take_spike(pos_.step + 1) && hook_rank) {  // test hook: a bad batch's gradient and loss on this rank
    for (int c = 0; c < rank_->chunks(); ++c) {
      const size_t n = rank_->chunk(c).opt->end() - rank_->chunk(c).opt->begin();
      auto g = backend_->access(rank_->grad_range(c), n);
      float* x = g->write(0, n);
      for (size_t i = 0; i < n; ++i) x[i] *= 1000.0f;
      g->flush();
    }
    loss_sum *= 10.0;
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
  StepResult r;
  r.loss = sums[0] / double(counted);
  r.grad_norm = std::sqrt(sums[1]);
  r.skipped = !std::isfinite(r.loss) || !std::isfinite(r.grad_norm);
  if (!r.skipped) r.skipped = r.spike = spike_.is_spike(r.loss, r.grad_norm, &r.why);
  if (r.skipped) return r;
  spike_.accept(r.loss, r.grad_norm);
  float coef = 1.0f;
  if (cfg_.grad_clip > 0 && cfg_.grad_clip / (r.grad_norm + 1e-6) < 1.0) coef = float(cfg_.grad_clip / (r.grad_norm + 1e-6));
  ckpt_->release_state();  // an asynchronous save may still be reading the weights
  rank_->update(lr, coef, pos_.step + 1);
  return r;
}

// Every held-out set, in the console, metrics.jsonl and TensorBoard (data.valid_path alone keeps
// its single "eval" record).
void Trainer::evaluate(MetricsSink* metrics) {
  const std::vector<ValidLoss> v = validator_->evaluate();
  if (!metrics) return;
  if (cfg_.valid.empty()) metrics->eval(pos_.step, v[0].loss);
  else metrics->eval(pos_.step, v);
}

// A spike's log line and metrics.jsonl event: the step, the value, the samples of its batch.
void Trainer::on_spike(const StepResult& r, int64_t samples_from, MetricsSink* metrics) {
  spike_.spiked();
  if (!metrics) return;
  const char* action = spike_.rolls_back() ? "rollback" : "skip";
  log::warn("step {}: spike: {}; update skipped{}; its global samples [{}, {}) ({})", pos_.step, r.why,
            spike_.rolls_back() ? ", rolling back" : "", samples_from, pos_.data_position,
            data_->describe_samples(samples_from, pos_.data_position));
  // The step's own record holds its loss and gradient norm.
  metrics->event({{"step", pos_.step}, {"event", "spike"}, {"action", action}, {"why", r.why},
                  {"samples", {samples_from, pos_.data_position}}});
}

int Trainer::run(const TrainOptions& opts) {
  Comm& world = rt_.world();
  if (is_log_rank()) ensure_writable_dir(cfg_.run_dir, "run.dir");
  setup_data();
  ckpt_->setup_remote();
  restore();
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
  StepMeter meter(tokens_per_step, model_.flops_per_token(cfg_.seq_len) * double(tokens_per_step),
                  backend_->peak_flops(cfg_.precision) * world.size(), cfg_.steps, cfg_.seq_len,
                  metrics != nullptr);
  if (is_log_rank()) {
    const ParallelDims& d = groups_->dims();
    log::info("training {} ({:.2f}M params) for {} steps on {}: tp{} pp{}{} dp{}{}, {} micro-batches of {} x {} tokens "
              "per replica; layers cut at [{}]",
              model_.name, double(model_.num_params()) / 1e6, cfg_.steps, backend_->describe(), d.tp, d.pp,
              rank_->chunks() > 1 ? fmt::format(" (interleaved, {} chunks per rank)", rank_->chunks()) : "", dp_,
              rank_->chunk(0).stage->sequence_parallel() ? " sequence-parallel" : "", micro_batches_, cfg_.micro_batch_size,
              cfg_.seq_len, fmt::join(rank_->stage_starts(), ","));
    log::info("memory of this rank's stage: {}", rank_->memory_report());
  }
  if (validator_ && cfg_.eval_at_start && pos_.step == 0) evaluate(metrics.get());
  const int64_t first_step = pos_.step;
  Timer run_timer;
  int exit_code = 0;
  while (pos_.step < cfg_.steps) {
    meter.start();
    const double lr = sched_.at(pos_.step) * spike_.lr_factor(pos_.step);
    const int64_t samples_from = data_->position();
    const StepResult r = train_step(lr);
    ++pos_.step;
    pos_.tokens_seen += tokens_per_step;
    pos_.data_position = data_->position();
    const bool rollback = r.spike ? spike_.rolls_back()
                                  : r.skipped && nan_guard_.on_nonfinite(pos_.step, r.loss, r.grad_norm);
    if (r.spike) on_spike(r, samples_from, metrics.get());
    const bool first = !timing_;  // the run's first step (primitive creation) is left out of the timings
    timing_ = true;
    StepRecord m = meter.finish(pos_.step, pos_.tokens_seen, r.loss, lr, r.grad_norm, first);
    if (first) {
      times_.pipeline_wait_s = 0;
      rank_->reset_stats();
      for (Comm* c : {&dev().tp(), &dev().pp(), &dev().dp(), &world}) c->reset_stats();
    } else {
      times_.step_s += m.step_s;
      ++times_.steps;
    }
    if (metrics) {
      m.skipped = r.skipped;
      m.skip_reason = r.spike ? "spike" : "non-finite";
      if (!cfg_.sources.empty()) m.sources = data_->loader().counts();
      metrics->step(m, pos_.step % cfg_.log_every == 0 || pos_.step == cfg_.steps);
    }
    if (rollback) {  // the step counter goes back; the data position keeps moving forward
      const TrainPosition at = ckpt_->rollback(pos_.step);
      if (is_log_rank())
        log::warn("rolled back to step {}: global samples [{}, {}) are not replayed ({}){}", at.step,
                  at.data_position, pos_.data_position, data_->describe_samples(at.data_position, pos_.data_position),
                  r.spike && cfg_.spike_lr_scale < 1
                      ? fmt::format("; lr x {} until step {}", cfg_.spike_lr_scale, at.step + cfg_.spike_lr_steps)
                      : "");
      pos_.step = at.step;
      pos_.tokens_seen = at.tokens_seen;
      if (r.spike) spike_.rolled_back(at.step);
      else nan_guard_.rolled_back();
      continue;
    }
    if (validator_ && cfg_.eval_every > 0 && pos_.step % cfg_.eval_every == 0) evaluate(metrics.get());
    if (is_log_rank()) write_heartbeat(cfg_.run_dir, pos_.step, "train");
    hooks_.exit_after_step(pos_.step, world.rank());
    int64_t stop = g_stop_signal.load();
    world.all_reduce_sum(&stop, 1);
    const bool last = pos_.step == cfg_.steps;
    if ((last && cfg_.checkpoint_at_end) || stop || (cfg_.checkpoint_every > 0 && pos_.step % cfg_.checkpoint_every == 0)) {
      pos_.extra = {{"data", data_->state()}};
      if (spike_.enabled()) pos_.extra["spike_guard"] = spike_.state();
      json sched = sched_.to_json();
      sched["step"] = pos_.step;
      ckpt_->save(pos_, sched);
    }
    if (stop && !last) {
      if (is_log_rank()) log::warn("stop signal received: checkpoint at step {} saved, exiting", pos_.step);
      exit_code = kExitStopped;
      break;
    }
  }
  ckpt_->finish();  // the last checkpoint is complete before the exit status says so
  if (times_.steps > 0)
    write_rank_stats(cfg_.run_dir, world.rank(), rank_stats(*rank_, dev(), world, micro_batches_, times_));
  const std::optional<RemoteSyncStatus> remote = ckpt_->finish_remote();
  if (remote && !remote->complete && exit_code == 0) exit_code = kExitRemoteIncomplete;
  if (is_log_rank()) {
    json s = {{"steps_run", pos_.step - first_step}, {"step", pos_.step}, {"first_loss", meter.first_loss()},
              {"final_loss", meter.last_loss()}, {"tokens_per_s", meter.tokens_per_s()}, {"mean_step_s", meter.mean()}, {"checkpoints_written", ckpt_->written()},
              {"checkpoint_stall_s", ckpt_->stall_seconds()},
              {"nan_skipped", nan_guard_.skipped()}, {"rollbacks", nan_guard_.rollbacks()},
              {"spikes", spike_.spikes()},
              {"loader_s_per_step", data_->loader_seconds() / double(std::max<int64_t>(1, pos_.step - first_step))},
              {"peak_rss_bytes", peak_rss_bytes()}, {"stopped", exit_code == kExitStopped},
              {"wall_s", run_timer.seconds()}};
    if (metrics) metrics->summary(s);
    if (opts.json) std::printf("%s\n", s.dump().c_str());
    write_exit_status(cfg_.run_dir, exit_code, pos_.step, cfg_.steps, remote ? remote->to_json() : nullptr);
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
  rt.set_compute_threads(cfg.threads);
  Trainer t(cfg, rt);
  return t.run(opts);
}

}  // namespace lt
