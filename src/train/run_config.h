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
constexpr KeyRange kBucketMb{0.001, 4096};

// K(yaml key, RunConfig field, C++ type, default (nullptr: required), range, help)
#define LT_RUN_CONFIG_KEYS(K)                                                                                          \
  K("model", model, std::string, nullptr, kAny, "preset name, config.json, or Hugging Face model directory")           \
  K("init", init, std::string, "", kAny,                                                                               \
    "initial weights: empty = seeded random; an HF directory, a llama2.c .bin, or a checkpoint")                       \
  K("data.path", data_path, std::string, nullptr, kAny, "dataset directory (llamatrain prepare) or raw uint16 token file") \
  K("data.valid_path", valid_path, std::string, "", kAny, "held-out dataset for periodic evaluation")                  \
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
  K("optim.lr", lr, double, "3e-4", kLr, "peak learning rate")                                         \
  K("optim.min_lr", min_lr, double, "3e-5", kMinLr, "final learning rate of the decay (<= optim.lr)")        \
  K("optim.warmup_steps", warmup_steps, int64_t, "0", kNonNegative, "linear warm-up steps (must be < train.steps)")    \
  K("optim.decay_steps", decay_steps, int64_t, "0", kNonNegative, "steps of warm-up + decay (0 = train.steps)")       \
  K("optim.schedule", schedule, ScheduleKind, "cosine", kAny, "learning-rate shape after the warm-up")                 \
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
    "write checkpoints in the background: the step loop waits only for a host copy of the state")                     \
  K("checkpoint.keep", checkpoint_keep, int, "3", kPositive, "keep the newest K checkpoints")                          \
  K("checkpoint.resume", resume, std::string, "auto", kAny,                                                            \
    "auto (newest complete checkpoint) | none | a step directory")                                                     \
  K("checkpoint.remote", remote, std::string, "", kAny,                                                                \
    "copy checkpoints to s3://bucket/prefix or a directory; restore from it when the local dir is empty")              \
  K("eval.every", eval_every, int64_t, "0", kNonNegative, "evaluate on data.valid_path every N steps (0 = off)")      \
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
