#include "train/metrics.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/buffer.h"
#include "core/env.h"
#include "core/error.h"
#include "core/log.h"
#include "train/tensorboard.h"

namespace lt {

StepMeter::StepMeter(int64_t tokens_per_step, double flops_per_step, double peak_flops, int64_t steps,
                     int64_t seq_len, bool memory)
    : tokens_per_step_(tokens_per_step),
      steps_(steps),
      seq_len_(seq_len),
      flops_per_step_(flops_per_step),
      peak_flops_(peak_flops),
      first_loss_(std::nan("")),
      last_loss_(std::nan("")),
      memory_(memory) {}

void StepMeter::start() {
  clock_.reset();
  if (memory_) faults0_ = page_faults();
}

StepRecord StepMeter::finish(int64_t step, int64_t tokens_seen, double loss, double lr, double grad_norm, bool first) {
  const double dt = clock_.seconds();
  if (first) {
    first_s_ = dt;
  } else {
    sum_ += dt;
    ++n_;
  }
  if (std::isnan(first_loss_)) first_loss_ = loss;
  last_loss_ = loss;
  StepRecord m;
  m.step = step;
  m.steps = steps_;
  m.loss = loss;
  m.lr = lr;
  m.grad_norm = grad_norm;
  m.step_s = dt;
  m.tokens_per_s = double(tokens_per_step_) / dt;
  m.mfu = flops_per_step_ / dt / peak_flops_;
  m.tokens = tokens_seen;
  if (memory_) {
    m.page_faults = page_faults() - faults0_;
    m.rss_bytes = current_rss_bytes();
    m.peak_rss_bytes = peak_rss_bytes();
  }
  m.eta_s = mean() * double(steps_ - step);
  m.seq_len = seq_len_;
  return m;
}

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  long t = long(s + 0.5);
  if (t >= 86400) return fmt::format("{}d{:02}h", t / 86400, (t % 86400) / 3600);
  if (t >= 3600) return fmt::format("{}h{:02}m", t / 3600, (t % 3600) / 60);
  if (t >= 60) return fmt::format("{}m{:02}s", t / 60, t % 60);
  return fmt::format("{}s", t);
}

MetricsSink::MetricsSink(const std::string& run_dir, int64_t start_step) {
  jsonl_path_ = run_dir + "/metrics.jsonl";
  jsonl_ = std::fopen(jsonl_path_.c_str(), "a");
  if (!jsonl_) fail("cannot open {} for appending: {}", jsonl_path_, std::strerror(errno));
  tb_ = std::make_unique<TensorBoardWriter>(run_dir + "/tensorboard", start_step);
}

MetricsSink::~MetricsSink() {
  if (jsonl_) std::fclose(jsonl_);
}

void MetricsSink::step(const StepRecord& r, bool print) {
  nlohmann::json j = {{"step", r.step},         {"loss", r.loss},          {"lr", r.lr},
                      {"grad_norm", r.grad_norm}, {"step_s", r.step_s},      {"tokens_per_s", r.tokens_per_s},
                      {"mfu", r.mfu},           {"tokens", r.tokens},      {"page_faults", r.page_faults},
                      {"rss_bytes", r.rss_bytes}, {"peak_rss_bytes", r.peak_rss_bytes}, {"skipped", r.skipped}};
  if (!std::isfinite(r.loss)) j["loss"] = nullptr;
  if (!std::isfinite(r.grad_norm)) j["grad_norm"] = nullptr;
  if (r.skipped && !r.skip_reason.empty()) j["skip_reason"] = r.skip_reason;
  std::vector<std::pair<std::string, double>> tb = {{"train/loss", r.loss},
                                                    {"train/lr", r.lr},
                                                    {"train/grad_norm", r.grad_norm},
                                                    {"perf/tokens_per_s", r.tokens_per_s},
                                                    {"perf/mfu", r.mfu},
                                                    {"perf/step_s", r.step_s},
                                                    {"mem/rss_gb", double(r.rss_bytes) / 1e9}};
  std::string mix;
  for (const SourceCount& c : r.sources) {
    const int64_t tokens = c.samples * r.seq_len;
    j["sources"][c.name] = {{"samples", c.samples}, {"tokens", tokens}, {"epochs", c.epochs()}};
    tb.push_back({"data/" + c.name + "/tokens", double(tokens)});
    tb.push_back({"data/" + c.name + "/epochs", c.epochs()});
    mix += fmt::format("{}{} {}", mix.empty() ? " | samples " : " ", c.name, c.samples);
  }
  std::fprintf(jsonl_, "%s\n", j.dump().c_str());
  std::fflush(jsonl_);
  tb_->scalars(r.step, tb);
  tb_->flush();
  if (print)
    log::info("step {}/{} | loss {:.4f} | lr {:.3e} | grad {:.3f} | {:.0f} tok/s | MFU {:.1f}% | {:.3f} s/step | "
              "ETA {}{}{}",
              r.step, r.steps, r.loss, r.lr, r.grad_norm, r.tokens_per_s, 100.0 * r.mfu, r.step_s,
              format_duration(r.eta_s), mix, r.skipped ? " | SKIPPED (" + r.skip_reason + ")" : "");
}

void MetricsSink::eval(int64_t step, const std::vector<ValidLoss>& sets) {
  nlohmann::json j = {{"step", step}, {"valid", nlohmann::json::object()}};
  std::vector<std::pair<std::string, double>> tb;
  std::string line;
  for (const ValidLoss& v : sets) {
    const double ppl = std::exp(v.loss);
    j["valid"][v.name] = {{"loss", std::isfinite(v.loss) ? nlohmann::json(v.loss) : nlohmann::json()},
                          {"ppl", std::isfinite(ppl) ? nlohmann::json(ppl) : nlohmann::json()},
                          {"tokens", v.tokens}};
    tb.push_back({"valid/" + v.name + "/loss", v.loss});
    tb.push_back({"valid/" + v.name + "/ppl", ppl});
    line += fmt::format(" | {} loss {:.4f} ppl {:.2f}", v.name, v.loss, ppl);
  }
  std::fprintf(jsonl_, "%s\n", j.dump().c_str());
  std::fflush(jsonl_);
  tb_->scalars(step, tb);
  tb_->flush();
  log::info("step {} | valid{}", step, line);
}

void MetricsSink::event(const nlohmann::json& e) {
  std::fprintf(jsonl_, "%s\n", e.dump().c_str());
  std::fflush(jsonl_);
}

void MetricsSink::eval(int64_t step, double loss) {
  nlohmann::json j = {{"step", step}, {"eval_loss", loss}, {"eval_ppl", std::exp(loss)}};
  std::fprintf(jsonl_, "%s\n", j.dump().c_str());
  std::fflush(jsonl_);
  tb_->scalar("eval/loss", loss, step);
  tb_->flush();
  log::info("step {} | eval loss {:.4f} | perplexity {:.2f}", step, loss, std::exp(loss));
}

void MetricsSink::summary(const nlohmann::json& s) {
  nlohmann::json j = {{"summary", s}};
  std::fprintf(jsonl_, "%s\n", j.dump().c_str());
  std::fflush(jsonl_);
}

}  // namespace lt
