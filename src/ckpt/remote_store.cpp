#include "ckpt/remote_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "ckpt/s3_client.h"
#include "core/error.h"
#include "core/file.h"

namespace lt {

namespace fs = std::filesystem;

void copy_file_atomic(const std::string& src, const std::string& dst) {
  fs::path parent = fs::path(dst).parent_path();
  std::error_code ec;
  if (!parent.empty()) fs::create_directories(parent, ec);
  if (ec) fail("cannot create directory {}: {}", parent.string(), ec.message());
  int in = ::open(src.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) fail("cannot open {}: {}", src, std::strerror(errno));
  std::string tmp = dst + ".tmp." + std::to_string(::getpid());
  int out = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0) {
    int e = errno;
    ::close(in);
    fail("cannot create {}: {}", tmp, std::strerror(e));
  }
  auto give_up = [&](const std::string& what, int e) {
    ::close(in);
    ::close(out);
    ::unlink(tmp.c_str());
    fail("copying {} to {}: {}: {}", src, dst, what, std::strerror(e));
  };
  std::vector<char> buf(1 << 20);
  for (;;) {
    ssize_t n = ::read(in, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) give_up("read", errno);
    if (n == 0) break;
    for (ssize_t off = 0; off < n;) {
      ssize_t w = ::write(out, buf.data() + off, size_t(n - off));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) give_up("write", errno);
      off += w;
    }
  }
  if (::fsync(out) != 0) give_up("fsync", errno);
  ::close(in);
  if (::close(out) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    fail("copying {} to {}: close: {}", src, dst, std::strerror(e));
  }
  if (::rename(tmp.c_str(), dst.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    fail("cannot rename {} to {}: {}", tmp, dst, std::strerror(e));
  }
  fsync_dir(parent.string());
}

DirectoryStore::DirectoryStore(std::string root) : root_(std::move(root)) {
  while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
  ensure_writable_dir(root_, "remote checkpoint directory");
}

std::string DirectoryStore::path_of(const std::string& key) const {
  // Keys come from our own naming, but a key must never escape the root.
  LT_CHECK(!key.empty() && key[0] != '/' && key.find("//") == std::string::npos &&
               ("/" + key + "/").find("/../") == std::string::npos &&
               ("/" + key + "/").find("/./") == std::string::npos,
           "invalid remote key '{}' (expected a relative path without '.', '..' or empty parts)",
           key);
  return root_ + "/" + key;
}

std::string DirectoryStore::describe(const std::string& key) const { return root_ + "/" + key; }

void DirectoryStore::put_file(const std::string& local_path, const std::string& key) {
  copy_file_atomic(local_path, path_of(key));
}

void DirectoryStore::get_file(const std::string& key, const std::string& local_path) {
  std::string src = path_of(key);
  if (!fs::is_regular_file(src)) fail("remote object {} does not exist", src);
  copy_file_atomic(src, local_path);
}

std::vector<RemoteObject> DirectoryStore::list(const std::string& prefix) {
  std::vector<RemoteObject> out;
  // Walk only the deepest directory the prefix names, then filter by the full prefix.
  std::string dir = root_;
  if (auto slash = prefix.rfind('/'); slash != std::string::npos)
    dir = root_ + "/" + prefix.substr(0, slash);
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (!it->is_regular_file()) continue;
    std::string key = fs::relative(it->path(), root_).generic_string();
    if (key.find(".tmp.") != std::string::npos) continue;  // an unfinished put
    if (key.compare(0, prefix.size(), prefix) == 0)
      out.push_back({key, static_cast<uint64_t>(it->file_size())});
  }
  if (ec) fail("listing {}: {}", dir, ec.message());
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.key < b.key; });
  return out;
}

bool DirectoryStore::exists(const std::string& key) { return fs::is_regular_file(path_of(key)); }

void DirectoryStore::remove(const std::string& key) {
  std::string p = path_of(key);
  if (::unlink(p.c_str()) != 0 && errno != ENOENT)
    fail("cannot remove {}: {}", p, std::strerror(errno));
  // Drop directories left empty, up to the root, so removed checkpoints leave no trace.
  std::error_code ec;
  for (fs::path d = fs::path(p).parent_path(); d.string().size() > root_.size();
       d = d.parent_path())
    if (!fs::remove(d, ec)) break;  // not empty (or gone): stop
}

RemoteLocation open_remote(const std::string& url) {
  auto trim = [](std::string s) {
    while (!s.empty() && s.front() == '/') s.erase(s.begin());
    while (!s.empty() && s.back() == '/') s.pop_back();
    return s;
  };
  if (url.rfind("s3://", 0) == 0) {
    std::string rest = url.substr(5);
    size_t slash = rest.find('/');
    std::string bucket = rest.substr(0, slash);
    LT_CHECK(!bucket.empty(), "remote URL '{}': expected s3://bucket/prefix", url);
    std::string prefix = slash == std::string::npos ? "" : trim(rest.substr(slash));
    return {std::make_unique<S3Store>(bucket, S3Config::from_environment()), prefix};
  }
  bool file_url = url.rfind("file://", 0) == 0;
  std::string path = file_url ? url.substr(7) : url;
  LT_CHECK(!path.empty() && (file_url || url.find("://") == std::string::npos),
           "remote URL '{}': expected s3://bucket/prefix, file:///path or a directory path", url);
  return {std::make_unique<DirectoryStore>(path), ""};
}

}  // namespace lt
