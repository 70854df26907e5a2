// Evaluation: mean next-token cross-entropy (and perplexity) of a model over a dataset,
// single process, forward only. Used by `llamatrain eval`.
#pragma once
#include <cstdint>
#include <string>

#include "model/device.h"

namespace lt {

struct EvalOptions {
  std::string model;    // weights (HF dir, checkpoint, llama2.c .bin) or a preset with `init`
  std::string init;     // weights when `model` is a preset or config.json
  std::string data;     // dataset directory or raw token file
  std::string split = "validation";  // for prepared datasets; falls back to train if absent
  int seq_len = 0;      // 0: the model's max_position_embeddings capped by the sample length
  int micro_batch = 4;
  int64_t max_samples = 0;  // 0: all
  Device device = Device::cpu;
};

struct EvalResult {
  double loss = 0, perplexity = 0;
  int64_t tokens = 0, samples = 0;
  double seconds = 0;
  std::string model_name, split;
};

EvalResult evaluate_dataset(const EvalOptions& o);

}  // namespace lt
