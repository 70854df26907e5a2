// The CUDA device as the rest of the system sees it: whether one is usable (and why not),
// what it is, and device memory owned by a small RAII buffer. Plain C++ (no CUDA syntax).
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace lt::cuda {

// Number of usable CUDA devices; 0 (never an exception) when there is no driver or no GPU.
int device_count();
// Why device_count() is 0, in words ("no NVIDIA driver: CUDA driver version is insufficient…");
// "" when there is a device.
std::string no_device_reason();

struct DeviceInfo {
  int index = 0;
  std::string name;
  int major = 0, minor = 0;  // compute capability
  int sm_count = 0;
  size_t total_bytes = 0, free_bytes = 0;
  size_t smem_per_block_optin = 0;  // shared memory a block may opt into
  int l2_bytes = 0;
};
DeviceInfo device_info(int device);

// Device memory, allocated with cudaMalloc (256-byte aligned) and freed on destruction.
// Move-only. Allocation failure throws lt::Error naming the size and what is free.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(o.ptr_), bytes_(o.bytes_) { o.ptr_ = nullptr, o.bytes_ = 0; }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* data() const { return ptr_; }
  template <typename T> T* as() const { return static_cast<T*>(ptr_); }
  size_t bytes() const { return bytes_; }
  // Grows (reallocating, contents lost) to at least `bytes`; never shrinks.
  void reserve(size_t bytes);

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// Host <-> device copies on `stream`; the *_sync forms wait for the stream to finish.
void copy_to_device(void* dst, const void* src, size_t bytes, cudaStream_t stream);
void copy_to_host(void* dst, const void* src, size_t bytes, cudaStream_t stream);
void copy_to_device_sync(void* dst, const void* src, size_t bytes);
void copy_to_host_sync(void* dst, const void* src, size_t bytes);
template <typename T> std::vector<T> download(const T* src, size_t n) {
  std::vector<T> v(n);
  copy_to_host_sync(v.data(), src, n * sizeof(T));
  return v;
}
template <typename T> DeviceBuffer upload(const std::vector<T>& v) {
  DeviceBuffer b(v.size() * sizeof(T));
  copy_to_device_sync(b.data(), v.data(), v.size() * sizeof(T));
  return b;
}

// A stream owned by the caller's scope (non-blocking with respect to the legacy stream).
class Stream {
 public:
  Stream();
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return s_; }
  void synchronize() const;

 private:
  cudaStream_t s_ = nullptr;
};

}  // namespace lt::cuda
