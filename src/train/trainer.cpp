#include "train/trainer.h"

#include <omp.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <limits>
#include <cmath>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "ckpt/checkpoint.h"
#include "ckpt/checkpoint_sync.h"
#include "ckpt/reshard.h"
#include "ckpt/tensor_source.h"
#include "core/buffer.h"
#include "core/env.h"
#include "core/error.h"
#include "core/file.h"
#include "core/log.h"
#include "core/timer.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "model/llama.h"
#include "parallel/job_layout.h"
#include "parallel/runtime.h"
#include "parallel/topology.h"
#include "train/metrics.h"
#include "train/optimizer.h"
#include "train/pipeline.h"
#include "train/rank_faults.h"
#include "train/schedule.h"

namespace lt {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::atomic<int> g_stop_signal{0};
extern "C" void on_stop_signal(int sig) { g_stop_signal.store(sig); }

// Megatron's f/g, the sequence-parallel gather / reduce-scatter of rows and the
// vocab-parallel cross-entropy reductions over the tp group.
class CommTpOps : public TensorParallelOps {
 public:
  explicit CommTpOps(Comm& tp) : tp_(tp) {}
  void reduce_partial(float* x, int64_t n) override { tp_.all_reduce_sum(x, size_t(n)); }
  void reduce_input_grad(float* dx, int64_t n) override { tp_.all_reduce_sum(dx, size_t(n)); }
  void vocab_max(float* x, int64_t n) override { tp_.all_reduce_max(x, size_t(n)); }
  void vocab_sum(float* x, int64_t n) override { tp_.all_reduce_sum(x, size_t(n)); }
  void all_gather_rows(const float* local, float* full, int64_t n_local) override {
    tp_.all_gather(local, full, size_t(n_local));
  }
  void reduce_scatter_rows(const float* full, float* local, int64_t n_local) override {
    tp_.reduce_scatter_sum(full, local, size_t(n_local));
  }

 private:
  Comm& tp_;
};

class Trainer {
 public:
  Trainer(const RunConfig& cfg, Runtime& rt);
  int run(const TrainOptions& opts);

 private:
  void setup_data();
  void restore_or_init();
  void load_checkpoint_state(const CheckpointRef& ref);
  void setup_remote();
  void write_heartbeat(const char* phase) const;
  void write_exit_status(int status) const;
  void build_micro_batches(const int32_t* samples, int count, int32_t* inputs, int32_t* targets) const;
  double train_step(double lr, double& grad_norm, bool& skipped);
  void reduce_gradients();
  void save_checkpoint();
  double evaluate();
  bool is_log_rank() const { return rt_.world().rank() == 0; }

  RunConfig cfg_;
  Runtime& rt_;
  std::unique_ptr<ProcessGroups> groups_;
  std::unique_ptr<Comm> mp_;        // tp × pp of one data-parallel replica (norms without ZeRO-1)
  std::unique_ptr<Comm> kv_group_;  // tp ranks sharing one KV head (tp > kv heads)
  LlamaConfig model_;
  ShardSpec shard_;
  std::unique_ptr<ParamLayout> layout_;
  std::unique_ptr<ShardedAdamW> opt_;
  Buffer weights_, grads_, grad_shard_;
  std::unique_ptr<CommTpOps> tp_ops_;
  std::unique_ptr<LlamaStage> stage_;
  std::unique_ptr<PipelineSchedule> pipe_;
  std::unique_ptr<TokenDataset> data_, valid_;
  std::unique_ptr<Loader> loader_;
  Buffer samples_, inputs_, targets_;
  int dp_ = 1, micro_batches_ = 1, local_batch_ = 1;
  LrSchedule sched_;
  int64_t step_ = 0, tokens_seen_ = 0, checkpoints_written_ = 0, nan_skipped_ = 0, rollbacks_ = 0;
  std::unique_ptr<CheckpointSync> uploader_;  // world rank 0, when checkpoint.remote is set
  double pipe_wait_s_ = 0, timed_step_s_ = 0;
  // LT_FAULT_NAN_AT_STEP=k: the gradient of step k becomes NaN (tests of train.nan_policy).
  int64_t fault_nan_step_ = env_int("LT_FAULT_NAN_AT_STEP", -1);  // over counted steps, for <run.dir>/ranks/
  void write_rank_stats(int64_t steps) const;
};

Trainer::Trainer(const RunConfig& cfg, Runtime& rt) : cfg_(cfg), rt_(rt) {
  model_ = resolve_model_config(cfg.model);
  groups_ = std::make_unique<ProcessGroups>(rt.world(), cfg.tp, cfg.pp);
  const auto& d = groups_->dims();
  const auto& rc = groups_->coords();
  dp_ = d.dp;
  shard_.tp = d.tp;
  shard_.tp_rank = rc.tp_rank;
  shard_.pp = d.pp;
  shard_.pp_rank = rc.pp_rank;
  shard_.stage_starts = cfg.stage_starts;
  layout_ = std::make_unique<ParamLayout>(model_, shard_);
  // The seed's vocabulary: dp from the world size, micro-batches from the global batch;
  // a clash is an error that names the numbers and suggests values that work.
  JobLayout job = derive_job_layout(job_shape(cfg, 1, rt.world().size()), model_);
  if (rt.world().rank() == 0)
    for (const auto& w : job.warnings) log::warn("{}", w);
  local_batch_ = cfg.global_batch_size / dp_;
  micro_batches_ = local_batch_ / cfg.micro_batch_size;

  mp_ = rt.world().split(rc.dp_rank, rt.world().rank());
  LocalDims ld = local_dims(model_, shard_);
  if (ld.kv_replicas > 1)
    kv_group_ = groups_->tp().split(rc.tp_rank / ld.kv_replicas, rc.tp_rank);

  AdamWConfig ac{cfg.beta1, cfg.beta2, cfg.eps, cfg.weight_decay, cfg.decay_embeddings};
  opt_ = std::make_unique<ShardedAdamW>(*layout_, ac, rc.dp_rank, dp_, cfg.zero1 && dp_ > 1);
  weights_ = Buffer(opt_->padded() * sizeof(float));
  grads_ = Buffer(opt_->padded() * sizeof(float));
  if (opt_->zero1()) grad_shard_ = Buffer((opt_->end() - opt_->begin()) * sizeof(float));

  StageOptions so;
  so.micro_batch = cfg.micro_batch_size;
  so.seq_len = cfg.seq_len;
  so.recompute = cfg.recompute;
  so.pack_weights = cfg.pack_weights;
  so.precision = parse_precision(cfg.precision);
  so.sequence_parallel = cfg.sequence_parallel;
  if (cfg.sequence_parallel && d.tp == 1 && rt.world().rank() == 0)
    log::warn("parallel.sequence_parallel has no effect with parallel.tp = 1");
  so.slots = PipelineSchedule::slots_needed(d.pp, rc.pp_rank, micro_batches_);
  if (d.tp > 1) tp_ops_ = std::make_unique<CommTpOps>(groups_->tp());
  stage_ = std::make_unique<LlamaStage>(*layout_, so, weights_.as<float>(), grads_.as<float>(), tp_ops_.get());
  pipe_ = std::make_unique<PipelineSchedule>(*stage_, d.pp > 1 ? &groups_->pp() : nullptr, micro_batches_);

  sched_.kind = cfg.schedule;
  sched_.lr = cfg.lr;
  sched_.min_lr = cfg.min_lr;
  sched_.warmup = cfg.warmup_steps;
  sched_.decay = cfg.decay_steps;
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
  samples_ = Buffer(size_t(local_batch_) * size_t(data_->sample_tokens()) * sizeof(int32_t));
  inputs_ = Buffer(size_t(local_batch_) * size_t(cfg_.seq_len) * sizeof(int32_t));
  targets_ = Buffer(size_t(local_batch_) * size_t(cfg_.seq_len) * sizeof(int32_t));
  if (!cfg_.valid_path.empty()) {
    valid_ = TokenDataset::open(cfg_.valid_path, cfg_.seq_len + 1);
    LT_CHECK(valid_->max_token_id() < model_.vocab_size, "data.valid_path '{}' holds token id {} >= vocab_size {}",
             cfg_.valid_path, valid_->max_token_id(), model_.vocab_size);
  }
  if (is_log_rank()) log::info("data: {}", data_->describe());
}

// A sample of L tokens gives inputs s[0, T) and targets s[1, T]; when L == T the last target
// is ignored (the Hugging Face convention for blocks of exactly seq_len tokens).
void Trainer::build_micro_batches(const int32_t* samples, int count, int32_t* inputs, int32_t* targets) const {
  const int T = cfg_.seq_len, L = data_->sample_tokens();
  for (int b = 0; b < count; ++b) {
    const int32_t* s = samples + int64_t(b) * L;
    for (int t = 0; t < T; ++t) {
      inputs[int64_t(b) * T + t] = s[t];
      targets[int64_t(b) * T + t] = t + 1 < L ? s[t + 1] : -1;
    }
  }
}

bool same_shape(const LlamaConfig& a, const LlamaConfig& b) {
  return a.dim == b.dim && a.n_layers == b.n_layers && a.vocab_size == b.vocab_size && a.n_heads == b.n_heads &&
         a.n_kv_heads == b.n_kv_heads && a.hidden_dim == b.hidden_dim && a.tie_embeddings == b.tie_embeddings;
}

// Weights, optimizer state, step and token count from a checkpoint of any layout.
void Trainer::load_checkpoint_state(const CheckpointRef& ref) {
  const CheckpointMeta& m = ref.meta;
  LT_CHECK(same_shape(m.config, model_), "checkpoint {} holds a different model than '{}'", ref.dir, cfg_.model);
  float* w = weights_.as<float>();
  load_model(ref, *layout_, w);
  size_t total = layout_->total();
  size_t b = std::min(opt_->begin(), total), e = std::min(opt_->end(), total);
  // fp32 training: the master weights are the weights themselves.
  load_optimizer(ref, *layout_, b, e, w + b, opt_->exp_avg(), opt_->exp_avg_sq());
  step_ = m.step;
  tokens_seen_ = m.tokens_seen;
  if (is_log_rank())
    log::info("loaded {} (step {}, saved at tp{} pp{} dp{}, running at tp{} pp{} dp{})", ref.dir, m.step, m.tp, m.pp,
              m.dp, shard_.tp, shard_.pp, dp_);
}

// checkpoint.remote: restore the newest complete remote checkpoint into an empty local
// directory (as SageMaker does), and upload every new checkpoint in the background.
void Trainer::setup_remote() {
  if (cfg_.remote.empty()) return;
  if (rt_.world().rank() == 0)
    uploader_ = CheckpointSync::start(cfg_.remote, cfg_.checkpoint_dir, cfg_.resume == "auto",
                                      {cfg_.checkpoint_keep, cfg_.prune_unsynced, cfg_.remote_wait_s});
  rt_.world().barrier();
}

// <run.dir>/heartbeat.json: the launcher's hang watchdog reads the step and time.
// "phase" is "start" once the weights are loaded, then "train" after every step.
void Trainer::write_heartbeat(const char* phase) const {
  std::string path = cfg_.run_dir + "/heartbeat.json";
  std::string tmp = path + ".tmp";
  if (std::FILE* f = std::fopen(tmp.c_str(), "w")) {
    std::fprintf(f, "{\"step\": %lld, \"time\": %.3f, \"pid\": %d, \"phase\": \"%s\"}\n", (long long)step_,
                 std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count(),
                 int(getpid()), phase);
    std::fclose(f);
    std::rename(tmp.c_str(), path.c_str());
  }
}

// <run.dir>/exit.json: how this process ended (0 done, 85 stopped after saving), so a
// launcher that only sees mpirun's status (e.g. mpirun itself was signalled) can tell.
void Trainer::write_exit_status(int status) const {
  json j = {{"status", status}, {"step", step_}, {"steps", cfg_.steps}};
  if (uploader_) j["remote"] = uploader_->status().to_json();
  write_file_atomic(cfg_.run_dir + "/exit.json", j.dump() + "\n");
}

void Trainer::restore_or_init() {
  Comm& world = rt_.world();
  int64_t resume_step = -1;
  std::string resume_root = cfg_.checkpoint_dir;
  if (cfg_.resume != "none") {
    if (cfg_.resume != "auto") resume_root = cfg_.resume;
    if (world.rank() == 0) {
      if (cfg_.resume == "auto") {
        if (auto ref = find_resume_checkpoint(resume_root)) resume_step = ref->meta.step;
      } else {
        resume_step = open_checkpoint(resume_root).meta.step;
      }
    }
    world.broadcast(&resume_step, sizeof resume_step, 0);
  }
  float* w = weights_.as<float>();
  if (resume_step >= 0) {
    CheckpointRef ref = open_checkpoint(resume_root, resume_step, Verify::sizes);
    load_checkpoint_state(ref);
    loader_->set_position(ref.meta.data_position);
    return;
  }
  if (cfg_.init.empty()) {
    init_weights(*layout_, w, cfg_.seed);
    if (is_log_rank()) log::info("initialised {} weights from seed {}", model_.name, cfg_.seed);
  } else {
    auto src = open_weights(cfg_.init);
    const LlamaConfig& sc = src->config();
    LT_CHECK(same_shape(sc, model_), "init '{}' holds a model of another shape than model '{}'", cfg_.init, cfg_.model);
    load_weights(*src, *layout_, w);
    if (is_log_rank()) log::info("initialised weights from {}", src->describe());
  }
}

void Trainer::reduce_gradients() {
  float* g = grads_.as<float>();
  if (stage_->sequence_parallel()) {
    // Each tp rank saw only its rows of every norm: sum the partial gradients, so the norms stay
    // identical over tp (the gradient norm counts them on tp rank 0 only).
    for (const auto& p : layout_->params())
      if (p.kind == ParamKind::norm) groups_->tp().all_reduce_sum(g + p.offset, p.numel);
  }
  if (kv_group_) {
    for (const auto& p : layout_->params())
      if (p.kind == ParamKind::attn_k || p.kind == ParamKind::attn_v) kv_group_->all_reduce_sum(g + p.offset, p.numel);
  }
  if (Comm* emb = groups_->embedding(); emb && model_.tie_embeddings) {
    for (const auto& p : layout_->params())
      if (p.kind == ParamKind::embedding || p.tied_copy) emb->all_reduce_sum(g + p.offset, p.numel);
  }
  if (dp_ > 1) {
    if (opt_->zero1())
      groups_->dp().reduce_scatter_sum(g, grad_shard_.as<float>(), opt_->end() - opt_->begin());
    else
      groups_->dp().all_reduce_sum(g, opt_->padded());
  }
}

double Trainer::train_step(double lr, double& grad_norm, bool& skipped) {
  loader_->next_batch(cfg_.global_batch_size, samples_.as<int32_t>());
  build_micro_batches(samples_.as<int32_t>(), local_batch_, inputs_.as<int32_t>(), targets_.as<int32_t>());
  int64_t counted = 0;
  const int32_t* tg = targets_.as<int32_t>();
  for (int64_t i = 0; i < int64_t(local_batch_) * cfg_.seq_len; ++i) counted += tg[i] >= 0;
  if (dp_ > 1) groups_->dp().all_reduce_sum(&counted, 1);
  LT_CHECK(counted > 0, "step {}: the global batch has no target tokens", step_);

  std::memset(grads_.data(), 0, grads_.size());
  stage_->refresh_weights();  // the packed GEMM copies of the weights the last update changed
  double loss_sum = pipe_->train(inputs_.as<int32_t>(), targets_.as<int32_t>(), float(1.0 / double(counted)));
  pipe_wait_s_ += pipe_->wait_seconds();
  reduce_gradients();
  if (fault_nan_step_ == step_ + 1) {  // test hook: a poisoned gradient, as a diverging run makes
    float* g = opt_->zero1() ? grad_shard_.as<float>() : grads_.as<float>() + opt_->begin();
    g[0] = std::numeric_limits<float>::quiet_NaN();
    fault_nan_step_ = -1;  // once
  }

  // Loss: summed on the last stage's tp rank 0 of every replica, gathered everywhere.
  const auto& rc = groups_->coords();
  double sums[2] = {groups_->last_stage() && rc.tp_rank == 0 ? loss_sum : 0.0, 0.0};
  const float* grange = opt_->zero1() ? grad_shard_.as<float>() : grads_.as<float>() + opt_->begin();
  sums[1] = opt_->range_sum_squares(grange);
  if (opt_->zero1())
    rt_.world().all_reduce_sum(sums, 2);
  else {
    rt_.world().all_reduce_sum(sums, 1);
    mp_->all_reduce_sum(sums + 1, 1);
  }
  double loss = sums[0] / double(counted);
  grad_norm = std::sqrt(sums[1]);
  skipped = !std::isfinite(loss) || !std::isfinite(grad_norm);
  if (skipped) return loss;
  float coef = 1.0f;
  if (cfg_.grad_clip > 0) {
    double c = cfg_.grad_clip / (grad_norm + 1e-6);
    if (c < 1.0) coef = float(c);
  }
  opt_->update(weights_.as<float>(), grange, lr, coef, step_ + 1);
  if (opt_->zero1())
    groups_->dp().all_gather(weights_.as<float>() + opt_->begin(), weights_.as<float>(), opt_->end() - opt_->begin());
  return loss;
}

void Trainer::save_checkpoint() {
  Comm& world = rt_.world();
  const auto& rc = groups_->coords();
  std::string tmp = checkpoint_tmp_dir(cfg_.checkpoint_dir, step_);
  if (world.rank() == 0) begin_checkpoint(cfg_.checkpoint_dir, step_);
  world.barrier();
  const float* w = weights_.as<float>();
  if (rc.dp_rank == 0) write_model_shard(tmp, *layout_, w, DType::F32);
  size_t total = layout_->total();
  if (opt_->zero1()) {
    size_t b = std::min(opt_->begin(), total), e = std::min(opt_->end(), total);
    write_optim_shard(tmp, *layout_, rc.dp_rank, dp_, b, e, w + b, opt_->exp_avg(), opt_->exp_avg_sq());
  } else if (rc.dp_rank == 0) {
    write_optim_shard(tmp, *layout_, 0, 1, 0, total, w, opt_->exp_avg(), opt_->exp_avg_sq());
  }
  // Test hook: LT_FAULT_SAVE_DELAY_S holds every save open (shards written, not yet final) so a
  // fault-injection test can kill a rank mid-save reliably.
  if (double d = env_number("LT_FAULT_SAVE_DELAY_S", 0); d > 0)
    std::this_thread::sleep_for(std::chrono::duration<double>(d));
  world.barrier();
  if (world.rank() == 0) {
    CheckpointMeta m;
    m.step = step_;
    m.tokens_seen = tokens_seen_;
    m.config = model_;
    m.tp = shard_.tp;
    m.pp = shard_.pp;
    m.stage_starts = shard_.stage_starts;
    m.dp = dp_;
    m.optim_parts = opt_->zero1() ? dp_ : 1;
    m.model_dtype = DType::F32;
    m.data_position = loader_->position();
    m.data_seed = cfg_.seed;
    m.scheduler = {{"kind", sched_.kind}, {"lr", sched_.lr}, {"min_lr", sched_.min_lr}, {"warmup", sched_.warmup},
                   {"decay", sched_.decay}, {"step", step_}};
    m.extra = {{"run_config", cfg_.resolved}};
    std::string dir = finalize_checkpoint(cfg_.checkpoint_dir, m, uploader_ ? 0 : cfg_.checkpoint_keep);
    log::info("checkpoint saved: {}", dir);
    if (uploader_) uploader_->checkpoint_saved();  // it also applies checkpoint.keep locally
  }
  ++checkpoints_written_;
  world.barrier();
}

double Trainer::evaluate() {
  // The first eval.batches micro-batches of the held-out set, in order, split over dp.
  const int mbs = cfg_.micro_batch_size, T = cfg_.seq_len;
  const int64_t n = std::min<int64_t>(valid_->num_samples(), int64_t(cfg_.eval_batches) * mbs * dp_);
  const int per_rank = int(n / dp_) / mbs * mbs;
  if (per_rank == 0) return std::nan("");
  Buffer samples(size_t(per_rank) * size_t(valid_->sample_tokens()) * 4);
  Buffer in(size_t(per_rank) * size_t(T) * 4), tg(size_t(per_rank) * size_t(T) * 4);
  const int rank = groups_->coords().dp_rank;
  for (int i = 0; i < per_rank; ++i)
    valid_->read(int64_t(rank) * per_rank + i, samples.as<int32_t>() + int64_t(i) * valid_->sample_tokens());
  const int L = valid_->sample_tokens();
  for (int b = 0; b < per_rank; ++b)
    for (int t = 0; t < T; ++t) {
      in.as<int32_t>()[int64_t(b) * T + t] = samples.as<int32_t>()[int64_t(b) * L + t];
      tg.as<int32_t>()[int64_t(b) * T + t] = t + 1 < L ? samples.as<int32_t>()[int64_t(b) * L + t + 1] : -1;
    }
  stage_->refresh_weights();
  double sum = pipe_->evaluate(in.as<int32_t>(), tg.as<int32_t>(), per_rank / mbs);
  double vals[2] = {groups_->last_stage() && groups_->coords().tp_rank == 0 ? sum : 0.0, 0.0};
  for (int64_t i = 0; i < int64_t(per_rank) * T; ++i) vals[1] += tg.as<int32_t>()[i] >= 0;
  if (!(groups_->last_stage() && groups_->coords().tp_rank == 0)) vals[1] = 0;
  rt_.world().all_reduce_sum(vals, 2);
  return vals[0] / vals[1];
}

// <run.dir>/ranks/rank_<r>.json: what this rank spent and sent over the timed steps (all but
// the first), for the parallel benchmark (bench/parallel_bench.sh).
void Trainer::write_rank_stats(int64_t steps) const {
  if (steps <= 0) return;
  const auto& rc = groups_->coords();
  auto comm = [&](Comm& c) {
    const CommStats& s = c.stats();
    return json{{"size", c.size()}, {"calls_per_step", double(s.calls) / double(steps)},
                {"payload_bytes_per_step", double(s.payload_bytes) / double(steps)},
                {"sent_bytes_per_step", double(s.sent_bytes) / double(steps)},
                {"seconds_per_step", s.seconds / double(steps)}};
  };
  json j = {{"rank", rt_.world().rank()}, {"tp_rank", rc.tp_rank}, {"pp_rank", rc.pp_rank}, {"dp_rank", rc.dp_rank},
            {"steps", steps}, {"step_s", timed_step_s_ / double(steps)},
            {"pipeline_wait_s_per_step", pipe_wait_s_ / double(steps)}, {"micro_batches", micro_batches_},
            {"sequence_parallel", stage_->sequence_parallel()}, {"activation_bytes", stage_->activation_bytes()},
            {"peak_rss_bytes", peak_rss_bytes()},
            {"comm", {{"tp", comm(groups_->tp())}, {"pp", comm(groups_->pp())}, {"dp", comm(groups_->dp())},
                      {"world", comm(rt_.world())}}}};
  std::string dir = cfg_.run_dir + "/ranks";
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  write_file_atomic(dir + "/rank_" + std::to_string(rt_.world().rank()) + ".json", j.dump(2) + "\n");
}

int Trainer::run(const TrainOptions& opts) {
  Comm& world = rt_.world();
  if (is_log_rank()) ensure_writable_dir(cfg_.run_dir, "run.dir");
  setup_data();
  setup_remote();
  restore_or_init();
  if (is_log_rank()) {
    std::error_code ec;
    std::filesystem::remove(cfg_.run_dir + "/exit.json", ec);
    write_heartbeat("start");
  }
  // A stop asked for while loading: nothing new to save.
  int64_t early_stop = g_stop_signal.load();
  world.all_reduce_sum(&early_stop, 1);
  if (early_stop) {
    if (is_log_rank()) {
      log::warn("stop signal received while starting: exiting at step {} without training", step_);
      write_exit_status(kExitStopped);
    }
    return kExitStopped;
  }
  std::unique_ptr<MetricsSink> metrics;
  if (is_log_rank()) metrics = std::make_unique<MetricsSink>(cfg_.run_dir, step_);
  const int64_t tokens_per_step = int64_t(cfg_.global_batch_size) * cfg_.seq_len;
  const double flops_per_step = model_.flops_per_token(cfg_.seq_len) * double(tokens_per_step);
  const double peak = peak_flops(cfg_.precision) * omp_get_max_threads() * world.size();
  if (is_log_rank())
    log::info("training {} ({:.2f}M params) for {} steps: tp{} pp{} dp{}{}, {} micro-batches of {} x {} tokens per "
              "replica, {} threads per rank",
              model_.name, double(model_.num_params()) / 1e6, cfg_.steps, shard_.tp, shard_.pp, dp_,
              stage_->sequence_parallel() ? " sequence-parallel" : "", micro_batches_, cfg_.micro_batch_size,
              cfg_.seq_len, omp_get_max_threads());
  const int64_t first_step = step_;
  StepStats stats;
  Timer run_timer;
  double last_loss = std::nan(""), first_loss = std::nan("");
  int exit_code = 0;
  while (step_ < cfg_.steps) {
    Timer t;
    int64_t faults0 = page_faults();
    double lr = sched_.at(step_), gnorm = 0;
    bool skipped = false;
    double loss = train_step(lr, gnorm, skipped);
    ++step_;
    tokens_seen_ += tokens_per_step;
    if (skipped) {
      ++nan_skipped_;
      if (is_log_rank())
        log::warn("step {}: non-finite loss {} or gradient norm {} (policy {}; {} so far)", step_, loss, gnorm,
                  cfg_.nan_policy, nan_skipped_);
      LT_CHECK(cfg_.nan_policy != "fail", "step {}: non-finite loss or gradient norm (train.nan_policy = fail)", step_);
    }
    if (std::isnan(first_loss)) first_loss = loss;
    last_loss = loss;
    double dt = t.seconds();
    stats.add(dt, step_ - first_step > 1);
    if (step_ - first_step == 1) {  // the first step (primitive creation) is left out of the rank stats
      pipe_wait_s_ = 0;
      for (Comm* c : {&groups_->tp(), &groups_->pp(), &groups_->dp(), &world}) c->reset_stats();
    } else {
      timed_step_s_ += dt;
    }
    if (metrics) {
      StepRecord r;
      r.step = step_;
      r.steps = cfg_.steps;
      r.loss = loss;
      r.lr = lr;
      r.grad_norm = gnorm;
      r.step_s = dt;
      r.tokens_per_s = double(tokens_per_step) / dt;
      r.mfu = flops_per_step / dt / peak;
      r.tokens = tokens_seen_;
      r.page_faults = page_faults() - faults0;
      r.rss_bytes = current_rss_bytes();
      r.peak_rss_bytes = peak_rss_bytes();
      r.eta_s = stats.mean() * double(cfg_.steps - step_);
      r.skipped = skipped;
      metrics->step(r, step_ % cfg_.log_every == 0 || step_ == cfg_.steps);
    }
    if (skipped && cfg_.nan_policy == "rollback") {
      // Back to the last checkpoint's weights and optimizer state; the data position keeps
      // moving forward, so the batches that diverged are not replayed.
      int64_t at = -1;
      if (world.rank() == 0)
        if (auto ref = find_latest_checkpoint(cfg_.checkpoint_dir)) at = ref->meta.step;
      world.broadcast(&at, sizeof at, 0);
      LT_CHECK(at >= 0, "step {}: non-finite loss and no checkpoint to roll back to", step_);
      load_checkpoint_state(open_checkpoint(cfg_.checkpoint_dir, at, Verify::sizes));
      ++rollbacks_;
      continue;
    }
    if (cfg_.eval_every > 0 && step_ % cfg_.eval_every == 0) {
      double el = evaluate();
      if (metrics) metrics->eval(step_, el);
    }
    if (is_log_rank()) write_heartbeat("train");
    fault_exit_after_step(step_, world.rank());
    int64_t stop = g_stop_signal.load();
    world.all_reduce_sum(&stop, 1);
    bool last = step_ == cfg_.steps;
    if (last || stop || (cfg_.checkpoint_every > 0 && step_ % cfg_.checkpoint_every == 0)) save_checkpoint();
    if (stop && !last) {
      if (is_log_rank()) log::warn("stop signal received: checkpoint at step {} saved, exiting", step_);
      exit_code = kExitStopped;
      break;
    }
  }
  write_rank_stats(step_ - first_step - 1);
  if (uploader_ && !uploader_->finish().complete && exit_code == 0) exit_code = kExitRemoteIncomplete;
  if (is_log_rank()) {
    json s = {{"steps_run", step_ - first_step}, {"step", step_}, {"first_loss", first_loss}, {"final_loss", last_loss},
              {"tokens_per_s", stats.mean() > 0 ? double(tokens_per_step) / stats.mean() : 0.0},
              {"mean_step_s", stats.mean()}, {"checkpoints_written", checkpoints_written_},
              {"nan_skipped", nan_skipped_}, {"rollbacks", rollbacks_}, {"peak_rss_bytes", peak_rss_bytes()}, {"stopped", exit_code == kExitStopped},
              {"wall_s", run_timer.seconds()}};
    if (metrics) metrics->summary(s);
    if (opts.json) std::printf("%s\n", s.dump().c_str());
    write_exit_status(exit_code);
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
