// Input byte streams for corpus files: plain, gzip (.gz) or zstd (.zst, .zstd), chosen by the
// file's magic bytes rather than its name. Each stream also hashes the raw file bytes (xxh64) for
// the dataset metadata and counts them for the progress bar.
#pragma once
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

namespace lt::data {

class InputStream {
 public:
  static std::unique_ptr<InputStream> open(const std::string& path);
  virtual ~InputStream();
  // Reads up to n decompressed bytes; 0 at end of stream. Errors name the file.
  virtual size_t read(char* buf, size_t n) = 0;
  virtual const char* compression() const = 0;  // "none", "gzip", "zstd"
  uint64_t raw_bytes_read() const { return raw_read_; }
  // xxh64 of the raw file bytes; valid after read() returned 0.
  std::string raw_hash() const;
  const std::string& path() const { return path_; }

 protected:
  explicit InputStream(const std::string& path);
  size_t read_raw(char* buf, size_t n);  // from the file, hashing and counting
  std::string path_;
  std::FILE* f_ = nullptr;
  uint64_t raw_read_ = 0;
  void* hash_state_ = nullptr;  // XXH64_state_t

 public:
  InputStream(const InputStream&) = delete;
  InputStream& operator=(const InputStream&) = delete;
};

// Lines of a stream, without the "\n" (a "\r" before it is kept; callers decide).
class LineReader {
 public:
  explicit LineReader(InputStream& in) : in_(in), buf_(size_t(1) << 16, '\0') {}
  bool next(std::string& line);
  uint64_t line_number() const { return line_no_; }

 private:
  InputStream& in_;
  std::string buf_;
  size_t pos_ = 0, end_ = 0;
  bool eof_ = false;
  uint64_t line_no_ = 0;
};

}  // namespace lt::data
