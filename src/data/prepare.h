// prepare: corpus files -> a dataset directory (token shards + meta.json), the input of training.
//
// Pipeline: a reader thread streams documents (CorpusReader) in batches into a bounded queue;
// each batch is tokenised in parallel (one document per task), then packed in document order.
// So memory is bounded by a few batches, all cores are used, and the output bytes do not
// depend on the thread count. Each document is [BOS] + tokens (+ [EOS] with add_eos).
// Document i (0-based, in reading order) goes to the validation split when
// hash(split_seed, i) < validation_fraction, else to train.
// The directory is built as "<output>.tmp-<pid>" and renamed to <output> only when complete
// (meta.json is written last); on error or Ctrl-C the temporary directory is removed.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/corpus.h"

namespace lt::data {

struct PrepareOptions {
  std::vector<std::string> inputs;  // files, directories, globs
  std::string output;               // dataset directory
  std::string tokenizer;            // tokenizer.model or tokenizer.json
  CorpusOptions corpus;
  int block_size = 4096;
  bool add_eos = false;
  double validation_fraction = 0.0;
  uint64_t split_seed = 0;
  int threads = 0;                      // 0: all cores
  uint64_t shard_bytes = 1ull << 30;    // target maximum shard size
  bool force = false;                   // replace an existing dataset at `output`
  bool progress = true;
};

// Runs prepare; returns the metadata written to meta.json (see docs/FORMATS.md).
nlohmann::json prepare_dataset(const PrepareOptions& options);

// Membership of document i in the validation split.
bool is_validation_document(uint64_t split_seed, uint64_t doc_index, double fraction);

}  // namespace lt::data
