#include "kernels/cuda/device.h"

#include "core/error.h"
#include "kernels/cuda/check.h"

namespace lt::cuda {

namespace {
cudaError_t count_devices(int* n) {
  *n = 0;
  const cudaError_t e = cudaGetDeviceCount(n);
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free error so later calls start clean
    *n = 0;
  }
  return e;
}
}  // namespace

int device_count() {
  int n = 0;
  count_devices(&n);
  return n;
}

std::string no_device_reason() {
  int n = 0;
  const cudaError_t e = count_devices(&n);
  if (e != cudaSuccess) return fmt::format("no usable CUDA device: {} ({})", cudaGetErrorString(e), cudaGetErrorName(e));
  if (n == 0) return "no CUDA device present";
  return "";
}

DeviceInfo device_info(int device) {
  cudaDeviceProp p{};
  LT_CUDA(cudaGetDeviceProperties(&p, device));
  DeviceInfo d;
  d.index = device;
  d.name = p.name;
  d.major = p.major;
  d.minor = p.minor;
  d.sm_count = p.multiProcessorCount;
  d.total_bytes = p.totalGlobalMem;
  d.smem_per_block_optin = p.sharedMemPerBlockOptin;
  d.l2_bytes = p.l2CacheSize;
  int current = 0;
  LT_CUDA(cudaGetDevice(&current));
  if (current == device) {
    size_t free_b = 0, total_b = 0;
    LT_CUDA(cudaMemGetInfo(&free_b, &total_b));
    d.free_bytes = free_b;
  }
  return d;
}

DeviceBuffer::DeviceBuffer(size_t bytes) { reserve(bytes); }

DeviceBuffer::~DeviceBuffer() {
  if (ptr_) cudaFree(ptr_);
}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    if (ptr_) cudaFree(ptr_);
    ptr_ = o.ptr_;
    bytes_ = o.bytes_;
    o.ptr_ = nullptr;
    o.bytes_ = 0;
  }
  return *this;
}

void DeviceBuffer::reserve(size_t bytes) {
  if (bytes <= bytes_ && ptr_) return;
  if (ptr_) cudaFree(ptr_);
  ptr_ = nullptr;
  bytes_ = 0;
  if (bytes == 0) return;
  const cudaError_t e = cudaMalloc(&ptr_, bytes);
  if (e != cudaSuccess) {
    cudaGetLastError();
    ptr_ = nullptr;
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    fail("CUDA: cannot allocate {:.1f} MiB of device memory ({}; {:.1f} of {:.1f} MiB free)", double(bytes) / 1048576.0,
         cudaGetErrorString(e), double(free_b) / 1048576.0, double(total_b) / 1048576.0);
  }
  bytes_ = bytes;
}

void copy_to_device(void* dst, const void* src, size_t bytes, cudaStream_t stream) {
  if (bytes) LT_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream));
}
void copy_to_host(void* dst, const void* src, size_t bytes, cudaStream_t stream) {
  if (bytes) LT_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream));
}
void copy_to_device_sync(void* dst, const void* src, size_t bytes) {
  if (bytes) LT_CUDA(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
}
void copy_to_host_sync(void* dst, const void* src, size_t bytes) {
  if (bytes) LT_CUDA(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
}

Stream::Stream() { LT_CUDA(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking)); }
Stream::~Stream() {
  if (s_) cudaStreamDestroy(s_);
}
void Stream::synchronize() const { LT_CUDA(cudaStreamSynchronize(s_)); }

}  // namespace lt::cuda
