// RunConfig: everything `llamatrain train` needs, read from a YAML file and/or dotted
// `key=value` overrides. Every key is declared once, in LT_RUN_CONFIG_KEYS below: its YAML
// name, the RunConfig field it fills, the field's type, its default, its allowed range and its
// help. The struct, the parsing and range checks, `train --help-config` and the key table in
// docs/USER_GUIDE.md (checked by a test) all come from that one list. Enumerated values are
// parsed once into their enum types (their names are declared beside each enum).
#pragma once
#include <cstdint>
#include <limits>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "core/enum_names.h"
#include "model/device.h"
#include "parallel/job_layout.h"
#include "parallel/stage_balance.h"
#include "train/schedule.h"

namespace lt {

// train.nan_policy: what a step with a non-finite loss or gradient norm does.
enum class NanPolicy { skip, rollback, fail };
constexpr EnumName<NanPolicy> kNanPolicyNames[] = {
    {NanPolicy::skip, "skip"}, {NanPolicy::rollback, "rollback"}, {NanPolicy::fail, "fail"}};
constexpr std::span<const EnumName<NanPolicy>> enum_names(NanPolicy) { return kNanPolicyNames; }

// init_mode: what `init` brings in — the weights alone (a fresh optimizer, step 0, the
// schedule's start and the data's beginning) or the whole state of a checkpoint of another run
// (weights, optimizer, step, so the schedule's position, and the data position).
enum class InitMode { weights, full };
constexpr EnumName<InitMode> kInitModeNames[] = {{InitMode::weights, "weights"}, {InitMode::full, "full"}};
constexpr std::span<const EnumName<InitMode>> enum_names(InitMode) { return kInitModeNames; }

// train.spike_policy: what a step whose loss or gradient norm is far above its running mean does
// (train/spike_guard.h).
enum class SpikePolicy { off, skip, rollback };
constexpr EnumName<SpikePolicy> kSpikePolicyNames[] = {
    {SpikePolicy::off, "off"}, {SpikePolicy::skip, "skip"}, {SpikePolicy::rollback, "rollback"}};
constexpr std::span<const EnumName<SpikePolicy>> enum_names(SpikePolicy) { return kSpikePolicyNames; }

// One entry of data.sources or data.valid. Text form (command line, or a YAML list of strings):
// "name=path", with "@weight" or "@<n>tokens" for a training source; a YAML list of mappings
// {name, path, weight | tokens} says the same. name defaults to the path's last component
// (its parent's for a split path like data/x/validation).
struct DataSpec {
  std::string name, path;
  double weight = -1;  // -1: not given
  int64_t tokens = 0;  // a token budget instead of a weight (0: none)
  bool operator==(const DataSpec&) const = default;
};

// Allowed closed range of a number; strings, lists and enums ignore it (enums list their names).
struct KeyRange {
  double lo = -std::numeric_limits<double>::infinity(), hi = std::numeric_limits<double>::infinity();
  bool hi_open = false;  // [lo, hi) instead of [lo, hi]
};
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr KeyRange kAny{};
constexpr KeyRange kPositive{1, kInf};  // integers >= 1
constexpr KeyRange kNonNegative{0, kInf};
constexpr KeyRange kBeta{0, 1, true};  // [0, 1)
constexpr KeyRange kThreads{0, 4096};
constexpr KeyRange kLr{1e-12, 10};
constexpr KeyRange kMinLr{0, 10};
constexpr KeyRange kDecay{0, 10};
constexpr KeyRange kEps{1e-30, 1};
constexpr KeyRange kWaitSeconds{0, 86400};
constexpr KeyRange kFraction{0, 1};
constexpr KeyRange kScale{1e-6, 1};
constexpr KeyRange kSigma{1, 1e6};
constexpr KeyRange kWindow{2, 1e6};
constexpr KeyRange kBucketMb{0.001, 4096};

// K(yaml key, RunConfig field, C++ type, default (nullptr: required), range, help)
#define LT_RUN_CONFIG_KEYS(K)                                                                                          \
  K("model", model, std::string, nullptr, kAny, "preset name, config.json, or Hugging Face model directory")           \
  K("init", init, std::string, "", kAny,                                                                               \
    "initial weights: empty = seeded random; an HF directory, a llama2.c .bin, or a checkpoint")                       \
  K("init_mode", init_mode, InitMode, "weights", kAny,                                                                \
    "weights: init's weights with a fresh optimizer, step and data position; full: the whole state of init's "        \
    "checkpoint (weights, optimizer, step, data position) under this run's schedule")                                 \
  K("data.path", data_path, std::string, "", kAny,                                                                    \
    "dataset directory (llamatrain prepare) or raw uint16 token file (or data.sources)")                             \
  K("data.sources", sources, std::vector<DataSpec>, "", kAny,                                                          \
    "blended training data: [name=path@weight, ...] or @<n>tokens budgets (YAML: list of {name, path, weight})")      \
  K("data.valid_path", valid_path, std::string, "", kAny, "held-out dataset for periodic evaluation")                  \
  K("data.valid", valid, std::vector<DataSpec>, "", kAny,                                                              \
    "named held-out sets, each evaluated every eval.every steps: [name=path, ...] (YAML: list of {name, path})")      \
  K("data.shuffle", data_shuffle, bool, "true", kAny, "shuffle samples each epoch (seeded)")                          \
  K("run.dir", run_dir, std::string, "runs/default", kAny, "run directory: metrics.jsonl, TensorBoard events, checkpoints") \
  K("train.steps", steps, int64_t, nullptr, kPositive, "optimizer steps")                                             \
  K("train.global_batch_size", global_batch_size, int, nullptr, kPositive,                                            \
    "sequences per optimizer step, all data-parallel ranks")                                                           \
  K("train.micro_batch_size", micro_batch_size, int, "1", kPositive, "sequences per forward/backward pass")           \
  K("train.seq_len", seq_len, int, nullptr, kPositive, "tokens per sequence")                                         \
  K("train.seed", seed, uint64_t, "1234", kNonNegative, "seed for init and data order")                               \
  K("train.device", device, Device, "cpu", kAny,                                                                       \
    "backend: cpu, or cuda (NVIDIA GPUs; needs a build with -DLLAMATRAIN_CUDA=ON)")                                    \
  K("train.precision", precision, Precision, "fp32", kAny,                                                             \
    "fp32, or bf16 (bf16 GEMMs with fp32 accumulation and fp32 master weights)")                                       \
  K("train.recompute", recompute, bool, "false", kAny, "full activation recomputation per layer")                      \
  K("train.pack_weights", pack_weights, bool, "true", kAny,                                                            \
    "cpu fp32: GEMM-ready packed copies of the weights (+8 B per weight, faster); bf16 always packs")                   \
  K("train.log_every", log_every, int, "1", kPositive, "console line every N steps")                                  \
  K("train.threads", threads, int, "0", kThreads, "OpenMP threads per rank (0 = cores / local ranks)")     \
  K("train.nan_policy", nan_policy, NanPolicy, "skip", kAny,                                                           \
    "on a non-finite loss or gradient norm: skip the update, rollback to the last checkpoint, or fail")                \
  K("train.spike_policy", spike_policy, SpikePolicy, "off", kAny,                                                      \
    "on a loss or gradient norm spike_sigma standard deviations above its running mean: skip the update, or "         \
    "rollback to the last checkpoint (the data moves on)")                                                            \
  K("train.spike_sigma", spike_sigma, double, "6", kSigma, "standard deviations above the running mean that make a spike") \
  K("train.spike_window", spike_window, int, "50", kWindow,                                                            \
    "accepted steps in the running mean and deviation (the guard is armed once it is full)")                          \
  K("train.spike_lr_scale", spike_lr_scale, double, "1", kScale, "after a spike rollback: lr x this for spike_lr_steps") \
  K("train.spike_lr_steps", spike_lr_steps, int64_t, "100", kNonNegative, "steps the lowered lr lasts after a rollback") \
  K("train.document_mask", document_mask, bool, "false", kAny,                                                         \
    "attention stays inside each document of a packed sample (needs datasets with document boundaries)")              \
  K("train.restart_positions", restart_positions, bool, "false", kAny,                                                 \
    "with train.document_mask: RoPE positions restart at 0 at each document's first token")                           \
  K("optim.lr", lr, double, "3e-4", kLr, "peak learning rate")                                         \
  K("optim.min_lr", min_lr, double, "3e-5", kMinLr, "final learning rate of the decay (<= optim.lr)")        \
  K("optim.warmup_steps", warmup_steps, int64_t, "0", kNonNegative, "linear warm-up steps (must be < train.steps)")    \
  K("optim.warmup_start_lr", warmup_start_lr, double, "0", kMinLr,                                                     \
    "learning rate the warm-up starts from (re-warming: the previous run's final lr)")                                \
  K("optim.decay_steps", decay_steps, int64_t, "0", kNonNegative, "steps of warm-up + decay (0 = train.steps)")       \
  K("optim.schedule", schedule, ScheduleKind, "cosine", kAny,                                                          \
    "learning-rate shape after the warm-up; wsd: warm-up, stable, decay")                                             \
  K("optim.decay_fraction", decay_fraction, double, "0.2", kFraction, "wsd: share of optim.decay_steps spent decaying") \
  K("optim.cooldown_steps", cooldown_steps, int64_t, "0", kNonNegative,                                                \
    "wsd: decay steps, ending at optim.decay_steps (0 = decay_fraction); a cooldown from any stable-phase step")     \
  K("optim.decay_shape", decay_shape, DecayShape, "1-sqrt", kAny, "wsd: the decay's shape")                           \
  K("optim.weight_decay", weight_decay, double, "0.1", kDecay, "decoupled weight decay (never on norm weights)") \
  K("optim.beta1", beta1, double, "0.9", kBeta, "AdamW beta1")                                                   \
  K("optim.beta2", beta2, double, "0.95", kBeta, "AdamW beta2")                                                  \
  K("optim.eps", eps, double, "1e-8", kEps, "AdamW epsilon")                                             \
  K("optim.grad_clip", grad_clip, double, "1.0", kNonNegative, "clip the global gradient norm to this (0 = off)")     \
  K("optim.decay_embeddings", decay_embeddings, bool, "true", kAny, "apply weight decay to the embedding and LM head") \
  K("parallel.tp", tp, int, "1", kPositive, "tensor-parallel degree")                                                  \
  K("parallel.pp", pp, int, "1", kPositive, "pipeline-parallel degree")                                                \
  K("parallel.zero1", zero1, bool, "true", kAny, "shard optimizer state over data-parallel ranks (ZeRO-1)")            \
  K("parallel.sequence_parallel", sequence_parallel, bool, "false", kAny,                                              \
    "split the activations between the tp regions (norms, residual) over the tp ranks along tokens (Megatron's "      \
    "--sequence-parallel); needs tp > 1 (no effect at tp 1) and micro_batch_size x seq_len divisible by tp")          \
  K("parallel.virtual_stages", virtual_stages, int, "1", kPositive,                                                   \
    "model chunks per pipeline rank (interleaved 1F1B, Megatron's virtual pipeline): bubble (pp-1)/(v*m+pp-1); "      \
    "needs pp >= 2 and micro-batches per replica divisible by pp")                                                    \
  K("parallel.overlap_grad_reduce", overlap_grad_reduce, bool, "true", kAny,                                         \
    "start the data-parallel gradient sums bucket by bucket during the backward (bit-identical results)")             \
  K("parallel.grad_bucket_mb", grad_bucket_mb, double, "8", kBucketMb,                                                 \
    "bucket size of the overlapped gradient reduction, MiB")                                                           \
  K("parallel.stage_starts", stage_starts, StageCut, "auto", kAny,                                                     \
    "pipeline cut: auto (by cost: embedding on the first stage, LM head + loss on the last), even, or the first "     \
    "layer of each stage, e.g. [0,2,4]")                                                                               \
  K("checkpoint.dir", checkpoint_dir, std::string, "", kAny, "checkpoint directory (default: <run.dir>/checkpoints)") \
  K("checkpoint.every", checkpoint_every, int64_t, "0", kNonNegative, "save every N steps (0 = only at the end)")     \
  K("checkpoint.async", checkpoint_async, bool, "true", kAny,                                                         \
    "write checkpoints in the background (CPU: from the live state, which the next optimizer update waits to have "      \
    "been read; GPU: from a host copy made between steps)")                     \
  K("checkpoint.keep", checkpoint_keep, int, "3", kPositive, "keep the newest K checkpoints")                          \
  K("checkpoint.at_end", checkpoint_at_end, bool, "true", kAny,                                                         \
    "save a checkpoint after the last step (false: benchmarks; a stop signal still saves)")                            \
  K("checkpoint.resume", resume, std::string, "auto", kAny,                                                            \
    "auto (newest complete checkpoint) | none | a step directory")                                                     \
  K("checkpoint.remote", remote, std::string, "", kAny,                                                                \
    "copy checkpoints to s3://bucket/prefix or a directory; restore from it when the local dir is empty")              \
  K("checkpoint.remote_wait_s", remote_wait_s, double, "120", kWaitSeconds,                                           \
    "seconds the run waits at exit for missing remote copies (then exits 87 naming them); launch keeps it inside "    \
    "--stop-grace")                                                                                                    \
  K("checkpoint.prune_unsynced", prune_unsynced, bool, "false", kAny,                                                 \
    "true: local retention may delete checkpoints whose remote copy is not complete")                                  \
  K("eval.every", eval_every, int64_t, "0", kNonNegative,                                                              \
    "evaluate on data.valid_path / data.valid every N steps (0 = off)")                                               \
  K("eval.at_start", eval_at_start, bool, "false", kAny, "also evaluate before the first step of a fresh run")          \
  K("eval.batches", eval_batches, int, "8", kPositive, "micro-batches per evaluation")

struct RunConfig {
#define LT_DECLARE_FIELD(key, field, type, def, range, help) type field{};
  LT_RUN_CONFIG_KEYS(LT_DECLARE_FIELD)
#undef LT_DECLARE_FIELD

  // All keys with their values as given or defaulted, for logs and checkpoint metadata.
  std::map<std::string, std::string> resolved;
};

// Reads `yaml_path` (may be empty) then applies `overrides` ("a.b=value"), validates, and
// fills defaults. Throws lt::Error naming the key for anything unknown or impossible.
RunConfig load_run_config(const std::string& yaml_path, const std::vector<std::string>& overrides);

// One declared key, as `--help-config` and the docs show it.
struct RunKeyInfo {
  std::string key, type, def, allowed, help;  // def "(required)" when there is none
};
std::vector<RunKeyInfo> run_config_keys();
// `train --help-config`: one line per key (name, type, default, allowed values, help); with
// `markdown` the key table of docs/USER_GUIDE.md.
std::string run_config_help(bool markdown = false);
// The run's job shape (tp, pp, batch sizes, sequence length) on nodes x procs_per_node ranks.
JobShape job_shape(const RunConfig& c, int nodes, int procs_per_node);

}  // namespace lt
