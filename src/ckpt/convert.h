// Model conversion, streaming tensor by tensor (peak memory: a few tensors, not the model).
//   to_checkpoint: any TensorSource -> a llamatrain checkpoint at any tp/pp (step 0, weights
//                  only), in the source's dtype unless one is given, so bf16 stays bf16;
//   to_hf:         any TensorSource -> a Hugging Face directory (config.json,
//                  generation_config.json, safetensors shards + index, tokenizer files).
// HF -> checkpoint -> HF keeps every tensor's bytes.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ckpt/tensor_source.h"
#include "core/dtype.h"

namespace lt {

struct ToCheckpointOptions {
  int tp = 1, pp = 1;
  std::vector<int> stage_starts;  // empty: even cut
  std::optional<DType> dtype;     // empty: keep the source's
};
// Writes <out_root>/step_00000000/ (+ `latest`). Returns the step directory.
std::string convert_to_checkpoint(const TensorSource& src, const std::string& out_root,
                                  const ToCheckpointOptions& opt);

struct ToHfOptions {
  std::optional<DType> dtype;                   // empty: keep the source's
  uint64_t max_shard_bytes = 5'000'000'000ull;  // as transformers' default "5GB"
  std::vector<std::string> tokenizer_files;     // copied into the directory
};
struct HfExportResult {
  std::vector<std::string> files;  // safetensors files written
  uint64_t total_bytes = 0;        // tensor bytes
};
HfExportResult convert_to_hf(const TensorSource& src, const std::string& out_dir, const ToHfOptions& opt);

// Parses "5GB", "500MB", "2GiB", "123" (bytes) as transformers does (GB = 10^9, GiB = 2^30).
uint64_t parse_byte_size(const std::string& text);

}  // namespace lt
