// Inference: a KV-cached fp32 forward of one sequence on the whole model (tp = pp = 1), and
// token sampling. Plain loops that read like the maths (llama2.c's run.c is the model), with
// Hugging Face semantics: RMSNorm, rotate-half RoPE on q/k, GQA attention over the cache,
// SwiGLU, tied or untied LM head. Used by `generate` and to check imported weights against
// reference logits; training has its own batched kernels.
#pragma once
#include <cstdint>
#include <vector>

#include "core/rng.h"
#include "model/config.h"
#include "model/layout.h"

namespace lt {

class InferenceModel {
 public:
  // `weights` is the flat buffer of ParamLayout(config, ShardSpec{}) (see ckpt/load_weights).
  InferenceModel(const LlamaConfig& config, std::vector<float> weights);

  // Runs `token` at the next position (== tokens already cached) and returns the logits of
  // the next token (vocab_size floats, valid until the next call). Throws when the cache
  // (max_position_embeddings) is full.
  const float* step(int token);
  // Forgets the cached sequence.
  void reset() { pos_ = 0; }
  int position() const { return pos_; }
  const LlamaConfig& config() const { return c_; }

  // Logits of every position of `tokens` ([T, vocab] row-major), from an empty cache.
  std::vector<float> prefill(const std::vector<int32_t>& tokens);

 private:
  LlamaConfig c_;
  ParamLayout layout_;
  std::vector<float> w_;
  StageWeights v_;
  int pos_ = 0;
  std::vector<float> k_cache_, v_cache_;  // [L, max_seq, kv_dim]
  std::vector<float> x_, xb_, q_, k_, att_, hb_, hb2_, logits_;
  std::vector<float> rope_cos_, rope_sin_;  // [max_seq, hd/2]
};

// temperature <= 0: argmax (the first maximum). Otherwise softmax(logits / temperature),
// restricted to the smallest set of most likely tokens whose mass reaches top_p (top_p >= 1:
// all), sampled with one uniform draw from `rng`.
int sample_token(const float* logits, int vocab, float temperature, float top_p, Rng& rng);

}  // namespace lt
