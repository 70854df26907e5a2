#include "train/evaluate.h"

#include <omp.h>

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
#include "data/batch.h"
#include "model/backend.h"

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
  StageGeometry g;
  g.config = cfg;
  g.options.micro_batch = B;
  g.options.seq_len = T;
  // Forward only: the weights are read in place (packed GEMM copies would double the memory
  // of a model that only ever runs forward).
  g.options.pack_weights = false;
  g.options.forward_only = true;
  auto backend = make_backend(o.device, {omp_get_max_threads(), 0});
  auto stage = backend->make_stage(layout, g);
  load_weights(*src, layout, *backend->access(stage->weights(), layout.total()));
  stage->refresh_weights();
  const int L = ds->sample_tokens();
  std::vector<int32_t> samples(static_cast<size_t>(B) * L), in(static_cast<size_t>(B) * T), tg(in.size());
  for (int64_t s0 = 0; s0 < n; s0 += B) {
    const int rows = int(std::min<int64_t>(B, n - s0));
    for (int b = 0; b < rows; ++b) ds->read(s0 + b, samples.data() + int64_t(b) * L);
    r.tokens += samples_to_inputs_targets(samples.data(), rows, L, T, in.data(), tg.data());
    std::fill(in.begin() + int64_t(rows) * T, in.end(), 0);  // a last, partial micro-batch: padding rows
    std::fill(tg.begin() + int64_t(rows) * T, tg.end(), -1);
    stage->forward(0, in.data(), tg.data(), 0.0f, false);
    r.samples += rows;
  }
  const double sum = stage->take_loss();
  LT_CHECK(r.tokens > 0, "eval: {} gave no tokens to score", o.data);
  r.loss = sum / double(r.tokens);
  r.perplexity = std::exp(r.loss);
  r.seconds = timer.seconds();
  if (!std::filesystem::is_directory(o.data)) r.split = "all";  // raw token files have no splits
  return r;
}

}  // namespace lt
