// TokenDataset: fixed-length samples of token ids, the training job's view of its data.
//
// open(path, raw_sample_tokens, split) accepts:
//  - a prepared dataset directory (`llamatrain prepare`; meta.json + shards, docs/FORMATS.md):
//    one sample = one block of the chosen split ("train" by default, or "validation").
//    raw_sample_tokens is ignored: samples are the blocks the dataset was packed into, and the
//    caller checks sample_tokens() against what it needs (the trainer accepts blocks of seq_len
//    or seq_len + 1 tokens and uses a prefix of longer ones).
//    "<dir>/validation" (a path that does not exist, under a prepared dataset) selects that
//    split too, so configs can name a split by path: data.valid_path: data/wiki/validation.
//  - a single shard file (starts with the LTTOKENS magic, any name): its blocks are the samples.
//  - a raw little-endian token file, read as one stream cut into consecutive non-overlapping
//    samples of raw_sample_tokens ids (the remainder is dropped): `*.u32` or `*.u32.bin` hold
//    uint32 ids, any other `*.bin` holds uint16 ids (the llm.c / nanoGPT convention).
// Errors (lt::Error naming the file): missing or unreadable file, empty file, a size that is not
// a whole number of ids, fewer tokens than one sample, a missing split.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace lt {

class TokenDataset {
 public:
  static std::unique_ptr<TokenDataset> open(const std::string& path, int raw_sample_tokens,
                                            const std::string& split = "train");
  virtual ~TokenDataset() = default;
  virtual int64_t num_samples() const = 0;
  virtual int sample_tokens() const = 0;
  // Largest id present: from shard headers for prepared data, one scan at open for raw files.
  virtual int64_t max_token_id() const = 0;
  // Copies sample `index` (0 <= index < num_samples) as sample_tokens() ids.
  virtual void read(int64_t index, int32_t* out) const = 0;
  virtual std::string describe() const = 0;  // path + counts, for logs
  // The tokenizer that made it ("<kind> <hash>" from a prepared dataset's meta.json; empty when
  // unknown, as for raw token files), so datasets from different tokenizers are not mixed.
  virtual std::string tokenizer() const { return {}; }
  // Whether document boundaries are recorded (datasets prepared with format version 3).
  virtual bool has_documents() const { return false; }
  // The positions in sample `index` (ascending, in [0, sample_tokens())) where a document
  // starts; tokens before the first belong to a document begun in an earlier sample. Throws
  // when has_documents() is false.
  virtual void document_starts(int64_t index, std::vector<int32_t>& out) const;
};

}  // namespace lt
