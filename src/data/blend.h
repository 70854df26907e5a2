// BlendedLoader: the training job's sample order over one or several datasets ("sources": the
// new corpus and a replay of the old distribution), deterministic, resumable and the same for
// any tp/pp/dp layout.
//
// Interleaving. The job's samples form one global sequence (position n = 0, 1, 2, ...); the
// source of position n is chosen greedily from the weights w_k (normalised to sum 1): the
// source whose count lags its share most, argmax_k w_k·(n − n0 + 1) − (c_k − c0_k), ties to
// the first listed (Megatron's blending rule). c_k counts the samples source k gave so far;
// (n0, c0) is where the current weights took effect (the "segment"). So after any prefix each
// source has given its share to within one sample, and every global batch holds
// round(B·w_k) ± 1 samples of source k.
// Source order. Source k's i-th sample is sample perm_{k,e}(i mod N_k) of its dataset, e =
// i / N_k its epoch, perm a seeded bijection (data/permutation.h) keyed by (seed, the source's
// name, e): every epoch visits every sample once, reshuffled; a source that runs out starts its
// next epoch (counted and logged). The single-source loader of `data.path` keys its
// permutation by (seed, e) alone: the same order as data/loader.h.
// Data parallelism. Each global batch of B positions is split into contiguous slices, rank d
// taking [d·B/dp, (d+1)·B/dp); every rank replays the batch's assignment (B choices), so the
// samples each position gets do not depend on dp.
// Resume. state() holds every source's count and shuffle key (by name), the total and the
// segment; restore()
// continues exactly (bit-identical to an uninterrupted run) when the weights are unchanged. When
// they changed, a new segment starts at the current position: every source continues at its
// own count — no sample of any source is repeated or skipped — and the new weights govern the
// samples from there on. A source that is new starts at its first sample; the counts of a
// source left out are kept in the state, so adding it back later continues it; a source under a
// new name continues the state of the one with its path (data.path's "train" listed in
// data.sources), in the same order.
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/loader.h"

namespace lt {

struct BlendSource {
  std::string name, path;
  const TokenDataset* data = nullptr;
  double weight = 1;  // > = 0; normalised over the sources
};

// Per-source consumption, for the console, metrics.jsonl, TensorBoard and checkpoints.
struct SourceCount {
  std::string name;
  int64_t samples = 0;  // given so far (all epochs)
  int64_t size = 0;     // samples per epoch
  double weight = 0;    // normalised
  double epochs() const { return size ? double(samples) / double(size) : 0.0; }
};

class BlendedLoader {
 public:
  // `single`: the one source of data.path, shuffled exactly as data/loader.h does.
  BlendedLoader(std::vector<BlendSource> sources, uint64_t seed, bool shuffle, int dp_rank, int dp_size,
                bool single = false);
  // Writes this rank's global_batch/dp samples (sample_tokens() ids each) to `out` and, when
  // `doc_start` is given, each token's document start within its sample (data/batch.h);
  // advances by global_batch.
  void next_batch(int global_batch, int32_t* out, int32_t* doc_start = nullptr);
  int64_t position() const { return total_; }  // global samples consumed
  int sample_tokens() const { return sources_[0].spec.data->sample_tokens(); }
  std::vector<SourceCount> counts() const;
  // The counts of each source over global positions [from, to) of the order (for logs of what
  // a rollback skipped); empty when the range is not inside the current weights' segment.
  std::vector<int64_t> counts_between(int64_t from, int64_t to) const;

  nlohmann::json state() const;
  // Restores `state` (a checkpoint's; null for one written before blending, where
  // `legacy_position` samples of `legacy_path` were consumed). Returns lines saying what
  // changed (weights, sources), for the log; empty when the run continues as saved.
  std::vector<std::string> restore(const nlohmann::json& state, int64_t legacy_position,
                                   const std::string& legacy_path);

 private:
  struct Source {
    BlendSource spec;
    uint64_t key = 0;              // the shuffle's key (kept across renames: the order goes on)
    std::unique_ptr<Loader> order;  // sample_at(i): the source's i-th sample
    int64_t count = 0, base = 0;    // samples given; count at the segment's start
  };
  int pick(int64_t n, const std::vector<int64_t>& counts) const;  // source of position n
  std::vector<Source> sources_;
  bool shuffle_;
  int rank_, dp_;
  int64_t total_ = 0, seg_start_ = 0;
  nlohmann::json retired_ = nlohmann::json::object();  // counts of sources not in this run
  std::vector<int> assign_;                            // scratch: the batch's sources
  std::vector<int64_t> index_;                         // scratch: the batch's per-source indices
};

// The sources' weights from data.sources' weights and token budgets: a budget of t tokens gets
// t / run_tokens of the mix, the rest is shared by the weighted sources in proportion to their
// weights (all budgets: proportional to the budgets). Errors name the entry.
std::vector<double> resolve_weights(const std::vector<double>& weights, const std::vector<int64_t>& budgets,
                                    int64_t run_tokens, const std::vector<std::string>& names);

// Checks that datasets can be blended or evaluated together: the same tokenizer (by the hash in
// their meta.json, where both have one) and, with `same_sample_tokens`, the same sample length
// (blended sources). `what` names each in errors.
void check_compatible(const std::vector<std::string>& paths, const std::vector<const TokenDataset*>& data,
                      const std::vector<std::string>& what, bool same_sample_tokens);

}  // namespace lt
