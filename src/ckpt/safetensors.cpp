#include "ckpt/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace lt {

using json = nlohmann::json;

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

namespace {

// Strict UTF-8 (no overlongs, no surrogates, <= U+10FFFF). Returns the offset of the first
// bad byte, or npos.
size_t find_bad_utf8(const uint8_t* s, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint8_t c = s[i];
    if (c < 0x80) { ++i; continue; }
    size_t len;
    uint32_t cp;
    if ((c & 0xe0) == 0xc0) { len = 2; cp = c & 0x1f; }
    else if ((c & 0xf0) == 0xe0) { len = 3; cp = c & 0x0f; }
    else if ((c & 0xf8) == 0xf0) { len = 4; cp = c & 0x07; }
    else return i;
    if (i + len > n) return i;
    for (size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xc0) != 0x80) return i;
      cp = cp << 6 | (s[i + k] & 0x3f);
    }
    static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += len;
  }
  return std::string::npos;
}

// Nesting depth of a JSON text (brackets outside strings); a safetensors header needs 3.
int json_depth(const uint8_t* s, size_t n) {
  int depth = 0, max_depth = 0;
  bool in_str = false;
  for (size_t i = 0; i < n; ++i) {
    uint8_t c = s[i];
    if (in_str) {
      if (c == '\\') ++i;
      else if (c == '"') in_str = false;
    } else if (c == '"') {
      in_str = true;
    } else if (c == '[' || c == '{') {
      max_depth = std::max(max_depth, ++depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return max_depth;
}

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = v << 8 | p[i];
  return v;
}

// A non-negative integer that fits in int64 (and is not a float like 3.0 or 1e30).
bool as_index(const json& v, uint64_t* out) {
  if (v.is_number_unsigned()) {
    *out = v.get<uint64_t>();
    return *out <= uint64_t(INT64_MAX);
  }
  if (v.is_number_integer() && v.get<int64_t>() >= 0) {
    *out = uint64_t(v.get<int64_t>());
    return true;
  }
  return false;
}

TensorInfo parse_entry(const std::string& name, const json& e, uint64_t data_size, const std::string& path) {
  auto bad = [&](const std::string& why) -> TensorInfo { fail("{}: tensor '{}': {}", path, name, why); };
  if (!e.is_object()) return bad("header entry is not a JSON object");
  TensorInfo t;
  t.name = name;
  auto d = e.find("dtype");
  if (d == e.end() || !d->is_string()) return bad("missing or non-string 'dtype'");
  t.dtype = parse_dtype(d->get_ref<const std::string&>(), fmt::format("{}: tensor '{}'", path, name));
  auto s = e.find("shape");
  if (s == e.end() || !s->is_array()) return bad("missing or non-array 'shape'");
  if (s->size() > 8) return bad(fmt::format("shape has {} dimensions (at most 8 supported)", s->size()));
  uint64_t numel = 1;
  for (const auto& x : *s) {
    uint64_t v;
    if (!as_index(x, &v)) return bad(fmt::format("shape entry {} is not a non-negative integer", x.dump()));
    if (__builtin_mul_overflow(numel, v, &numel) || numel > (uint64_t(1) << 62))
      return bad("shape has too many elements");
    t.shape.push_back(int64_t(v));
  }
  auto o = e.find("data_offsets");
  if (o == e.end() || !o->is_array() || o->size() != 2) return bad("'data_offsets' must be an array [begin, end]");
  uint64_t b, en;
  if (!as_index((*o)[0], &b) || !as_index((*o)[1], &en)) return bad("'data_offsets' must be non-negative integers");
  if (b > en) return bad(fmt::format("data_offsets [{}, {}] run backwards", b, en));
  if (en > data_size)
    return bad(fmt::format("data_offsets [{}, {}] reach past the end of the data ({} bytes; file truncated?)", b, en,
                           data_size));
  uint64_t want;
  if (__builtin_mul_overflow(numel, uint64_t(dtype_size(t.dtype)), &want) || want != en - b)
    return bad(fmt::format("shape {} of {} needs {} bytes but data_offsets [{}, {}] hold {}", s->dump(),
                           dtype_name(t.dtype), numel * dtype_size(t.dtype), b, en, en - b));
  t.begin = size_t(b);
  t.end = size_t(en);
  return t;
}

}  // namespace

SafetensorsHeader parse_safetensors(const uint8_t* data, size_t size, const std::string& path) {
  LT_CHECK(size >= 8, "{}: not a safetensors file: {} bytes, shorter than the 8-byte header length", path, size);
  uint64_t n = read_u64_le(data);
  LT_CHECK(n <= size - 8, "{}: safetensors header length {} reaches past the end of the file ({} bytes)", path, n,
           size);
  LT_CHECK(n <= kMaxSafetensorsHeader, "{}: safetensors header of {} bytes exceeds the {} MB limit", path, n,
           kMaxSafetensorsHeader >> 20);
  LT_CHECK(n >= 2, "{}: safetensors header is empty", path);
  const uint8_t* h = data + 8;
  size_t bad = find_bad_utf8(h, size_t(n));
  LT_CHECK(bad == std::string::npos, "{}: safetensors header is not valid UTF-8 (byte {} of the header)", path, bad);
  LT_CHECK(json_depth(h, size_t(n)) <= 16, "{}: safetensors header JSON is nested too deeply", path);
  json j;
  try {
    j = json::parse(h, h + n);
  } catch (const json::exception& e) {
    fail("{}: safetensors header is not valid JSON: {}", path, e.what());
  }
  LT_CHECK(j.is_object(), "{}: safetensors header must be a JSON object, got {}", path, j.type_name());

  SafetensorsHeader out;
  out.data_start = size_t(8 + n);
  const uint64_t data_size = size - out.data_start;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "__metadata__") {
      LT_CHECK(it->is_object(), "{}: '__metadata__' must be an object of strings", path);
      for (auto m = it->begin(); m != it->end(); ++m) {
        LT_CHECK(m->is_string(), "{}: '__metadata__' entry '{}' must be a string, got {}", path, m.key(),
                 m->type_name());
        out.metadata[m.key()] = m->get<std::string>();
      }
      continue;
    }
    out.tensors.push_back(parse_entry(it.key(), *it, data_size, path));
  }
  std::sort(out.tensors.begin(), out.tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  for (size_t i = 1; i < out.tensors.size(); ++i) {
    const auto &p = out.tensors[i - 1], &q = out.tensors[i];
    // Empty tensors occupy no bytes and cannot overlap anything.
    if (q.begin < p.end && q.nbytes() > 0)
      fail("{}: tensors '{}' [{}, {}) and '{}' [{}, {}) overlap", path, p.name, p.begin, p.end, q.name, q.begin, q.end);
  }
  return out;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : map_(path) {
  header_ = parse_safetensors(map_.data(), map_.size(), path);
  for (size_t i = 0; i < header_.tensors.size(); ++i) index_[header_.tensors[i].name] = i;
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &header_.tensors[it->second];
}

const TensorInfo& SafetensorsFile::at(const std::string& name) const {
  const TensorInfo* t = find(name);
  if (!t) fail("{}: no tensor named '{}'", path(), name);
  return *t;
}

void SafetensorsFile::release(const TensorInfo& t) const {
  const size_t page = size_t(sysconf(_SC_PAGESIZE));
  uintptr_t b = uintptr_t(map_.data() + header_.data_start + t.begin);
  uintptr_t e = uintptr_t(map_.data() + header_.data_start + t.end);
  b = (b + page - 1) / page * page;  // only whole pages inside the tensor
  e = e / page * page;
  if (e > b) madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTNEED);
}

// ---- writer ----

namespace {
struct HashStateHolder {
  XXH64_state_t* s = XXH64_createState();
  ~HashStateHolder() { XXH64_freeState(s); }
};
}  // namespace

struct SafetensorsWriter::HashState : HashStateHolder {};

SafetensorsWriter::SafetensorsWriter(std::string path, std::vector<TensorDecl> tensors,
                                     std::map<std::string, std::string> metadata)
    : path_(std::move(path)), hash_(std::make_unique<HashState>()) {
  json h = json::object();
  if (!metadata.empty()) h["__metadata__"] = metadata;
  uint64_t off = 0;
  for (const auto& t : tensors) {
    LT_CHECK(t.name != "__metadata__" && !h.contains(t.name), "{}: duplicate or reserved tensor name '{}'", path_,
             t.name);
    uint64_t n = dtype_size(t.dtype);
    for (auto d : t.shape) {
      LT_CHECK(d >= 0, "{}: tensor '{}' has a negative dimension", path_, t.name);
      n *= uint64_t(d);
    }
    h[t.name] = {{"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {off, off + n}}};
    off += n;
  }
  std::string text = h.dump();
  // Pad with spaces so the data section starts 8-byte aligned (as the reference writer does).
  while ((text.size() + 8) % 8 != 0) text.push_back(' ');
  data_start_ = 8 + text.size();
  data_size_ = off;

  tmp_ = path_ + ".tmp";
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) fail("cannot create {}: {}", tmp_, std::strerror(errno));
  XXH64_reset(hash_->s, 0);
  buf_.reserve(8 << 20);
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(text.size()) >> (8 * i));
  buf_.insert(buf_.end(), len, len + 8);
  buf_.insert(buf_.end(), text.begin(), text.end());
}

SafetensorsWriter::~SafetensorsWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!done_) ::unlink(tmp_.c_str());
}

namespace {
void write_all(int fd, const uint8_t* p, size_t size, const std::string& path) {
  size_t off = 0;
  while (off < size) {
    ssize_t n = ::write(fd, p + off, size - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("cannot write {}: {}", path, std::strerror(errno));
    }
    off += size_t(n);
  }
}
}  // namespace

void SafetensorsWriter::flush() {
  XXH64_update(hash_->s, buf_.data(), buf_.size());
  write_all(fd_, buf_.data(), buf_.size(), tmp_);
  buf_.clear();
}

void SafetensorsWriter::write(const void* data, size_t nbytes) {
  LT_CHECK(written_ + nbytes <= data_size_, "{}: writing {} bytes past the declared tensors ({} bytes)", path_,
           written_ + nbytes - data_size_, data_size_);
  const auto* p = static_cast<const uint8_t*>(data);
  written_ += nbytes;
  if (nbytes >= buf_.capacity()) {  // large tensors go straight to the file
    flush();
    XXH64_update(hash_->s, p, nbytes);
    write_all(fd_, p, nbytes, tmp_);
    return;
  }
  if (buf_.size() + nbytes > buf_.capacity()) flush();
  buf_.insert(buf_.end(), p, p + nbytes);
}

FileDigest SafetensorsWriter::finish() {
  LT_CHECK(written_ == data_size_, "{}: {} of {} declared tensor bytes were written", path_, written_, data_size_);
  flush();
  if (::fsync(fd_) != 0 || ::close(fd_) != 0) {
    fd_ = -1;
    fail("cannot write {}: {}", tmp_, std::strerror(errno));
  }
  fd_ = -1;
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) fail("cannot rename {} to {}: {}", tmp_, path_, std::strerror(errno));
  done_ = true;
  return {file_size(), XXH64_digest(hash_->s)};
}

FileDigest digest_file(const std::string& path) {
  // Streamed through a small buffer: mapping the file would count every page of a
  // multi-GB shard in this process's resident set.
  HashStateHolder h;
  XXH64_reset(h.s, 0);
  FileDigest d;
  read_chunks(path, size_t(4) << 20, [&](const char* p, size_t n) {
    XXH64_update(h.s, p, n);
    d.size += uint64_t(n);
  });
  d.xxh64 = XXH64_digest(h.s);
  return d;
}

}  // namespace lt
