#include "data/stream.h"

#include <xxhash.h>
#include <zlib.h>
#include <zstd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "core/error.h"

namespace lt::data {

namespace {

class PlainStream : public InputStream {
 public:
  explicit PlainStream(const std::string& path) : InputStream(path) {}
  size_t read(char* buf, size_t n) override { return read_raw(buf, n); }
  const char* compression() const override { return "none"; }
};

class GzipStream : public InputStream {
 public:
  explicit GzipStream(const std::string& path) : InputStream(path), in_(1 << 16) {
    std::memset(&z_, 0, sizeof z_);
    if (inflateInit2(&z_, 15 + 32) != Z_OK) fail("{}: cannot start gzip decoder", path);  // +32: gzip or zlib header
  }
  ~GzipStream() override { inflateEnd(&z_); }
  size_t read(char* buf, size_t n) override {
    z_.next_out = reinterpret_cast<Bytef*>(buf);
    z_.avail_out = uInt(n);
    while (z_.avail_out == n && !done_) {
      if (z_.avail_in == 0) {
        size_t got = read_raw(in_.data(), in_.size());
        if (got == 0) fail("{}: truncated gzip stream", path_);
        z_.next_in = reinterpret_cast<Bytef*>(in_.data());
        z_.avail_in = uInt(got);
      }
      int rc = inflate(&z_, Z_NO_FLUSH);
      if (rc == Z_STREAM_END) {
        // Concatenated gzip members (as `cat a.gz b.gz` makes) continue; real end only at EOF.
        if (z_.avail_in == 0) {
          size_t got = read_raw(in_.data(), in_.size());
          if (got == 0) {
            done_ = true;
            break;
          }
          z_.next_in = reinterpret_cast<Bytef*>(in_.data());
          z_.avail_in = uInt(got);
        }
        inflateReset(&z_);
      } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
        fail("{}: corrupt gzip data ({})", path_, z_.msg ? z_.msg : "inflate error");
      }
    }
    if (done_) {  // hash the rest of the file (trailing garbage is already consumed)
      char tail[4096];
      while (read_raw(tail, sizeof tail) > 0) {}
    }
    return n - z_.avail_out;
  }
  const char* compression() const override { return "gzip"; }

 private:
  z_stream z_;
  std::vector<char> in_;
  bool done_ = false;
};

class ZstdStream : public InputStream {
 public:
  explicit ZstdStream(const std::string& path) : InputStream(path), in_(ZSTD_DStreamInSize()) {
    d_ = ZSTD_createDStream();
    if (!d_) fail("{}: cannot start zstd decoder", path);
    ZSTD_initDStream(d_);
  }
  ~ZstdStream() override { ZSTD_freeDStream(d_); }
  size_t read(char* buf, size_t n) override {
    ZSTD_outBuffer out{buf, n, 0};
    while (out.pos == 0) {
      if (ib_.pos == ib_.size) {
        size_t got = read_raw(in_.data(), in_.size());
        if (got == 0) {
          if (last_ != 0) fail("{}: truncated zstd stream", path_);
          return 0;
        }
        ib_ = ZSTD_inBuffer{in_.data(), got, 0};
      }
      last_ = ZSTD_decompressStream(d_, &out, &ib_);
      if (ZSTD_isError(last_)) fail("{}: corrupt zstd data ({})", path_, ZSTD_getErrorName(last_));
    }
    return out.pos;
  }
  const char* compression() const override { return "zstd"; }

 private:
  ZSTD_DStream* d_;
  std::vector<char> in_;
  ZSTD_inBuffer ib_{nullptr, 0, 0};
  size_t last_ = 0;
};

}  // namespace

InputStream::InputStream(const std::string& path) : path_(path) {
  f_ = std::fopen(path.c_str(), "rb");
  if (!f_) fail("cannot open {}: {}", path, std::strerror(errno));
  XXH64_state_t* st = XXH64_createState();
  XXH64_reset(st, 0);
  hash_state_ = st;
}

InputStream::~InputStream() {
  XXH64_freeState(static_cast<XXH64_state_t*>(hash_state_));
  std::fclose(f_);
}

size_t InputStream::read_raw(char* buf, size_t n) {
  size_t got = std::fread(buf, 1, n, f_);
  if (got < n && std::ferror(f_)) fail("cannot read {}: {}", path_, std::strerror(errno));
  XXH64_update(static_cast<XXH64_state_t*>(hash_state_), buf, got);
  raw_read_ += got;
  return got;
}

std::string InputStream::raw_hash() const {
  char out[32];
  std::snprintf(out, sizeof out, "xxh64:%016llx",
                static_cast<unsigned long long>(XXH64_digest(static_cast<XXH64_state_t*>(hash_state_))));
  return out;
}

std::unique_ptr<InputStream> InputStream::open(const std::string& path) {
  unsigned char magic[4] = {0, 0, 0, 0};
  {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) fail("cannot open {}: {}", path, std::strerror(errno));
    size_t got = std::fread(magic, 1, 4, f);
    bool err = std::ferror(f);
    int e = errno;
    std::fclose(f);
    if (err) fail("cannot read {}: {}", path, std::strerror(e));
    if (got < 4) magic[0] = magic[1] = 0;
  }
  if (magic[0] == 0x1f && magic[1] == 0x8b) return std::make_unique<GzipStream>(path);
  if (magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd) return std::make_unique<ZstdStream>(path);
  return std::make_unique<PlainStream>(path);
}

bool LineReader::next(std::string& line) {
  line.clear();
  for (;;) {
    if (pos_ == end_) {
      if (eof_) {
        if (line.empty()) return false;
        ++line_no_;
        return true;  // last line without "\n"
      }
      end_ = in_.read(buf_.data(), buf_.size());
      pos_ = 0;
      if (end_ == 0) {
        eof_ = true;
        continue;
      }
    }
    const char* start = buf_.data() + pos_;
    const void* nl = std::memchr(start, '\n', end_ - pos_);
    if (nl) {
      size_t len = size_t(static_cast<const char*>(nl) - start);
      line.append(start, len);
      pos_ += len + 1;
      ++line_no_;
      return true;
    }
    line.append(start, end_ - pos_);
    pos_ = end_;
  }
}

}  // namespace lt::data
