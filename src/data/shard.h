// Token shard files: the binary half of a prepared dataset (the other half is meta.json).
// A shard is a 64-byte little-endian header followed by num_blocks * block_size token ids,
// each `token_bytes` wide (2 = uint16 when the vocabulary fits, else 4 = uint32), and in
// version 3 a document index after them:
//
//   off  size  field
//     0     8  magic "LTTOKENS"
//     8     4  version: 1 = uint16 ids, 2 = uint32 ids (vocabularies above 65,536 entries,
//                  Llama 3), 3 = either width plus the document index; readers accept all
//                  three (and version 1 files with token_bytes 4)
//    12     4  token_bytes (2 or 4)
//    16     8  block_size (tokens per block)
//    24     8  num_blocks
//    32     8  num_tokens (= num_blocks * block_size; a cross-check)
//    40     8  num_documents (documents whose BOS lies in this shard)
//    48     4  max_token_id (largest id stored; 0 for an empty shard)
//    52     4  flags: bit 0 = a document index follows the ids (version 3; else zero)
//    56     8  num_starts: document starts in the index (version 3; = num_documents)
//    64     …  token ids
//  then (version 3)  (num_blocks + 1) uint64 offsets: block b's starts are entries
//                    [off[b], off[b+1]) of the start array;  num_starts uint32: the position
//                    (0 .. block_size-1) in its block of the first token of each document
//
// The file size must be exactly 64 + num_tokens * token_bytes (+ the index); a shorter file
// (an interrupted write) is rejected. Full description in docs/FORMATS.md.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "core/file.h"

namespace lt::data {

inline constexpr char kShardMagic[8] = {'L', 'T', 'T', 'O', 'K', 'E', 'N', 'S'};
inline constexpr uint32_t kShardVersionU16 = 1, kShardVersionU32 = 2, kShardVersionDocs = 3;
inline uint32_t shard_version(uint32_t token_bytes) { return token_bytes == 4 ? kShardVersionU32 : kShardVersionU16; }
inline constexpr size_t kShardHeaderBytes = 64;

struct ShardHeader {
  uint32_t token_bytes = 2;
  uint64_t block_size = 0;
  uint64_t num_blocks = 0;
  uint64_t num_documents = 0;
  uint32_t max_token_id = 0;
  bool document_index = false;  // version 3
  uint64_t num_starts = 0;
};

// True when the first bytes of `data` are the shard magic.
bool is_shard(const uint8_t* data, size_t size);
// Parses and validates a header against the file size; errors name `path`.
ShardHeader parse_shard_header(const uint8_t* data, size_t size, const std::string& path);

// A memory-mapped shard: header plus a view of its token bytes.
class ShardReader {
 public:
  explicit ShardReader(const std::string& path);
  const ShardHeader& header() const { return header_; }
  const std::string& path() const { return file_.path(); }
  // Copies block `b` (block_size ids) widened to int32.
  void read_block(uint64_t b, int32_t* out) const;
  // The positions in block `b` where documents start (version 3; throws otherwise, and on an
  // index that is out of order or out of range).
  void document_starts(uint64_t b, std::vector<int32_t>& out) const;

 private:
  MappedFile file_;
  ShardHeader header_;
  const uint8_t* index_ = nullptr;  // version 3: the offsets, then the starts
};

// Streams blocks into `path` (a zero header first), then finish() writes the document index
// (with `document_index`: version 3), the real header, and fsyncs. Destroyed without finish()
// (an error), it removes the file. Dataset directories are themselves built under a temporary
// name, so no reader sees a shard being written.
class ShardWriter {
 public:
  ShardWriter(const std::string& path, uint32_t token_bytes, uint64_t block_size, bool document_index = false);
  ~ShardWriter();
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  void write_block(const int32_t* ids, uint64_t num_documents_starting_here);
  // Version 3: the block and the positions in it where documents start (ascending).
  void write_block(const int32_t* ids, const std::vector<uint32_t>& doc_starts);
  uint64_t num_blocks() const { return header_.num_blocks; }
  void finish();
  const std::string& path() const { return path_; }

 private:
  void write_ids(const int32_t* ids, uint64_t num_documents_starting_here);
  std::string path_;
  std::FILE* f_ = nullptr;
  ShardHeader header_;
  std::vector<uint8_t> buf_;
  std::vector<uint64_t> offsets_{0};
  std::vector<uint32_t> starts_;
};

}  // namespace lt::data
