// Buffer: one large, aligned, zero-initialised allocation that lives for the whole run.
// Big buffers are mmap'ed, advised to use transparent huge pages and touched once up front,
// so the step loop never pays a page fault (a fresh 4 KiB page costs ~12 us here).
#pragma once
#include <cstddef>
#include <cstdint>

namespace lt {

class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(size_t bytes);
  ~Buffer();
  Buffer(Buffer&& o) noexcept;
  Buffer& operator=(Buffer&& o) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  void* data() const { return data_; }
  template <typename T> T* as() const { return static_cast<T*>(data_); }
  size_t size() const { return bytes_; }
  bool empty() const { return bytes_ == 0; }

 private:
  void release();
  void* data_ = nullptr;
  size_t bytes_ = 0;
  bool mapped_ = false;
};

// Peak and current resident set size of this process, in bytes.
int64_t peak_rss_bytes();
int64_t current_rss_bytes();
// Minor + major page faults of this process so far (getrusage).
int64_t page_faults();

}  // namespace lt
