#include "parallel/stage_balance.h"

#include <fmt/format.h>

#include <limits>

#include "core/error.h"

namespace lt {

StageCut parse_stage_cut(const std::string& text, const std::string& what) {
  std::string v = text;
  v.erase(0, v.find_first_not_of(' '));
  v.erase(v.find_last_not_of(' ') + 1);
  if (v.size() >= 2 && v.front() == '[' && v.back() == ']') v = v.substr(1, v.size() - 2);
  if (v == "auto" || v.empty()) return {};  // empty: what "" meant before, now the default
  if (v == "even") return {StageCutMode::even, {}};
  StageCut cut{StageCutMode::list, {}};
  for (size_t p = 0; p <= v.size();) {
    size_t q = v.find(',', p);
    if (q == std::string::npos) q = v.size();
    std::string item = v.substr(p, q - p);
    item.erase(0, item.find_first_not_of(' '));
    item.erase(item.find_last_not_of(' ') + 1);
    size_t used = 0;
    long x = -1;
    try {
      x = std::stol(item, &used);
    } catch (...) {
      used = 0;
    }
    LT_CHECK(used == item.size() && !item.empty() && x >= 0 && x < 1000000,
             "{}: expected auto, even or a list of first layers such as [0,3,5], got '{}'", what, text);
    cut.starts.push_back(int(x));
    p = q + 1;
  }
  return cut;
}

std::string stage_cut_text(const StageCut& cut) {
  switch (cut.mode) {
    case StageCutMode::cost: return "auto";
    case StageCutMode::even: return "even";
    case StageCutMode::list: return fmt::format("[{}]", fmt::join(cut.starts, ","));
  }
  return "?";
}

StageCostModel stage_cost_model(const LlamaConfig& c, int seq_len, bool recompute) {
  const double D = c.dim, KV = c.kv_dim(), F = c.hidden_dim, V = c.vocab_size, T = seq_len;
  StageCostModel m;
  m.layer = (6.0 * (2 * D * D + 2 * D * KV + 3 * D * F) + 6.0 * T * D) * (recompute ? 4.0 / 3.0 : 1.0);
  m.embedding = 3.0 * D;
  m.head = 6.0 * V * D + 5.0 * V;
  return m;
}

double stage_cost(const StageCostModel& m, int layers, int s, int stages) {
  return layers * m.layer + (s == 0 ? m.embedding : 0.0) + (s == stages - 1 ? m.head : 0.0);
}

std::vector<int> stage_layer_counts(const std::vector<int>& starts, int n_layers, int stages) {
  std::vector<int> n(static_cast<size_t>(stages));
  for (int s = 0; s < stages; ++s) {
    if (!starts.empty()) {
      n[size_t(s)] = (s + 1 < stages ? starts[size_t(s) + 1] : n_layers) - starts[size_t(s)];
    } else {
      n[size_t(s)] = n_layers / stages + (s < n_layers % stages ? 1 : 0);
    }
  }
  return n;
}

// Layers cost the same wherever they are, so a cut is decided by the first and the last rank's
// layer counts; the ranks between share the rest evenly (which minimises both their largest
// cost and their sum of squares). Every (first, last) pair is tried: O(L²), L ≤ a few hundred.
// A rank's v chunks then share its layers evenly (earlier chunks one more; on the last rank the
// chunk with the head gets the fewest).
std::vector<int> balanced_stage_starts(const StageCostModel& m, int n_layers, int ranks, int v) {
  const int stages = ranks * v;
  LT_CHECK(ranks >= 1 && v >= 1 && n_layers >= stages,
           "pipeline: {} stages need at least as many layers (the model has {})", stages, n_layers);
  std::vector<int> per_rank(static_cast<size_t>(ranks), n_layers);
  if (ranks > 1) {
    const int middle = ranks - 2;
    double best_max = std::numeric_limits<double>::infinity(), best_sq = best_max;
    std::vector<int> n(static_cast<size_t>(ranks));
    for (int first = v; first <= n_layers - (ranks - 1) * v; ++first) {
      for (int last = v; first + last + middle * v <= n_layers; ++last) {
        const int rest = n_layers - first - last;
        if (middle == 0 && rest != 0) continue;
        n[0] = first;
        n[size_t(ranks) - 1] = last;
        for (int r = 1; r <= middle; ++r) n[size_t(r)] = rest / middle + (r - 1 < rest % middle ? 1 : 0);
        double mx = 0, sq = 0;
        for (int r = 0; r < ranks; ++r) {
          const double cost = stage_cost(m, n[size_t(r)], r, ranks);
          mx = std::max(mx, cost);
          sq += cost * cost;
        }
        if (mx < best_max || (mx == best_max && sq < best_sq)) {
          best_max = mx;
          best_sq = sq;
          per_rank = n;
        }
      }
    }
  }
  // Chunk c of rank r is virtual stage c·ranks + r.
  std::vector<int> layers(static_cast<size_t>(stages));
  for (int r = 0; r < ranks; ++r)
    for (int c = 0; c < v; ++c) {
      const int k = r == ranks - 1 ? v - 1 - c : c;  // the head's chunk (c = v − 1) takes the fewest
      layers[size_t(c * ranks + r)] = per_rank[size_t(r)] / v + (k < per_rank[size_t(r)] % v ? 1 : 0);
    }
  std::vector<int> starts(static_cast<size_t>(stages), 0);
  for (int s = 1; s < stages; ++s) starts[size_t(s)] = starts[size_t(s) - 1] + layers[size_t(s) - 1];
  return starts;
}

std::vector<int> resolve_stage_starts(const StageCut& cut, const LlamaConfig& c, int pp, int v, int seq_len,
                                      bool recompute) {
  switch (cut.mode) {
    case StageCutMode::even: return {};
    case StageCutMode::list: return cut.starts;
    case StageCutMode::cost:
      if (pp * v > c.n_layers) return {};  // the layout check names the problem
      return balanced_stage_starts(stage_cost_model(c, seq_len, recompute), c.n_layers, pp, v);
  }
  return {};
}

}  // namespace lt
