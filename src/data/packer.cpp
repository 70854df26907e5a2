#include "data/packer.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>

#include "core/error.h"

namespace lt::data {

BlockPacker::BlockPacker(std::string dir, std::string split, uint32_t token_bytes, uint64_t block_size,
                         uint64_t blocks_per_shard)
    : dir_(std::move(dir)),
      split_(std::move(split)),
      token_bytes_(token_bytes),
      block_size_(block_size),
      blocks_per_shard_(std::max<uint64_t>(1, blocks_per_shard)) {
  LT_CHECK(block_size > 0, "block size must be positive");
  pending_.reserve(block_size);
}

void BlockPacker::add_document(const int32_t* ids, size_t n) {
  if (n == 0) return;
  ++stats_.documents;
  stats_.tokens_in += n;
  starts_in_pending_.push_back(uint32_t(pending_.size()));  // its first token lands in the current block
  size_t i = 0;
  while (i < n) {
    size_t take = std::min<size_t>(n - i, block_size_ - pending_.size());
    pending_.insert(pending_.end(), ids + i, ids + i + take);
    i += take;
    if (pending_.size() == block_size_) emit_block();
  }
}

void BlockPacker::emit_block() {
  if (shard_ && shard_->num_blocks() >= blocks_per_shard_) {
    shard_->finish();
    shard_.reset();
  }
  if (!shard_) {
    std::string name = fmt::format("{}-{:05d}.bin", split_, stats_.shards.size());
    shard_ = std::make_unique<ShardWriter>((std::filesystem::path(dir_) / name).string(), token_bytes_, block_size_,
                                           true);
    stats_.shards.push_back(name);
  }
  for (int32_t id : pending_) stats_.max_token_id = std::max(stats_.max_token_id, uint32_t(id));
  shard_->write_block(pending_.data(), starts_in_pending_);
  ++stats_.blocks;
  pending_.clear();
  starts_in_pending_.clear();
}

void BlockPacker::finish() {
  stats_.dropped_tokens = pending_.size();
  pending_.clear();
  starts_in_pending_.clear();
  if (shard_) {
    shard_->finish();
    shard_.reset();
  }
}

}  // namespace lt::data
