// BlockPacker: concatenates tokenised documents of one split ([BOS] text [EOS]) and cuts the
// stream into block_size blocks, written to shards of at most `blocks_per_shard` blocks
// (<split>-00000.bin, ...). Documents cross block boundaries freely (no padding, no loss of
// context at a boundary beyond the cut itself).
// Remainder policy: the final partial block (< block_size tokens) is DROPPED and counted in
// dropped_tokens; a split with fewer tokens than one block has no blocks.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/shard.h"

namespace lt::data {

struct SplitStats {
  uint64_t documents = 0;
  uint64_t tokens_in = 0;       // all tokens of all documents (incl. BOS/EOS)
  uint64_t blocks = 0;
  uint64_t dropped_tokens = 0;  // the remainder
  uint32_t max_token_id = 0;
  std::vector<std::string> shards;  // file names inside the dataset directory
};

class BlockPacker {
 public:
  BlockPacker(std::string dir, std::string split, uint32_t token_bytes, uint64_t block_size,
              uint64_t blocks_per_shard);
  void add_document(const int32_t* ids, size_t n);
  void finish();  // closes the last shard; drops the remainder
  const SplitStats& stats() const { return stats_; }

 private:
  void emit_block();
  std::string dir_, split_;
  uint32_t token_bytes_;
  uint64_t block_size_, blocks_per_shard_;
  std::vector<int32_t> pending_;
  std::vector<uint32_t> starts_in_pending_;  // where documents start in the pending block
  std::unique_ptr<ShardWriter> shard_;
  SplitStats stats_;
};

}  // namespace lt::data
