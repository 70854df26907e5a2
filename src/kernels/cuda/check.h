// Error checks for the CUDA backend: a failed CUDA runtime, cuBLAS(Lt), cuDNN or NCCL call
// becomes an lt::Error naming the call, the library's own text and the source line, e.g.
//   "CUDA: cudaMalloc(&p, bytes) failed: out of memory (cudaErrorMemoryAllocation) at
//    kernels/cuda/memory.cpp:21".
// Every one of these libraries reports success as 0, so the macros take the status as an int
// and this header needs none of their headers (it is included from .cu and .cpp alike).
#pragma once

namespace lt::cuda {

[[noreturn]] void fail_cuda(int code, const char* call, const char* file, int line);
[[noreturn]] void fail_cublas(int status, const char* call, const char* file, int line);
[[noreturn]] void fail_cudnn(int status, const char* call, const char* file, int line);
[[noreturn]] void fail_nccl(int result, const char* call, const char* file, int line);
// After a kernel launch: the launch's own error (bad configuration, too much shared memory).
void check_launch(const char* kernel, const char* file, int line);

}  // namespace lt::cuda

// A status check: `fail` is one of the functions above, called when `call` returns non-zero.
#define LT_STATUS_CHECK_(fail, call)                              \
  do {                                                            \
    const int lt_status_ = static_cast<int>(call);                \
    if (lt_status_ != 0) fail(lt_status_, #call, __FILE__, __LINE__); \
  } while (0)
#define LT_CUDA(call) LT_STATUS_CHECK_(::lt::cuda::fail_cuda, call)
#define LT_CUBLAS(call) LT_STATUS_CHECK_(::lt::cuda::fail_cublas, call)
#define LT_CUDNN(call) LT_STATUS_CHECK_(::lt::cuda::fail_cudnn, call)
#define LT_NCCL(call) LT_STATUS_CHECK_(::lt::cuda::fail_nccl, call)
#define LT_CUDA_LAUNCHED(kernel) ::lt::cuda::check_launch(kernel, __FILE__, __LINE__)
