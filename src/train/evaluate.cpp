#include "train/evaluate.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <vector>

#include "ckpt/tensor_source.h"
#include "core/buffer.h"
#include "core/error.h"
#include "core/log.h"
#include "core/timer.h"
#include "data/dataset.h"
#include "model/llama.h"

namespace lt {

namespace {
std::unique_ptr<TokenDataset> open_split(const EvalOptions& o, int raw_tokens, std::string& split) {
  try {
    split = o.split;
    return TokenDataset::open(o.data, raw_tokens, o.split);
  } catch (const Error& e) {
    if (o.split != "validation") throw;
    split = "train";
    return TokenDataset::open(o.data, raw_tokens, "train");
  }
}
}  // namespace

EvalResult evaluate_dataset(const EvalOptions& o) {
  Timer timer;
  std::unique_ptr<TensorSource> src;
  LlamaConfig cfg;
  if (!o.init.empty()) {
    cfg = resolve_model_config(o.model);
    src = open_weights(o.init);
  } else {
    src = open_weights(o.model);
    cfg = src->config();
  }
  ParamLayout layout(cfg, ShardSpec{});
  Buffer w(layout.total() * sizeof(float)), g(16 * sizeof(float));
  load_weights(*src, layout, w.as<float>());

  EvalResult r;
  r.model_name = cfg.name;
  int T = o.seq_len > 0 ? o.seq_len : cfg.max_seq_len;
  auto ds = open_split(o, T + 1, r.split);
  T = std::min(T, ds->sample_tokens());
  LT_CHECK(T >= 2, "eval: samples of {} tokens are too short", ds->sample_tokens());
  LT_CHECK(T <= cfg.max_seq_len, "eval: --seq-len {} exceeds the model's max_position_embeddings {}", T,
           cfg.max_seq_len);
  LT_CHECK(ds->max_token_id() < cfg.vocab_size, "eval: {} holds token id {} >= the model's vocab_size {}", o.data,
           ds->max_token_id(), cfg.vocab_size);
  const int64_t n = o.max_samples > 0 ? std::min(o.max_samples, ds->num_samples()) : ds->num_samples();
  const int B = int(std::max<int64_t>(1, std::min<int64_t>(o.micro_batch, n)));
  StageOptions so;
  so.micro_batch = B;
  so.seq_len = T;
  // Forward only: the gradient buffer is never written when need_grad is false, and the
  // weights are read in place (packed GEMM copies would double the memory of a model that
  // only ever runs forward).
  so.pack_weights = false;
  LlamaStage stage(layout, so, w.as<float>(), g.as<float>());
  const int L = ds->sample_tokens();
  std::vector<int32_t> sample(static_cast<size_t>(L)), in(static_cast<size_t>(B) * T), tg(static_cast<size_t>(B) * T);
  double sum = 0;
  for (int64_t s0 = 0; s0 < n; s0 += B) {
    int rows = int(std::min<int64_t>(B, n - s0));
    for (int b = 0; b < B; ++b) {
      if (b < rows) ds->read(s0 + b, sample.data());
      for (int t = 0; t < T; ++t) {
        in[size_t(b) * T + t] = b < rows ? sample[size_t(t)] : 0;
        tg[size_t(b) * T + t] = (b < rows && t + 1 < L) ? sample[size_t(t) + 1] : -1;
      }
    }
    for (int32_t x : tg) r.tokens += x >= 0;
    sum += stage.forward(0, in.data(), nullptr, tg.data(), 0.0f, false);
    r.samples += rows;
  }
  LT_CHECK(r.tokens > 0, "eval: {} gave no tokens to score", o.data);
  r.loss = sum / double(r.tokens);
  r.perplexity = std::exp(r.loss);
  r.seconds = timer.seconds();
  if (!std::filesystem::is_directory(o.data)) r.split = "all";  // raw token files have no splits
  return r;
}

}  // namespace lt
