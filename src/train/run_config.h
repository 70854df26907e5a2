// RunConfig: everything `llamatrain train` needs, read from a YAML file and/or dotted
// `key=value` overrides. Keys are checked against one schema (kRunKeys in run_config.cpp):
// unknown keys and impossible values are errors naming the key.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "parallel/job_layout.h"

namespace lt {

struct RunConfig {
  std::string model;          // preset, config.json or HF directory
  std::string init;           // "" (random), HF dir, llama2.c .bin, or our checkpoint dir
  std::string data_path;      // dataset directory or raw token file
  std::string valid_path;     // optional held-out data for periodic evaluation
  bool data_shuffle = true;
  std::string run_dir;
  int64_t steps = 0;
  int global_batch_size = 0;  // sequences per optimizer step, all data-parallel ranks together
  int micro_batch_size = 1;   // sequences per forward/backward
  int seq_len = 0;
  uint64_t seed = 1234;
  std::string precision = "fp32";
  bool recompute = false;
  bool pack_weights = true;
  int log_every = 1;
  int threads = 0;            // OpenMP threads per rank; 0 = all cores / ranks per node
  double lr = 3e-4, min_lr = 3e-5;
  int64_t warmup_steps = 0;
  int64_t decay_steps = 0;    // 0 = steps
  std::string schedule = "cosine";
  double weight_decay = 0.1, beta1 = 0.9, beta2 = 0.95, eps = 1e-8, grad_clip = 1.0;
  bool decay_embeddings = true;
  int tp = 1, pp = 1;
  bool zero1 = true;
  bool sequence_parallel = false;  // parallel.sequence_parallel (needs tp > 1)
  std::vector<int> stage_starts;
  std::string checkpoint_dir;
  int64_t checkpoint_every = 0;  // 0 = only at the end
  int checkpoint_keep = 3;
  std::string resume = "auto";   // auto | none | a checkpoint step directory
  std::string remote;            // "" | s3://bucket/prefix | a directory: checkpoint copies
  double remote_wait_s = 120;    // longest wait at exit for remote copies
  bool prune_unsynced = false;   // local retention may delete checkpoints not yet copied remotely
  std::string nan_policy = "skip";  // skip | rollback | fail
  int64_t eval_every = 0;
  int eval_batches = 8;

  // All keys with their values as given or defaulted, for logs and checkpoint metadata.
  std::map<std::string, std::string> resolved;
};

// Reads `yaml_path` (may be empty) then applies `overrides` ("a.b=value"), validates, and
// fills defaults. Throws lt::Error naming the key for anything unknown or impossible.
RunConfig load_run_config(const std::string& yaml_path, const std::vector<std::string>& overrides);
// One line per key: name, default, description (for `train --help-config`).
std::string run_config_help();
// The run's job shape (tp, pp, batch sizes, sequence length) on nodes x procs_per_node ranks.
JobShape job_shape(const RunConfig& c, int nodes, int procs_per_node);

}  // namespace lt
