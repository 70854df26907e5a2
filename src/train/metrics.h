// What a run shows while it trains: one console line per logged step (step, loss, lr,
// gradient norm, tokens/s, MFU, ETA), metrics.jsonl in the run directory (one JSON object
// per step, appended across restarts), and TensorBoard scalars under <run.dir>/tensorboard.
// Only world rank 0 has a MetricsSink.
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/blend.h"
#include "train/validator.h"

namespace lt {

class TensorBoardWriter;

struct StepRecord {
  int64_t step = 0, steps = 0, tokens = 0, page_faults = 0, rss_bytes = 0, peak_rss_bytes = 0;
  double loss = 0, lr = 0, grad_norm = 0, step_s = 0, tokens_per_s = 0, mfu = 0, eta_s = 0;
  bool skipped = false;
  std::string skip_reason;            // why an update was skipped ("non-finite", "spike")
  std::vector<SourceCount> sources;   // per-source consumption (blended data only)
  int64_t seq_len = 0;                // tokens per sample, for the per-source token counts
};

// Running mean of step times, leaving out the first step (warm-up: primitive creation).
class StepStats {
 public:
  void add(double seconds, bool counted);
  double mean() const;

 private:
  double sum_ = 0, first_ = 0;
  int64_t n_ = 0;
};

class MetricsSink {
 public:
  MetricsSink(const std::string& run_dir, int64_t start_step);
  ~MetricsSink();
  void step(const StepRecord& r, bool print);
  void eval(int64_t step, double loss);
  // Several named held-out sets: per-set loss and perplexity in the console, metrics.jsonl
  // ({"step", "valid": {name: {"loss", "ppl", "tokens"}}}) and TensorBoard valid/<name>/loss, /ppl.
  void eval(int64_t step, const std::vector<ValidLoss>& sets);
  // An event (a spike, a rollback) as one metrics.jsonl line {"step", "event", ...}.
  void event(const nlohmann::json& e);
  void summary(const nlohmann::json& s);

 private:
  std::string jsonl_path_;
  std::FILE* jsonl_ = nullptr;
  std::unique_ptr<TensorBoardWriter> tb_;
};

std::string format_duration(double seconds);

}  // namespace lt
