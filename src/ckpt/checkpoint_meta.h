// meta.json of a checkpoint step directory: what was saved (step, tokens, config, layout,
// data position, RNG and scheduler state) and the size + xxhash64 of every file, so a loader
// can tell a complete checkpoint from a truncated or corrupted one. docs/FORMATS.md has the
// full schema.
#pragma once
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ckpt/safetensors.h"
#include "core/dtype.h"
#include "model/config.h"

namespace lt {

inline constexpr int kCheckpointFormatVersion = 1;

struct RngState {
  uint64_t seed = 0, counter = 0;
};

struct CheckpointMeta {
  int version = kCheckpointFormatVersion;
  int64_t step = 0;
  int64_t tokens_seen = 0;
  LlamaConfig config;
  // Layout of the files: model/tp{t}_pp{p}.safetensors for t < tp, p < pp, and (with an
  // optimizer) optim/tp{t}_pp{p}_dp{d}.safetensors for d < optim_parts.
  int tp = 1, pp = 1;
  std::vector<int> stage_starts;  // empty: even layer cut
  int dp = 1;                     // data-parallel size of the run (informational)
  int optim_parts = 0;            // ZeRO-1 partitions per (tp, pp) shard; 0: no optimizer state
  DType model_dtype = DType::F32;
  // Data loader: global index of the next sample, and the shuffle seed.
  int64_t data_position = 0;
  uint64_t data_seed = 0;
  std::map<std::string, RngState> rng;             // named generators (dropout, sampling, ...)
  nlohmann::json scheduler = nlohmann::json::object();  // LR-scheduler state, owned by train/
  nlohmann::json extra = nlohmann::json::object();      // anything else the trainer wants back
  std::map<std::string, FileDigest> files;          // path relative to the step dir -> digest
};

std::string meta_to_json(const CheckpointMeta& m);
// Strict parse: every field type checked, errors name `path` and the field. Fuzzed.
CheckpointMeta parse_checkpoint_meta(const std::string& text, const std::string& path);

// File names inside a step directory.
std::string model_shard_file(int tp_rank, int pp_rank);              // "model/tp0_pp1.safetensors"
std::string optim_shard_file(int tp_rank, int pp_rank, int dp_rank);  // "optim/tp0_pp1_dp2.safetensors"
// Every file the meta's layout implies (model shards, then optimizer shards).
std::vector<std::string> expected_files(const CheckpointMeta& m);

}  // namespace lt
