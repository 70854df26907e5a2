#include "core/buffer.h"

#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

#include "core/error.h"

namespace lt {

namespace {
constexpr size_t kHugeThreshold = 1 << 20;  // buffers from 1 MiB up are mmap'ed
constexpr size_t kHugePage = 2 << 20;
}  // namespace

Buffer::Buffer(size_t bytes) : bytes_(bytes) {
  if (bytes == 0) return;
  if (bytes >= kHugeThreshold) {
    size_t len = (bytes + kHugePage - 1) / kHugePage * kHugePage;
    void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) fail("out of memory: cannot map {} bytes", bytes);
    madvise(p, len, MADV_HUGEPAGE);
    // Touch every page now, so that no page fault happens later in the step loop.
    std::memset(p, 0, len);
    data_ = p;
    mapped_ = true;
  } else {
    data_ = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!data_) fail("out of memory: cannot allocate {} bytes", bytes);
    std::memset(data_, 0, bytes);
  }
}

Buffer::~Buffer() { release(); }

Buffer::Buffer(Buffer&& o) noexcept { *this = std::move(o); }

Buffer& Buffer::operator=(Buffer&& o) noexcept {
  if (this != &o) {
    release();
    data_ = std::exchange(o.data_, nullptr);
    bytes_ = std::exchange(o.bytes_, 0);
    mapped_ = std::exchange(o.mapped_, false);
  }
  return *this;
}

void Buffer::release() {
  if (!data_) return;
  if (mapped_)
    munmap(data_, (bytes_ + kHugePage - 1) / kHugePage * kHugePage);
  else
    std::free(data_);
  data_ = nullptr;
  bytes_ = 0;
}

int64_t peak_rss_bytes() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return int64_t(ru.ru_maxrss) * 1024;
}

int64_t current_rss_bytes() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  long pages = 0, resident = 0;
  if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
  std::fclose(f);
  return int64_t(resident) * sysconf(_SC_PAGESIZE);
}

int64_t page_faults() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return int64_t(ru.ru_minflt) + int64_t(ru.ru_majflt);
}

}  // namespace lt
