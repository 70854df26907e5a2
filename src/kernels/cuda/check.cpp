#include "kernels/cuda/check.h"

#include <cublasLt.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>
#include <nccl.h>

#include <cstring>

#include "core/error.h"

namespace lt::cuda {

namespace {
// "<checkout>/src/kernels/cuda/memory.cpp" -> "kernels/cuda/memory.cpp" (and tests/… as it
// is): messages name the file within the project, not the build machine's path.
const char* short_path(const char* file) {
  for (const char* marker : {"/src/", "/tests/"}) {
    const char* p = std::strstr(file, marker);
    if (p) return marker[1] == 's' ? p + 5 : p + 1;
  }
  return file;
}
}  // namespace

void fail_cuda(int code, const char* call, const char* file, int line) {
  const auto e = static_cast<cudaError_t>(code);
  fail("CUDA: {} failed: {} ({}) at {}:{}", call, cudaGetErrorString(e), cudaGetErrorName(e), short_path(file), line);
}

void fail_cublas(int status, const char* call, const char* file, int line) {
  const auto s = static_cast<cublasStatus_t>(status);
  fail("cuBLAS: {} failed: {} ({}) at {}:{}", call, cublasLtGetStatusString(s), cublasLtGetStatusName(s),
       short_path(file), line);
}

void fail_cudnn(int status, const char* call, const char* file, int line) {
  char detail[512] = {};
  cudnnGetLastErrorString(detail, sizeof detail);
  fail("cuDNN: {} failed: {}{}{} at {}:{}", call, cudnnGetErrorString(static_cast<cudnnStatus_t>(status)),
       detail[0] ? ": " : "", detail, short_path(file), line);
}

void fail_nccl(int result, const char* call, const char* file, int line) {
  const char* last = ncclGetLastError(nullptr);
  fail("NCCL: {} failed: {}{}{} at {}:{}", call, ncclGetErrorString(static_cast<ncclResult_t>(result)),
       last && last[0] ? ": " : "", last ? last : "", short_path(file), line);
}

void check_launch(const char* kernel, const char* file, int line) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess)
    fail("CUDA: launching {} failed: {} ({}) at {}:{}", kernel, cudaGetErrorString(e), cudaGetErrorName(e),
         short_path(file), line);
}

}  // namespace lt::cuda
