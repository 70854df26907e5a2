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

#include "core/timer.h"
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

// The timing side of each step: its clock and page faults, the running mean of step times
// (leaving out the run's first step: warm-up, primitive creation), the first and last loss,
// and the step's record with throughput, MFU against `peak_flops` and the ETA. Only a meter with
// `memory` (the rank that writes the records) reads page faults and RSS: the others skip the
// system calls every step.
class StepMeter {
 public:
  StepMeter(int64_t tokens_per_step, double flops_per_step, double peak_flops, int64_t steps, int64_t seq_len,
            bool memory);
  void start();  // before a step
  // After it: the record of step `step` (fields the trainer knows are filled by it), its seconds
  // counted in the mean unless it is the run's first.
  StepRecord finish(int64_t step, int64_t tokens_seen, double loss, double lr, double grad_norm, bool first);
  double mean() const { return n_ ? sum_ / double(n_) : first_s_; }
  double tokens_per_s() const { return mean() > 0 ? double(tokens_per_step_) / mean() : 0.0; }
  double first_loss() const { return first_loss_; }
  double last_loss() const { return last_loss_; }

 private:
  int64_t tokens_per_step_, steps_, seq_len_;
  double flops_per_step_, peak_flops_;
  Timer clock_;
  double sum_ = 0, first_s_ = 0, first_loss_, last_loss_;
  int64_t n_ = 0, faults0_ = 0;
  bool memory_;
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
