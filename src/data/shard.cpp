#include "data/shard.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace lt::data {

namespace {

template <typename T> T load_le(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);  // x86/ARM hosts are little-endian, as the format is
  return v;
}
template <typename T> void store_le(uint8_t* p, T v) { std::memcpy(p, &v, sizeof v); }

void encode_header(const ShardHeader& h, uint8_t* out) {
  std::memset(out, 0, kShardHeaderBytes);
  std::memcpy(out, kShardMagic, 8);
  store_le<uint32_t>(out + 8, h.document_index ? kShardVersionDocs : shard_version(h.token_bytes));
  store_le<uint32_t>(out + 12, h.token_bytes);
  store_le<uint64_t>(out + 16, h.block_size);
  store_le<uint64_t>(out + 24, h.num_blocks);
  store_le<uint64_t>(out + 32, h.num_blocks * h.block_size);
  store_le<uint64_t>(out + 40, h.num_documents);
  store_le<uint32_t>(out + 48, h.max_token_id);
  if (h.document_index) {
    store_le<uint32_t>(out + 52, 1u);
    store_le<uint64_t>(out + 56, h.num_starts);
  }
}

}  // namespace

bool is_shard(const uint8_t* data, size_t size) {
  return size >= 8 && std::memcmp(data, kShardMagic, 8) == 0;
}

ShardHeader parse_shard_header(const uint8_t* data, size_t size, const std::string& path) {
  if (!is_shard(data, size)) fail("{} is not a token shard (no LTTOKENS magic)", path);
  if (size < kShardHeaderBytes) fail("{}: truncated shard header ({} bytes, need 64)", path, size);
  uint32_t version = load_le<uint32_t>(data + 8);
  if (version != kShardVersionU16 && version != kShardVersionU32 && version != kShardVersionDocs)
    fail("{}: shard version {} is not supported (this build reads versions 1, 2 and 3)", path, version);
  ShardHeader h;
  h.token_bytes = load_le<uint32_t>(data + 12);
  h.block_size = load_le<uint64_t>(data + 16);
  h.num_blocks = load_le<uint64_t>(data + 24);
  uint64_t num_tokens = load_le<uint64_t>(data + 32);
  h.num_documents = load_le<uint64_t>(data + 40);
  h.max_token_id = load_le<uint32_t>(data + 48);
  h.document_index = version == kShardVersionDocs;
  if (h.document_index) {
    if (load_le<uint32_t>(data + 52) != 1u) fail("{}: shard version 3 without its document index flag", path);
    h.num_starts = load_le<uint64_t>(data + 56);
  }
  if (h.token_bytes != 2 && h.token_bytes != 4) fail("{}: token_bytes is {}, expected 2 or 4", path, h.token_bytes);
  if (version == kShardVersionU32 && h.token_bytes != 4)
    fail("{}: shard version 2 holds uint32 ids but token_bytes is {}", path, h.token_bytes);
  if (h.block_size == 0) fail("{}: block_size is 0", path);
  if (num_tokens != h.num_blocks * h.block_size)
    fail("{}: num_tokens {} != num_blocks {} * block_size {}", path, num_tokens, h.num_blocks, h.block_size);
  uint64_t want = kShardHeaderBytes + num_tokens * h.token_bytes;
  if (h.document_index) want += (h.num_blocks + 1) * 8 + h.num_starts * 4;
  if (size != want)
    fail("{}: file is {} bytes but its header describes {} (incomplete or corrupt shard)", path, size, want);
  return h;
}

ShardReader::ShardReader(const std::string& path) : file_(path) {
  header_ = parse_shard_header(file_.data(), file_.size(), path);
  if (header_.document_index)
    index_ = file_.data() + kShardHeaderBytes + header_.num_blocks * header_.block_size * header_.token_bytes;
}

void ShardReader::document_starts(uint64_t b, std::vector<int32_t>& out) const {
  LT_CHECK(index_, "{}: no document index (shard version {}); re-run `llamatrain prepare`", path(),
           shard_version(header_.token_bytes));
  LT_CHECK(b < header_.num_blocks, "{}: block {} out of range (shard has {})", path(), b, header_.num_blocks);
  const uint64_t lo = load_le<uint64_t>(index_ + 8 * b), hi = load_le<uint64_t>(index_ + 8 * (b + 1));
  LT_CHECK(lo <= hi && hi <= header_.num_starts, "{}: document index of block {} is corrupt", path(), b);
  const uint8_t* pos = index_ + 8 * (header_.num_blocks + 1);
  out.clear();
  for (uint64_t i = lo; i < hi; ++i) {
    const uint32_t p = load_le<uint32_t>(pos + 4 * i);
    LT_CHECK(p < header_.block_size && (out.empty() || int32_t(p) > out.back()),
             "{}: document index of block {} is corrupt", path(), b);
    out.push_back(int32_t(p));
  }
}

void ShardReader::read_block(uint64_t b, int32_t* out) const {
  LT_CHECK(b < header_.num_blocks, "{}: block {} out of range (shard has {})", path(), b, header_.num_blocks);
  const uint64_t n = header_.block_size;
  const uint8_t* p = file_.data() + kShardHeaderBytes + b * n * header_.token_bytes;
  if (header_.token_bytes == 2) {
    for (uint64_t i = 0; i < n; ++i) out[i] = int32_t(load_le<uint16_t>(p + 2 * i));
  } else {
    std::memcpy(out, p, n * 4);
  }
}

ShardWriter::ShardWriter(const std::string& path, uint32_t token_bytes, uint64_t block_size, bool document_index)
    : path_(path) {
  LT_CHECK(token_bytes == 2 || token_bytes == 4, "token_bytes must be 2 or 4, got {}", token_bytes);
  LT_CHECK(block_size > 0, "block size must be positive");
  header_.token_bytes = token_bytes;
  header_.block_size = block_size;
  header_.document_index = document_index;
  f_ = std::fopen(path.c_str(), "wb");
  if (!f_) fail("cannot create {}: {}", path, std::strerror(errno));
  uint8_t zero[kShardHeaderBytes] = {};
  if (std::fwrite(zero, 1, sizeof zero, f_) != sizeof zero) fail("cannot write {}: {}", path, std::strerror(errno));
  buf_.resize(block_size * token_bytes);
}

ShardWriter::~ShardWriter() {
  if (f_) {
    std::fclose(f_);
    ::unlink(path_.c_str());
  }
}

void ShardWriter::write_block(const int32_t* ids, uint64_t num_documents_starting_here) {
  LT_CHECK(!header_.document_index, "{}: a shard with a document index needs each block's document starts", path_);
  write_ids(ids, num_documents_starting_here);
}

void ShardWriter::write_ids(const int32_t* ids, uint64_t num_documents_starting_here) {
  const uint64_t n = header_.block_size;
  for (uint64_t i = 0; i < n; ++i) {
    uint32_t id = uint32_t(ids[i]);
    if (id > header_.max_token_id) header_.max_token_id = id;
    if (header_.token_bytes == 2) {
      LT_CHECK(id <= 0xffff, "{}: token id {} does not fit uint16", path_, id);
      store_le<uint16_t>(buf_.data() + 2 * i, uint16_t(id));
    } else {
      store_le<uint32_t>(buf_.data() + 4 * i, id);
    }
  }
  if (std::fwrite(buf_.data(), 1, buf_.size(), f_) != buf_.size())
    fail("cannot write {}: {}", path_, std::strerror(errno));
  header_.num_blocks++;
  header_.num_documents += num_documents_starting_here;
  offsets_.push_back(starts_.size());
}

void ShardWriter::write_block(const int32_t* ids, const std::vector<uint32_t>& doc_starts) {
  LT_CHECK(header_.document_index, "{}: document starts given to a shard without a document index", path_);
  for (size_t i = 0; i < doc_starts.size(); ++i)
    LT_CHECK(doc_starts[i] < header_.block_size && (i == 0 || doc_starts[i] > doc_starts[i - 1]),
             "{}: document starts must be ascending positions inside the block", path_);
  starts_.insert(starts_.end(), doc_starts.begin(), doc_starts.end());
  write_ids(ids, doc_starts.size());
}

void ShardWriter::finish() {
  bool ok = true;
  if (header_.document_index) {
    header_.num_starts = starts_.size();
    std::vector<uint8_t> idx(offsets_.size() * 8 + starts_.size() * 4);
    for (size_t i = 0; i < offsets_.size(); ++i) store_le<uint64_t>(idx.data() + 8 * i, offsets_[i]);
    for (size_t i = 0; i < starts_.size(); ++i) store_le<uint32_t>(idx.data() + 8 * offsets_.size() + 4 * i, starts_[i]);
    ok = std::fwrite(idx.data(), 1, idx.size(), f_) == idx.size();
  }
  uint8_t h[kShardHeaderBytes];
  encode_header(header_, h);
  ok = ok && std::fseek(f_, 0, SEEK_SET) == 0 && std::fwrite(h, 1, sizeof h, f_) == sizeof h &&
            std::fflush(f_) == 0 && ::fsync(fileno(f_)) == 0;
  int e = errno;
  ok = (std::fclose(f_) == 0) && ok;
  f_ = nullptr;
  if (!ok) {
    ::unlink(path_.c_str());
    fail("cannot write {}: {}", path_, std::strerror(e));
  }
}

}  // namespace lt::data
