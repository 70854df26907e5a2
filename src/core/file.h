// Files: whole-file reads, atomic writes (temp name + fsync + rename), read-only mmap.
// Every error names the path and the system's reason.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace lt {

std::string read_file(const std::string& path);
// Streams `path` front to back through a buffer of `chunk_bytes`, handing each piece to `sink`
// (memory stays at one buffer however large the file; read-ahead is told it is sequential).
void read_chunks(const std::string& path, size_t chunk_bytes, const std::function<void(const char*, size_t)>& sink);
// Writes to `path`.tmp.<pid>, fsyncs, renames over `path`: readers see old or new, never half.
void write_file_atomic(const std::string& path, std::string_view contents);
// fsync a directory so a rename inside it is durable.
void fsync_dir(const std::string& dir);
// Creates `dir` (and parents) and checks that a file can be written in it.
void ensure_writable_dir(const std::string& dir, const std::string& what);

// Outputs built under a temporary name and published in one step, so that a failure at any point
// (bad input found late, a full disk, a kill) leaves nothing that looks complete:
//   std::string tmp = staging_dir(out, "dataset");  // "<out>.tmp-<pid>", created empty
//   ... write everything into tmp ...
//   publish_dir(tmp, out);                // or, on error, remove_all(tmp)
// Errors name `what` and `final_dir` (not the temporary name).
std::string staging_dir(const std::string& final_dir, const std::string& what);
// Makes directory `tmp` appear as `final_dir`: a rename, or when `final_dir` exists, an atomic
// swap of the two (renameat2 RENAME_EXCHANGE) after which the old one is deleted. Readers see the
// old or the new directory whole, never a mix of both.
void publish_dir(const std::string& tmp, const std::string& final_dir);

// A read-only memory map of a whole file. Empty files map to data()==nullptr, size()==0.
class MappedFile {
 public:
  MappedFile() = default;
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(MappedFile&& o) noexcept;
  MappedFile& operator=(MappedFile&& o) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

}  // namespace lt
