#include "train/run_config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <functional>

#include "core/error.h"

namespace lt {

namespace {

enum class Type { Int, Float, Bool, String, IntList };

struct KeySpec {
  const char* key;
  Type type;
  const char* def;  // nullptr: required
  const char* help;
};

const KeySpec kRunKeys[] = {
    {"model", Type::String, nullptr, "preset name, config.json, or Hugging Face model directory"},
    {"init", Type::String, "", "initial weights: empty = seeded random; an HF directory, a llama2.c .bin, or a checkpoint"},
    {"data.path", Type::String, nullptr, "dataset directory (llamatrain prepare) or raw uint16 token file"},
    {"data.valid_path", Type::String, "", "held-out dataset for periodic evaluation"},
    {"data.shuffle", Type::Bool, "true", "shuffle samples each epoch (seeded)"},
    {"run.dir", Type::String, "runs/default", "run directory: metrics.jsonl, TensorBoard events, checkpoints"},
    {"train.steps", Type::Int, nullptr, "optimizer steps"},
    {"train.global_batch_size", Type::Int, nullptr, "sequences per optimizer step, all data-parallel ranks"},
    {"train.micro_batch_size", Type::Int, "1", "sequences per forward/backward pass"},
    {"train.seq_len", Type::Int, nullptr, "tokens per sequence"},
    {"train.seed", Type::Int, "1234", "seed for init and data order"},
    {"train.precision", Type::String, "fp32", "fp32, or bf16 (bf16 GEMMs with fp32 accumulation and fp32 master weights)"},
    {"train.recompute", Type::Bool, "false", "full activation recomputation per layer"},
    {"train.pack_weights", Type::Bool, "true", "fp32: GEMM-ready packed copies of the weights (+8 B per weight, faster); bf16 always packs"},
    {"train.log_every", Type::Int, "1", "console line every N steps"},
    {"train.threads", Type::Int, "0", "OpenMP threads per rank (0 = cores / local ranks)"},
    {"optim.lr", Type::Float, "3e-4", "peak learning rate"},
    {"optim.min_lr", Type::Float, "3e-5", "final learning rate of the decay"},
    {"optim.warmup_steps", Type::Int, "0", "linear warm-up steps (must be < train.steps)"},
    {"optim.decay_steps", Type::Int, "0", "steps of warm-up + decay (0 = train.steps)"},
    {"optim.schedule", Type::String, "cosine", "cosine | linear | constant"},
    {"optim.weight_decay", Type::Float, "0.1", "decoupled weight decay (never on norm weights)"},
    {"optim.beta1", Type::Float, "0.9", "AdamW beta1"},
    {"optim.beta2", Type::Float, "0.95", "AdamW beta2"},
    {"optim.eps", Type::Float, "1e-8", "AdamW epsilon"},
    {"optim.grad_clip", Type::Float, "1.0", "clip the global gradient norm to this (0 = off)"},
    {"optim.decay_embeddings", Type::Bool, "true", "apply weight decay to the embedding and LM head"},
    {"parallel.tp", Type::Int, "1", "tensor-parallel degree"},
    {"parallel.pp", Type::Int, "1", "pipeline-parallel degree"},
    {"parallel.zero1", Type::Bool, "true", "shard optimizer state over data-parallel ranks (ZeRO-1)"},
    {"parallel.sequence_parallel", Type::Bool, "false", "split the activations between the tp regions (norms, residual) over the tp ranks along tokens (Megatron's --sequence-parallel); needs tp > 1 (no effect at tp 1) and micro_batch_size x seq_len divisible by tp"},
    {"parallel.stage_starts", Type::IntList, "", "first layer of each pipeline stage, e.g. [0,2,4] (default: even)"},
    {"checkpoint.dir", Type::String, "", "checkpoint directory (default: <run.dir>/checkpoints)"},
    {"checkpoint.every", Type::Int, "0", "save every N steps (0 = only at the end)"},
    {"checkpoint.keep", Type::Int, "3", "keep the newest K checkpoints"},
    {"checkpoint.resume", Type::String, "auto", "auto (newest complete checkpoint) | none | a step directory"},
    {"checkpoint.remote", Type::String, "", "copy checkpoints to s3://bucket/prefix or a directory; restore from it when the local dir is empty"},
    {"checkpoint.remote_wait_s", Type::Float, "120.0", "seconds the run waits at exit for missing remote copies, in [0, 86400] (then exits 87 naming them); launch keeps it inside --stop-grace"},
    {"checkpoint.prune_unsynced", Type::Bool, "false", "true: local retention may delete checkpoints whose remote copy is not complete"},
    {"train.nan_policy", Type::String, "skip", "on a non-finite loss or gradient norm: skip the update, rollback to the last checkpoint, or fail"},
    {"eval.every", Type::Int, "0", "evaluate on data.valid_path every N steps (0 = off)"},
    {"eval.batches", Type::Int, "8", "micro-batches per evaluation"},
};

const KeySpec* find_key(const std::string& k) {
  for (const auto& s : kRunKeys)
    if (k == s.key) return &s;
  return nullptr;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

[[noreturn]] void unknown_key(const std::string& key, const std::string& where) {
  std::string best;
  size_t best_d = 1000;
  for (const auto& s : kRunKeys) {
    size_t d = edit_distance(key, s.key);
    if (d < best_d) best_d = d, best = s.key;
  }
  if (best_d <= 3) fail("{}: unknown config key '{}' (did you mean '{}'?)", where, key, best);
  fail("{}: unknown config key '{}' (see `llamatrain train --help-config`)", where, key);
}

void flatten(const YAML::Node& node, const std::string& prefix, std::map<std::string, std::string>& out,
             const std::string& where) {
  if (node.IsMap()) {
    for (const auto& kv : node) {
      std::string k = kv.first.as<std::string>();
      flatten(kv.second, prefix.empty() ? k : prefix + "." + k, out, where);
    }
    return;
  }
  if (!find_key(prefix)) unknown_key(prefix, where);
  if (node.IsSequence()) {
    std::string v;
    for (const auto& e : node) v += (v.empty() ? "" : ",") + e.as<std::string>();
    out[prefix] = v;
  } else if (node.IsNull()) {
    out[prefix] = "";
  } else {
    out[prefix] = node.as<std::string>();
  }
}

int64_t to_int(const std::string& key, const std::string& v) {
  try {
    size_t pos = 0;
    double d = std::stod(v, &pos);  // accepts 1e3 and 1000
    if (pos == v.size() && std::floor(d) == d && std::abs(d) < 9.2e18) return int64_t(d);
  } catch (...) {
  }
  fail("config key '{}': expected an integer, got '{}'", key, v);
}
double to_float(const std::string& key, const std::string& v) {
  try {
    size_t pos = 0;
    double d = std::stod(v, &pos);
    if (pos == v.size() && std::isfinite(d)) return d;
  } catch (...) {
  }
  fail("config key '{}': expected a number, got '{}'", key, v);
}
bool to_bool(const std::string& key, const std::string& v) {
  if (v == "true" || v == "True" || v == "1" || v == "yes" || v == "on") return true;
  if (v == "false" || v == "False" || v == "0" || v == "no" || v == "off") return false;
  fail("config key '{}': expected true or false, got '{}'", key, v);
}

}  // namespace

RunConfig load_run_config(const std::string& yaml_path, const std::vector<std::string>& overrides) {
  std::map<std::string, std::string> v;
  if (!yaml_path.empty()) {
    YAML::Node root;
    try {
      root = YAML::LoadFile(yaml_path);
    } catch (const YAML::BadFile&) {
      fail("config file '{}' cannot be read", yaml_path);
    } catch (const YAML::Exception& e) {
      fail("config file '{}': {}", yaml_path, e.what());
    }
    if (!root.IsNull()) {
      LT_CHECK(root.IsMap(), "config file '{}': expected a mapping of keys at the top level", yaml_path);
      flatten(root, "", v, yaml_path);
    }
  }
  for (const auto& o : overrides) {
    auto eq = o.find('=');
    LT_CHECK(eq != std::string::npos && eq > 0, "override '{}': expected key=value (e.g. train.steps=100)", o);
    std::string key = o.substr(0, eq), val = o.substr(eq + 1);
    if (!find_key(key)) unknown_key(key, "command line");
    if (!val.empty() && val.front() == '[' && val.back() == ']') val = val.substr(1, val.size() - 2);
    v[key] = val;
  }
  for (const auto& s : kRunKeys) {
    if (!v.count(s.key)) {
      LT_CHECK(s.def != nullptr, "config key '{}' is required ({})", s.key, s.help);
      v[s.key] = s.def;
    }
  }
  RunConfig c;
  c.resolved = v;
  auto S = [&](const char* k) { return v.at(k); };
  auto I = [&](const char* k) { return to_int(k, v.at(k)); };
  auto F = [&](const char* k) { return to_float(k, v.at(k)); };
  auto B = [&](const char* k) { return to_bool(k, v.at(k)); };
  auto I32 = [&](const char* k) {  // an int field: no silent truncation of 2^32 + 4 to 4
    int64_t x = I(k);
    LT_CHECK(x >= INT32_MIN && x <= INT32_MAX, "config key '{}' = {} is out of range (at most {})", k, x, INT32_MAX);
    return int(x);
  };
  c.model = S("model");
  c.init = S("init");
  c.data_path = S("data.path");
  c.valid_path = S("data.valid_path");
  c.data_shuffle = B("data.shuffle");
  c.run_dir = S("run.dir");
  c.steps = I("train.steps");
  c.global_batch_size = I32("train.global_batch_size");
  c.micro_batch_size = I32("train.micro_batch_size");
  c.seq_len = I32("train.seq_len");
  LT_CHECK(I("train.seed") >= 0, "config key 'train.seed' must be >= 0, got {}", I("train.seed"));
  c.seed = uint64_t(I("train.seed"));
  c.precision = S("train.precision");
  c.recompute = B("train.recompute");
  c.pack_weights = B("train.pack_weights");
  c.log_every = I32("train.log_every");
  c.threads = I32("train.threads");
  c.lr = F("optim.lr");
  c.min_lr = F("optim.min_lr");
  c.warmup_steps = I("optim.warmup_steps");
  c.decay_steps = I("optim.decay_steps");
  c.schedule = S("optim.schedule");
  c.weight_decay = F("optim.weight_decay");
  c.beta1 = F("optim.beta1");
  c.beta2 = F("optim.beta2");
  c.eps = F("optim.eps");
  c.grad_clip = F("optim.grad_clip");
  c.decay_embeddings = B("optim.decay_embeddings");
  c.tp = I32("parallel.tp");
  c.pp = I32("parallel.pp");
  c.zero1 = B("parallel.zero1");
  c.sequence_parallel = B("parallel.sequence_parallel");
  if (!v["parallel.stage_starts"].empty()) {
    std::string s = v["parallel.stage_starts"];
    size_t p = 0;
    while (p <= s.size()) {
      size_t q = s.find(',', p);
      if (q == std::string::npos) q = s.size();
      std::string item = s.substr(p, q - p);
      item.erase(0, item.find_first_not_of(' '));
      c.stage_starts.push_back(int(to_int("parallel.stage_starts", item)));
      p = q + 1;
    }
  }
  c.checkpoint_dir = S("checkpoint.dir");
  if (c.checkpoint_dir.empty()) c.checkpoint_dir = c.run_dir + "/checkpoints";
  c.checkpoint_every = I("checkpoint.every");
  c.checkpoint_keep = I32("checkpoint.keep");
  c.resume = S("checkpoint.resume");
  c.remote = S("checkpoint.remote");
  c.remote_wait_s = F("checkpoint.remote_wait_s");
  c.prune_unsynced = B("checkpoint.prune_unsynced");
  LT_CHECK(c.remote_wait_s >= 0 && c.remote_wait_s <= 86400,
           "config key 'checkpoint.remote_wait_s' must be in [0, 86400] seconds, got {}", c.remote_wait_s);
  c.nan_policy = S("train.nan_policy");
  LT_CHECK(c.nan_policy == "skip" || c.nan_policy == "rollback" || c.nan_policy == "fail",
           "config key 'train.nan_policy': expected skip, rollback or fail, got '{}'", c.nan_policy);
  c.eval_every = I("eval.every");
  c.eval_batches = I32("eval.batches");

  auto positive = [](const char* key, int64_t x) { LT_CHECK(x > 0, "config key '{}' must be > 0, got {}", key, x); };
  positive("train.steps", c.steps);
  positive("train.global_batch_size", c.global_batch_size);
  positive("train.micro_batch_size", c.micro_batch_size);
  positive("train.seq_len", c.seq_len);
  positive("train.log_every", c.log_every);
  positive("parallel.tp", c.tp);
  positive("parallel.pp", c.pp);
  positive("checkpoint.keep", c.checkpoint_keep);
  positive("eval.batches", c.eval_batches);
  LT_CHECK(!c.sequence_parallel || c.tp == 1 || (int64_t(c.micro_batch_size) * c.seq_len) % c.tp == 0,
           "config key 'parallel.sequence_parallel': train.micro_batch_size x train.seq_len = {} x {} = {} tokens "
           "per micro-batch must be divisible by parallel.tp = {}",
           c.micro_batch_size, c.seq_len, int64_t(c.micro_batch_size) * c.seq_len, c.tp);
  LT_CHECK(c.threads >= 0, "config key 'train.threads' must be >= 0, got {}", c.threads);
  LT_CHECK(c.precision == "fp32" || c.precision == "bf16",
           "config key 'train.precision': expected fp32 or bf16, got '{}'", c.precision);
  LT_CHECK(c.schedule == "cosine" || c.schedule == "linear" || c.schedule == "constant",
           "config key 'optim.schedule': expected cosine, linear or constant, got '{}'", c.schedule);
  LT_CHECK(c.lr > 0, "config key 'optim.lr' must be > 0, got {}", c.lr);
  LT_CHECK(c.min_lr >= 0 && c.min_lr <= c.lr, "config key 'optim.min_lr' = {} must be in [0, optim.lr = {}]", c.min_lr,
           c.lr);
  LT_CHECK(c.warmup_steps >= 0, "config key 'optim.warmup_steps' must be >= 0");
  // The seed's sample warmed up for longer than it trained: the LR never reached its peak.
  LT_CHECK(c.warmup_steps < c.steps || c.steps == 0,
           "config key 'optim.warmup_steps' = {} must be smaller than train.steps = {} (the learning rate would "
           "never reach optim.lr)",
           c.warmup_steps, c.steps);
  LT_CHECK(c.decay_steps >= 0, "config key 'optim.decay_steps' must be >= 0");
  if (c.decay_steps == 0) c.decay_steps = c.steps;
  LT_CHECK(c.decay_steps > c.warmup_steps, "config key 'optim.decay_steps' = {} must exceed optim.warmup_steps = {}",
           c.decay_steps, c.warmup_steps);
  LT_CHECK(c.weight_decay >= 0, "config key 'optim.weight_decay' must be >= 0");
  LT_CHECK(c.beta1 >= 0 && c.beta1 < 1, "config key 'optim.beta1' must be in [0, 1)");
  LT_CHECK(c.beta2 >= 0 && c.beta2 < 1, "config key 'optim.beta2' must be in [0, 1)");
  LT_CHECK(c.eps > 0, "config key 'optim.eps' must be > 0");
  LT_CHECK(c.grad_clip >= 0, "config key 'optim.grad_clip' must be >= 0 (0 = off)");
  LT_CHECK(c.checkpoint_every >= 0, "config key 'checkpoint.every' must be >= 0");
  LT_CHECK(c.eval_every >= 0, "config key 'eval.every' must be >= 0");
  LT_CHECK(c.eval_every == 0 || !c.valid_path.empty(), "config key 'eval.every' is set but data.valid_path is empty");
  return c;
}

std::string run_config_help() {
  std::string out;
  for (const auto& s : kRunKeys)
    out += fmt::format("  {:<26} {:<14} {}\n", s.key, s.def ? (*s.def ? s.def : "\"\"") : "(required)", s.help);
  return out;
}

JobShape job_shape(const RunConfig& c, int nodes, int procs_per_node) {
  JobShape s;
  s.nodes = nodes;
  s.procs_per_node = procs_per_node;
  s.tp = c.tp;
  s.pp = c.pp;
  s.global_batch = c.global_batch_size;
  s.micro_batch = c.micro_batch_size;
  s.seq_len = c.seq_len;
  return s;
}

}  // namespace lt
