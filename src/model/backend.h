// Backend: where a stage's memory lives and where its maths runs. One factory picks it from
// `train.device` (model/device.h); everything above model/ talks to a backend only through this
// interface and Stage (model/stage.h).
//
// A backend provides: the stage itself (its size table is stage_sizes(device, ...)), memory for
// the optimizer state, host access to its memory through bounded host buffers (checkpoints,
// initialisation), the optimizer's vector maths where the memory is (gradient Σg², AdamW over a
// ZeRO-1 range), its peak FLOP rate (the MFU denominator) and a compute self-check (healthcheck).
//
// Adding a backend: model/<name>/ with a Stage, a Backend, a size table (<name>_sizes.cpp, plain
// arithmetic built everywhere so `plan` works anywhere) and kernels/<name>/; a Device value in
// model/device.h and a case in make_backend. Nothing above model/ changes.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "core/flat_access.h"
#include "model/device.h"
#include "model/stage.h"

namespace lt {

// Floats in backend memory, zero-initialised, released by the backend.
class BackendArray {
 public:
  BackendArray() = default;
  BackendArray(float* data, size_t n, std::function<void(float*)> release)
      : data_(data), n_(n), release_(std::move(release)) {}
  ~BackendArray() { reset(); }
  BackendArray(BackendArray&& o) noexcept { *this = std::move(o); }
  BackendArray& operator=(BackendArray&& o) noexcept;
  BackendArray(const BackendArray&) = delete;
  BackendArray& operator=(const BackendArray&) = delete;
  float* data() const { return data_; }
  size_t size() const { return n_; }

 private:
  void reset();
  float* data_ = nullptr;
  size_t n_ = 0;
  std::function<void(float*)> release_;
};

// A contiguous run of parameters inside an optimizer range (offsets relative to the range).
struct OptimSegment {
  size_t begin, end;
  bool decay;          // weight decay applies
  bool count_in_norm;  // counted in the global gradient norm (replicated copies are not)
};

// One AdamW update (torch.optim.AdamW semantics; kernels/cpu/adamw.h has the formula).
struct AdamWHyper {
  double lr, beta1, beta2, eps, weight_decay;  // weight_decay applies to segments with decay
  int64_t step;                                // 1-based update count
  float grad_scale;                            // the clipping coefficient
};

struct ComputeCheck {
  double max_rel_err = 0;  // a GEMM on an odd shape against a plain reference
  double gflops = 0;       // an n x n x n GEMM's rate
  double memory_free = 0, memory_total = 0;  // bytes (device memory; 0 on CPU)
  std::string device;      // what was checked, e.g. "cpu (2 threads)", "NVIDIA H200"
};

struct BackendOptions {
  int threads = 1;       // cpu: OpenMP threads of this rank
  int local_rank = 0;    // cuda: this rank's GPU is local_rank % visible devices
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  virtual std::string describe() const = 0;

  // A stage of `layout` built for `g` (g.config and g.shard describe the same shard).
  virtual std::unique_ptr<Stage> make_stage(const ParamLayout& layout, const StageGeometry& g,
                                            TensorParallelOps* tp = nullptr) = 0;
  // n zeroed floats of backend memory.
  virtual BackendArray alloc(size_t n) = 0;
  // Host access to n floats of backend memory at `data`.
  virtual std::unique_ptr<FlatAccess> access(float* data, size_t n) = 0;

  // Σ g² over the segments that count in the norm, in a fixed order (bitwise reproducible).
  virtual double sum_squares(const float* grad_range, std::span<const OptimSegment> segments) = 0;
  // AdamW over every segment: p, g, m, v point at the start of the range.
  virtual void adamw(float* p, const float* g, float* m, float* v, std::span<const OptimSegment> segments,
                     const AdamWHyper& h) = 0;

  // For communicators that reach this backend's memory (parallel/device_comm.h): the device
  // index and the stream its work is ordered on (nullptr / -1 for host memory).
  virtual void* native_stream() const { return nullptr; }
  virtual int device_index() const { return -1; }

  // Peak FLOP/s of this rank for `precision` (the MFU denominator).
  virtual double peak_flops(Precision precision) const = 0;
  virtual ComputeCheck check_compute(int gemm_size, bool inject_fault) = 0;
};

// The backend for `device`; an unavailable one is an error naming train.device.
std::unique_ptr<Backend> make_backend(Device device, const BackendOptions& o = {});
// Backends of this build, e.g. "cpu" or "cpu, cuda".
std::string available_devices();

}  // namespace lt
