// Validator: the held-out loss during training — the first eval.batches micro-batches of
// data.valid_path per data-parallel rank, in order, forward only through the pipeline; every
// rank gets the mean loss over the counted tokens.
#pragma once
#include <memory>
#include <string>

#include "data/dataset.h"
#include "parallel/topology.h"
#include "train/pipeline.h"

namespace lt {

class Validator {
 public:
  Validator(const TokenDataset& data, ProcessGroups& groups, PipelineSchedule& pipe, int micro_batch, int seq_len,
            int batches);
  // Mean next-token loss; NaN when the set holds fewer samples than one micro-batch per rank.
  double evaluate();

 private:
  const TokenDataset& data_;
  ProcessGroups& groups_;
  PipelineSchedule& pipe_;
  int micro_batch_, seq_len_, batches_;
};

}  // namespace lt
