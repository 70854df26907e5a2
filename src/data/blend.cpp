#include "data/blend.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/log.h"
#include "data/batch.h"
#include "data/permutation.h"

namespace lt {

namespace {

// A source's shuffle seed: from its name, so reordering data.sources changes nothing.
uint64_t source_seed(uint64_t seed, const std::string& name) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
  return data::mix_key(seed, h);
}

std::vector<double> normalised(const std::vector<BlendSource>& s) {
  double sum = 0;
  for (const auto& x : s) sum += x.weight;
  LT_CHECK(sum > 0, "data.sources: the weights sum to 0; at least one source needs a positive weight");
  std::vector<double> w;
  for (const auto& x : s) w.push_back(x.weight / sum);
  return w;
}

}  // namespace

BlendedLoader::BlendedLoader(std::vector<BlendSource> sources, uint64_t seed, bool shuffle, int dp_rank, int dp_size,
                             bool single)
    : shuffle_(shuffle), rank_(dp_rank), dp_(dp_size) {
  LT_CHECK(!sources.empty(), "no training data sources");
  LT_CHECK(!single || sources.size() == 1, "a single-source loader takes one source");
  LT_CHECK(dp_size >= 1 && dp_rank >= 0 && dp_rank < dp_size, "data-parallel rank {} out of range [0, {})", dp_rank,
           dp_size);
  for (const auto& s : sources)
    LT_CHECK(s.weight >= 0 && std::isfinite(s.weight), "data.sources: source '{}' has weight {}", s.name, s.weight);
  const std::vector<double> w = normalised(sources);
  for (size_t k = 0; k < sources.size(); ++k) {
    BlendSource spec = sources[k];
    spec.weight = w[k];
    const uint64_t key = single ? seed : source_seed(seed, spec.name);
    sources_.push_back({spec, key, std::make_unique<Loader>(*spec.data, key, shuffle, 0, 1)});
  }
}

int BlendedLoader::pick(int64_t n, const std::vector<int64_t>& counts) const {
  int best = 0;
  double best_lag = -INFINITY;
  const double m = double(n - seg_start_ + 1);
  for (size_t k = 0; k < sources_.size(); ++k) {
    const double lag = sources_[k].spec.weight * m - double(counts[k] - sources_[k].base);
    if (lag > best_lag) best_lag = lag, best = int(k);
  }
  return best;
}

void BlendedLoader::next_batch(int global_batch, int32_t* out, int32_t* doc_start) {
  LT_CHECK(global_batch > 0 && global_batch % dp_ == 0,
           "global batch {} is not a positive multiple of the data-parallel size {}", global_batch, dp_);
  const size_t K = sources_.size();
  std::vector<int64_t> counts(K);
  for (size_t k = 0; k < K; ++k) counts[k] = sources_[k].count;
  assign_.resize(size_t(global_batch));
  index_.resize(size_t(global_batch));
  for (int j = 0; j < global_batch; ++j) {
    const int k = K == 1 ? 0 : pick(total_ + j, counts);
    assign_[size_t(j)] = k;
    index_[size_t(j)] = counts[size_t(k)]++;
  }
  const int per_rank = global_batch / dp_;
  const int64_t L = sample_tokens();
  std::vector<int32_t> starts;
  for (int j = 0; j < per_rank; ++j) {
    const size_t g = size_t(rank_) * size_t(per_rank) + size_t(j);
    const Source& s = sources_[size_t(assign_[g])];
    const int64_t sample = s.order->sample_at(index_[g]);
    s.spec.data->read(sample, out + j * L);
    if (!doc_start) continue;
    s.spec.data->document_starts(sample, starts);
    document_start_of_tokens(starts, int(L), doc_start + j * L);
  }
  for (size_t k = 0; k < K; ++k) {
    Source& s = sources_[k];
    const int64_t n = s.spec.data->num_samples(), e0 = s.count / n, e1 = counts[k] / n;
    if (e1 != e0 && rank_ == 0)
      log::info("data: source '{}' finished epoch {} at its sample {}; epoch {} begins (reshuffled)", s.spec.name,
                e1 - 1, e1 * n, e1);
    s.count = counts[k];
  }
  total_ += global_batch;
}

std::vector<SourceCount> BlendedLoader::counts() const {
  std::vector<SourceCount> out;
  for (const auto& s : sources_) out.push_back({s.spec.name, s.count, s.spec.data->num_samples(), s.spec.weight});
  return out;
}

std::vector<int64_t> BlendedLoader::counts_between(int64_t from, int64_t to) const {
  if (from < seg_start_ || to > total_ || from > to) return {};
  // Replay the segment's choices from its start (cheap: K work per sample).
  const size_t K = sources_.size();
  std::vector<int64_t> counts(K), out(K);
  for (size_t k = 0; k < K; ++k) counts[k] = sources_[k].base;
  for (int64_t n = seg_start_; n < to; ++n) {
    const int k = K == 1 ? 0 : pick(n, counts);
    ++counts[size_t(k)];
    if (n >= from) ++out[size_t(k)];
  }
  return out;
}

nlohmann::json BlendedLoader::state() const {
  nlohmann::json src = retired_, seg = nlohmann::json::object();
  for (const auto& s : sources_) {
    src[s.spec.name] = {
        {"samples", s.count}, {"path", s.spec.path}, {"num_samples", s.spec.data->num_samples()}, {"key", s.key}};
    seg[s.spec.name] = {{"weight", s.spec.weight}, {"base", s.base}};
  }
  return {{"samples", total_}, {"sources", src}, {"segment", {{"start", seg_start_}, {"sources", seg}}}};
}

std::vector<std::string> BlendedLoader::restore(const nlohmann::json& state, int64_t legacy_position,
                                                const std::string& legacy_path) {
  std::vector<std::string> notes;
  nlohmann::json st = state;
  if (st.is_null()) {  // a checkpoint from before blending: one source, data.path
    st = {{"samples", legacy_position}, {"sources", nlohmann::json::object()}};
    bool matched = false;
    for (const auto& s : sources_)
      if (s.spec.path == legacy_path || sources_.size() == 1) {
        st["sources"][s.spec.name] = {{"samples", legacy_position}};
        if (!legacy_path.empty()) st["sources"][s.spec.name]["path"] = legacy_path;
        if (sources_.size() == 1) st["segment"] = {{"start", 0}, {"sources", {{s.spec.name, {{"weight", 1.0}, {"base", 0}}}}}};
        matched = true;
        break;
      }
    if (!matched && legacy_position > 0)
      notes.push_back(fmt::format("the checkpoint's data ({}, {} samples consumed) is none of data.sources: every "
                                  "source starts at its first sample",
                                  legacy_path, legacy_position));
  }
  try {
    total_ = st.at("samples").get<int64_t>();
    const nlohmann::json& src = st.at("sources");
    retired_ = nlohmann::json::object();
    for (auto it = src.begin(); it != src.end(); ++it) {
      auto found = std::find_if(sources_.begin(), sources_.end(), [&](const Source& s) { return s.spec.name == it.key(); });
      // Renamed (e.g. data.path's "train" now listed in data.sources): the same path, a name
      // the state does not know.
      if (found == sources_.end() && it.value().contains("path"))
        found = std::find_if(sources_.begin(), sources_.end(), [&](const Source& s) {
          return s.spec.path == it.value()["path"].get<std::string>() && !src.contains(s.spec.name);
        });
      if (found != sources_.end() && found->spec.name != it.key())
        notes.push_back(fmt::format("source '{}' continues the position of '{}' (the same path {})", found->spec.name,
                                    it.key(), found->spec.path));
      if (found == sources_.end()) {
        retired_[it.key()] = it.value();
        notes.push_back(fmt::format("source '{}' ({} samples consumed) is not in this run's data: it is left where it "
                                    "stopped, and continues there if it comes back",
                                    it.key(), it.value().at("samples").get<int64_t>()));
        continue;
      }
      found->count = it.value().at("samples").get<int64_t>();
      if (it.value().contains("key") && it.value()["key"].get<uint64_t>() != found->key) {
        found->key = it.value()["key"].get<uint64_t>();
        found->order = std::make_unique<Loader>(*found->spec.data, found->key, shuffle_, 0, 1);
      }
      const std::string old_path = it.value().value("path", found->spec.path);
      if (old_path != found->spec.path)
        notes.push_back(fmt::format("source '{}' now reads {} (was {}): it continues at its sample {}", it.key(),
                                    found->spec.path, old_path, found->count));
      else if (it.value().contains("num_samples") &&
               it.value()["num_samples"].get<int64_t>() != found->spec.data->num_samples())
        notes.push_back(fmt::format("source '{}' holds {} samples, {} when saved: its order changed", it.key(),
                                    found->spec.data->num_samples(), it.value()["num_samples"].get<int64_t>()));
    }
    // The segment continues when every source has the weight it had; else a new one starts here.
    bool same = st.contains("segment") && st["segment"].at("sources").size() == sources_.size();
    for (const auto& s : sources_) {
      if (!same) break;
      const nlohmann::json& seg = st["segment"]["sources"];
      same = seg.contains(s.spec.name) && seg[s.spec.name].at("weight").get<double>() == s.spec.weight;
    }
    if (same) {
      seg_start_ = st["segment"].at("start").get<int64_t>();
      for (auto& s : sources_) s.base = st["segment"]["sources"][s.spec.name].at("base").get<int64_t>();
    } else {
      seg_start_ = total_;
      std::string was, now;
      for (auto& s : sources_) {
        s.base = s.count;
        now += fmt::format("{}{} {:.4g}", now.empty() ? "" : ", ", s.spec.name, s.spec.weight);
      }
      if (st.contains("segment"))
        for (auto it = st["segment"]["sources"].begin(); it != st["segment"]["sources"].end(); ++it)
          was += fmt::format("{}{} {:.4g}", was.empty() ? "" : ", ", it.key(), it.value().at("weight").get<double>());
      notes.push_back(fmt::format("data weights {} (were {}) apply from global sample {}; each source continues at "
                                  "its own position, no sample repeated or skipped",
                                  now, was.empty() ? "not recorded" : was, total_));
    }
  } catch (const nlohmann::json::exception& e) {
    fail("checkpoint data state is malformed: {}", e.what());
  }
  return notes;
}

std::vector<double> resolve_weights(const std::vector<double>& weights, const std::vector<int64_t>& budgets,
                                    int64_t run_tokens, const std::vector<std::string>& names) {
  const size_t K = weights.size();
  std::vector<double> out(K);
  double budget_share = 0, weight_sum = 0, budget_sum = 0;
  bool any_weight = false;
  for (size_t k = 0; k < K; ++k) {
    if (budgets[k] > 0) {
      budget_share += double(budgets[k]) / double(run_tokens);
      budget_sum += double(budgets[k]);
    } else {
      any_weight = true;
      weight_sum += std::max(0.0, weights[k]);
    }
  }
  if (!any_weight) {
    for (size_t k = 0; k < K; ++k) out[k] = double(budgets[k]) / budget_sum;
    return out;
  }
  LT_CHECK(budget_share < 1 || K == 1,
           "data.sources: the token budgets ({:.0f} tokens) fill the whole run ({} tokens = train.steps x "
           "global_batch_size x seq_len), leaving nothing for the weighted sources",
           budget_sum, run_tokens);
  for (size_t k = 0; k < K; ++k) {
    if (budgets[k] > 0) {
      out[k] = double(budgets[k]) / double(run_tokens);
    } else {
      LT_CHECK(weight_sum > 0 || weights[k] >= 0, "data.sources: source '{}' has no weight", names[k]);
      out[k] = weight_sum > 0 ? (1.0 - budget_share) * std::max(0.0, weights[k]) / weight_sum : 0.0;
    }
  }
  return out;
}

void check_compatible(const std::vector<std::string>& paths, const std::vector<const TokenDataset*>& data,
                      const std::vector<std::string>& what, bool same_sample_tokens) {
  for (size_t i = 1; i < data.size(); ++i) {
    const std::string a = data[0]->tokenizer(), b = data[i]->tokenizer();
    LT_CHECK(a.empty() || b.empty() || a == b,
             "{} ({}) was prepared with another tokenizer than {} ({}): {} vs {}; blend or compare only datasets "
             "prepared with the same tokenizer",
             what[i], paths[i], what[0], paths[0], b, a);
    LT_CHECK(!same_sample_tokens || data[i]->sample_tokens() == data[0]->sample_tokens(),
             "{} ({}) holds samples of {} tokens but {} ({}) of {}: blended sources need one block size (prepare "
             "them with the same --block-size)",
             what[i], paths[i], data[i]->sample_tokens(), what[0], paths[0], data[0]->sample_tokens());
  }
}

}  // namespace lt
