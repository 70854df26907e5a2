// TrainData: what a training run reads. The training sources — data.path (one source) or
// data.sources (several, blended by data/blend.h with weights or token budgets) — and the
// held-out sets (data.valid_path, or data.valid's named sets), opened and checked together
// (one tokenizer, one block size, ids below the vocabulary, document boundaries when
// train.document_mask asks for them); each step's batch for this rank as inputs, targets and
// (document masking) each input token's document start; the data state a checkpoint keeps;
// and the time the loader takes.
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/blend.h"
#include "data/dataset.h"
#include "model/config.h"
#include "train/run_config.h"
#include "train/validator.h"

namespace lt {

class TrainData {
 public:
  TrainData(const RunConfig& cfg, const LlamaConfig& model, int dp_rank, int dp, bool log_rank);
  // The next global batch; this rank's share lands in inputs() / targets() (and doc_start()).
  // Returns the targets that count on this rank.
  int64_t next_batch();
  const int32_t* inputs() const { return inputs_.data(); }
  const int32_t* targets() const { return targets_.data(); }
  const int32_t* doc_start() const { return doc_in_.empty() ? nullptr : doc_in_.data(); }

  const BlendedLoader& loader() const { return *loader_; }
  int64_t position() const { return loader_->position(); }
  std::vector<ValidSet> valid_sets() const;
  // "manual 12, replay 4": what global positions [from, to) took from each source.
  std::string describe_samples(int64_t from, int64_t to) const;

  nlohmann::json state() const { return loader_->state(); }
  // Continues from a checkpoint's data state (its meta "extra"); logs what changed (rank 0).
  void restore(const nlohmann::json& extra, int64_t data_position);
  double loader_seconds() const { return loader_s_; }  // total time in next_batch

 private:
  const RunConfig& cfg_;
  bool log_;
  int local_batch_;
  std::vector<std::unique_ptr<TokenDataset>> train_, valid_;
  std::vector<std::string> valid_names_;
  std::unique_ptr<BlendedLoader> loader_;
  std::vector<int32_t> samples_, doc_, inputs_, targets_, doc_in_;
  double loader_s_ = 0;
};

}  // namespace lt
