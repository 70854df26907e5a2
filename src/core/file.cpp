#include "core/file.h"

#include <fcntl.h>
#include <stdio.h>  // renameat2
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>
#include <vector>

#include "core/error.h"

namespace lt {

namespace fs = std::filesystem;

void read_chunks(const std::string& path, size_t chunk_bytes, const std::function<void(const char*, size_t)>& sink) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("cannot open {}: {}", path, std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st{};
  if (fstat(fd, &st) != 0 || S_ISDIR(st.st_mode))
    fail("cannot read {}: {}", path, S_ISDIR(st.st_mode) ? "it is a directory" : std::strerror(errno));
  posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  std::vector<char> buf(std::max<size_t>(chunk_bytes, 1));
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("cannot read {}: {}", path, std::strerror(errno));
    }
    if (n == 0) break;
    sink(buf.data(), size_t(n));
  }
}

std::string read_file(const std::string& path) {
  std::string out;
  read_chunks(path, size_t(1) << 16, [&](const char* p, size_t n) { out.append(p, n); });
  return out;
}

void fsync_dir(const std::string& dir) {
  int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

void write_file_atomic(const std::string& path, std::string_view contents) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail("cannot create {}: {}", tmp, std::strerror(errno));
  size_t off = 0;
  while (off < contents.size()) {
    ssize_t n = ::write(fd, contents.data() + off, contents.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      fail("cannot write {}: {}", path, std::strerror(e));
    }
    off += size_t(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    fail("cannot write {}: {}", path, std::strerror(e));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    fail("cannot rename {} to {}: {}", tmp, path, std::strerror(e));
  }
  fsync_dir(fs::path(path).parent_path().string());
}

void ensure_writable_dir(const std::string& dir, const std::string& what) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail("{} '{}' cannot be created: {}", what, dir, ec.message());
  if (::access(dir.c_str(), W_OK) != 0) fail("{} '{}' is not writable: {}", what, dir, std::strerror(errno));
}

std::string staging_dir(const std::string& final_dir, const std::string& what) {
  std::string out = fs::path(final_dir).lexically_normal().string();
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  std::string tmp = out + ".tmp-" + std::to_string(::getpid());
  std::error_code ec;
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  if (ec) fail("{} '{}' cannot be created (as {} first): {}", what, out, tmp, ec.message());
  if (::access(tmp.c_str(), W_OK) != 0) fail("{} '{}' is not writable: {}", what, out, std::strerror(errno));
  return tmp;
}

void publish_dir(const std::string& tmp, const std::string& final_dir) {
  std::string out = fs::path(final_dir).lexically_normal().string();
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  fsync_dir(tmp);
  std::string parent = fs::path(out).parent_path().string();
  if (::rename(tmp.c_str(), out.c_str()) == 0) {
    fsync_dir(parent);
    return;
  }
  // rename() cannot replace a non-empty directory: swap the two, then delete the old one.
  if (errno != ENOTEMPTY && errno != EEXIST) fail("cannot rename {} to {}: {}", tmp, out, std::strerror(errno));
  if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, out.c_str(), RENAME_EXCHANGE) != 0)
    fail("cannot replace {} with {}: {}", out, tmp, std::strerror(errno));
  fsync_dir(parent);
  std::error_code ec;
  fs::remove_all(tmp, ec);  // now the old contents
}

MappedFile::MappedFile(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("cannot open {}: {}", path, std::strerror(errno));
  struct stat st{};
  if (fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    fail("cannot stat {}: {}", path, std::strerror(e));
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    fail("cannot map {}: it is a directory", path);
  }
  size_ = size_t(st.st_size);
  if (size_ > 0) {
    void* p = mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      fail("cannot map {}: {}", path, std::strerror(e));
    }
    data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
}

MappedFile::~MappedFile() {
  if (data_) munmap(const_cast<uint8_t*>(data_), size_);
}

MappedFile::MappedFile(MappedFile&& o) noexcept { *this = std::move(o); }

MappedFile& MappedFile::operator=(MappedFile&& o) noexcept {
  if (this != &o) {
    if (data_) munmap(const_cast<uint8_t*>(data_), size_);
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
    path_ = std::move(o.path_);
  }
  return *this;
}

}  // namespace lt
