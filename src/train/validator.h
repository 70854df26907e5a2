// Validator: the held-out losses during training — for each named set (data.valid, or the one
// set of data.valid_path), the first eval.batches micro-batches of that set per data-parallel
// rank, in order, forward only through the pipeline; every rank gets each set's mean loss over
// its counted tokens. Several sets side by side make a forgetting curve: the loss on the new
// domain falling while the loss on the old one is watched.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "parallel/topology.h"
#include "train/pipeline.h"

namespace lt {

struct ValidSet {
  std::string name;
  const TokenDataset* data = nullptr;
};

struct ValidLoss {
  std::string name;
  double loss = 0;  // NaN when the set holds fewer samples than one micro-batch per rank
  int64_t tokens = 0;
};

class Validator {
 public:
  // `document_mask`: evaluate with attention kept inside documents, as training does
  // (restart_positions likewise).
  Validator(std::vector<ValidSet> sets, ProcessGroups& groups, PipelineSchedule& pipe, int micro_batch, int seq_len,
            int batches, bool document_mask = false, bool restart_positions = false);
  std::vector<ValidLoss> evaluate();

 private:
  ValidLoss evaluate(const ValidSet& set);
  std::vector<ValidSet> sets_;
  ProcessGroups& groups_;
  PipelineSchedule& pipe_;
  int micro_batch_, seq_len_, batches_;
  bool document_mask_, restart_positions_;
};

}  // namespace lt
