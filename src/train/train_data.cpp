#include "train/train_data.h"

#include "core/error.h"
#include "core/log.h"
#include "core/timer.h"
#include "data/batch.h"

namespace lt {

namespace {
void check_vocab(const TokenDataset& d, const std::string& key, const std::string& path, const LlamaConfig& model) {
  LT_CHECK(d.max_token_id() < model.vocab_size,
           "{} '{}' holds token id {} but the model's vocab_size is {} (prepared with another tokenizer?)", key, path,
           d.max_token_id(), model.vocab_size);
}
}  // namespace

TrainData::TrainData(const RunConfig& cfg, const LlamaConfig& model, int dp_rank, int dp, bool log_rank)
    : cfg_(cfg), log_(log_rank), local_batch_(cfg.global_batch_size / dp) {
  std::vector<DataSpec> specs = cfg.sources;
  const bool single = specs.empty();
  if (single) specs.push_back({"train", cfg.data_path, 1.0, 0});
  std::vector<std::string> paths, what;
  std::vector<const TokenDataset*> all;
  std::vector<double> weights;
  std::vector<int64_t> budgets;
  for (const DataSpec& s : specs) {
    const std::string key = single ? "data.path" : "data.sources '" + s.name + "'";
    train_.push_back(TokenDataset::open(s.path, cfg.seq_len + 1));
    const TokenDataset& d = *train_.back();
    LT_CHECK(d.sample_tokens() >= cfg.seq_len, "{} '{}': samples hold {} tokens, fewer than train.seq_len = {}", key,
             s.path, d.sample_tokens(), cfg.seq_len);
    check_vocab(d, key, s.path, model);
    LT_CHECK(!cfg.document_mask || d.has_documents(),
             "{} '{}' has no document boundaries (prepared before dataset format version 3, or a raw token file): "
             "re-run `llamatrain prepare`, or set train.document_mask=false",
             key, s.path);
    paths.push_back(s.path);
    what.push_back(key);
    all.push_back(&d);
    weights.push_back(s.weight < 0 ? 1.0 : s.weight);
    budgets.push_back(s.tokens);
  }
  check_compatible(paths, all, what, true);
  const int64_t run_tokens = cfg.steps * int64_t(cfg.global_batch_size) * cfg.seq_len;
  std::vector<std::string> names;
  for (const DataSpec& s : specs) names.push_back(s.name);
  weights = resolve_weights(weights, budgets, run_tokens, names);
  std::vector<BlendSource> sources;
  for (size_t k = 0; k < specs.size(); ++k) sources.push_back({specs[k].name, specs[k].path, train_[k].get(), weights[k]});
  loader_ = std::make_unique<BlendedLoader>(sources, cfg.seed, cfg.data_shuffle, dp_rank, dp, single);

  std::vector<DataSpec> valid = cfg.valid;
  if (!cfg.valid_path.empty()) valid.push_back({"valid", cfg.valid_path});
  for (const DataSpec& s : valid) {
    const std::string key = cfg.valid.empty() ? "data.valid_path" : "data.valid '" + s.name + "'";
    valid_.push_back(TokenDataset::open(s.path, cfg.seq_len + 1));
    const TokenDataset& d = *valid_.back();
    LT_CHECK(d.sample_tokens() >= cfg.seq_len, "{} '{}': samples hold {} tokens, fewer than train.seq_len = {}", key,
             s.path, d.sample_tokens(), cfg.seq_len);
    check_vocab(d, key, s.path, model);
    LT_CHECK(!cfg.document_mask || d.has_documents(), "{} '{}' has no document boundaries: re-run `llamatrain prepare`",
             key, s.path);
    paths.push_back(s.path);
    what.push_back(key);
    all.push_back(&d);
    valid_names_.push_back(s.name);
  }
  check_compatible(paths, all, what, false);

  const int L = loader_->sample_tokens();
  samples_.resize(size_t(local_batch_) * size_t(L));
  inputs_.resize(size_t(local_batch_) * size_t(cfg.seq_len));
  targets_.resize(inputs_.size());
  if (cfg.document_mask) doc_.resize(samples_.size()), doc_in_.resize(inputs_.size());
  if (log_) {
    for (const auto& d : train_) log::info("data: {}", d->describe());
    if (!single) {
      std::string mix;
      for (const SourceCount& c : loader_->counts()) mix += fmt::format("{}{} {:.1f}%", mix.empty() ? "" : ", ", c.name, 100 * c.weight);
      log::info("data: blend of {} sources: {}", specs.size(), mix);
    }
  }
}

int64_t TrainData::next_batch() {
  Timer t;
  loader_->next_batch(cfg_.global_batch_size, samples_.data(), doc_.empty() ? nullptr : doc_.data());
  const int L = loader_->sample_tokens();
  const int64_t counted =
      doc_.empty() ? samples_to_inputs_targets(samples_.data(), local_batch_, L, cfg_.seq_len, inputs_.data(),
                                               targets_.data())
                   : samples_to_inputs_targets(samples_.data(), doc_.data(), local_batch_, L, cfg_.seq_len,
                                               inputs_.data(), targets_.data(), doc_in_.data());
  loader_s_ += t.seconds();
  return counted;
}

std::vector<ValidSet> TrainData::valid_sets() const {
  std::vector<ValidSet> out;
  for (size_t i = 0; i < valid_.size(); ++i) out.push_back({valid_names_[i], valid_[i].get()});
  return out;
}

std::string TrainData::describe_samples(int64_t from, int64_t to) const {
  const std::vector<int64_t> n = loader_->counts_between(from, to);
  if (n.empty()) return "before this run's data segment";
  const std::vector<SourceCount> c = loader_->counts();
  std::string out;
  for (size_t k = 0; k < n.size(); ++k) out += fmt::format("{}{} {}", out.empty() ? "" : ", ", c[k].name, n[k]);
  return out;
}

void TrainData::restore(const nlohmann::json& extra, int64_t data_position) {
  if (extra.empty()) return;  // a fresh start: every source from its first sample
  std::string legacy_path;
  if (extra.contains("run_config") && extra["run_config"].contains("data.path"))
    legacy_path = extra["run_config"]["data.path"].get<std::string>();
  const auto notes = loader_->restore(extra.contains("data") ? extra["data"] : nlohmann::json(), data_position, legacy_path);
  if (log_)
    for (const auto& n : notes) log::warn("data: {}", n);
}

}  // namespace lt
