// safetensors (https://huggingface.co/docs/safetensors): an 8-byte little-endian header
// length N, N bytes of JSON {"name": {"dtype", "shape", "data_offsets": [begin, end]}, ...,
// "__metadata__": {string: string}}, then the tensor bytes (offsets relative to 8 + N).
//
// The reader maps the file and hands out views into the mapping (zero copy). Everything the
// header claims is checked against the file before any view is made: header length, UTF-8,
// JSON shape, dtypes, shape x dtype == byte count, offsets inside the file and not
// overlapping. Every error names the file and the tensor.
//
// The writer streams: the caller declares all tensors up front (so the header, with every
// offset, goes first), then appends each tensor's bytes in declaration order. It writes
// under a temporary name and renames on finish(), computing size and xxhash64 as it goes.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/file.h"

namespace lt {

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  size_t begin = 0, end = 0;  // byte offsets relative to the data section

  size_t nbytes() const { return end - begin; }
  int64_t numel() const;
};

struct SafetensorsHeader {
  std::vector<TensorInfo> tensors;  // in file order (by offset)
  std::map<std::string, std::string> metadata;
  size_t data_start = 0;  // 8 + N
};

// Largest header we accept (the Rust reference uses the same limit).
inline constexpr size_t kMaxSafetensorsHeader = 100u << 20;

// Parses and validates a whole safetensors image of `size` bytes. `path` only names the file
// in errors. This is the function the fuzzer drives.
SafetensorsHeader parse_safetensors(const uint8_t* data, size_t size, const std::string& path);

// A read-only, memory-mapped safetensors file.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  const std::string& path() const { return map_.path(); }
  const std::vector<TensorInfo>& tensors() const { return header_.tensors; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  // nullptr when absent.
  const TensorInfo* find(const std::string& name) const;
  // Throws naming the file when absent.
  const TensorInfo& at(const std::string& name) const;
  std::span<const uint8_t> bytes(const TensorInfo& t) const {
    return {map_.data() + header_.data_start + t.begin, t.nbytes()};
  }
  // Drops the tensor's pages from this process's resident set (they stay in the page cache),
  // so streaming through a file larger than memory keeps RSS at a few tensors.
  void release(const TensorInfo& t) const;

 private:
  MappedFile map_;
  SafetensorsHeader header_;
  std::map<std::string, size_t> index_;
};

struct TensorDecl {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
};

// Size and xxhash64 of a written file, for checkpoint metadata.
struct FileDigest {
  uint64_t size = 0;
  uint64_t xxh64 = 0;
};

class SafetensorsWriter {
 public:
  SafetensorsWriter(std::string path, std::vector<TensorDecl> tensors,
                    std::map<std::string, std::string> metadata = {});
  ~SafetensorsWriter();  // removes the temporary file unless finish() succeeded
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  // Appends the next bytes of the data section (tensor after tensor, any chunking).
  void write(const void* data, size_t nbytes);
  // Checks that every declared byte was written, fsyncs, renames to the final name.
  FileDigest finish();
  // Bytes of the whole file once finished.
  uint64_t file_size() const { return data_start_ + data_size_; }

 private:
  void flush();
  std::string path_, tmp_;
  int fd_ = -1;
  uint64_t data_start_ = 0, data_size_ = 0, written_ = 0;
  std::vector<uint8_t> buf_;
  struct HashState;
  std::unique_ptr<HashState> hash_;
  bool done_ = false;
};

// Streams a whole file through xxhash64 (for verifying checkpoints).
FileDigest digest_file(const std::string& path);

}  // namespace lt
