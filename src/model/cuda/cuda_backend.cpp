// The CUDA backend: one GPU per rank (local rank modulo the visible devices), one stream for
// all of a rank's work, device memory, the optimizer's kernels (kernels/cuda/adamw.h) and host
// access through a bounded pinned-free staging buffer.
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/env.h"
#include "core/error.h"
#include "kernels/cuda/adamw.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/device.h"
#include "model/backend.h"
#include "model/cuda/cuda_stage.h"
#include "parallel/cuda/gpu_health.h"

namespace lt {

namespace {

// Host access to device memory: each range goes through one host staging buffer (as large as
// the largest range asked for: one tensor), copied on the backend's stream.
class DeviceFlat final : public FlatAccess {
 public:
  DeviceFlat(float* data, size_t n, cudaStream_t stream) : data_(data), n_(n), stream_(stream) {}
  ~DeviceFlat() override {
    try {
      flush();
    } catch (...) {  // a destructor must not throw; write() callers flush explicitly
    }
  }
  size_t size() const override { return n_; }
  const float* read(size_t offset, size_t n) override {
    flush();
    check(offset, n);
    staging_.resize(n);
    cuda::copy_to_host(staging_.data(), data_ + offset, n * sizeof(float), stream_);
    LT_CUDA(cudaStreamSynchronize(stream_));
    return staging_.data();
  }
  float* write(size_t offset, size_t n) override {
    flush();
    check(offset, n);
    staging_.resize(n);
    pending_ = {offset, n};
    dirty_ = true;
    return staging_.data();
  }
  void flush() override {
    if (!dirty_) return;
    dirty_ = false;
    cuda::copy_to_device(data_ + pending_.first, staging_.data(), pending_.second * sizeof(float), stream_);
    LT_CUDA(cudaStreamSynchronize(stream_));
  }

 private:
  void check(size_t offset, size_t n) const {
    LT_CHECK(offset <= n_ && n <= n_ - offset, "device access: range [{}, {}) outside {} elements", offset, offset + n,
             n_);
  }
  float* data_;
  size_t n_;
  cudaStream_t stream_;
  std::vector<float> staging_;
  std::pair<size_t, size_t> pending_{0, 0};
  bool dirty_ = false;
};

bool same_segments(const std::vector<OptimSegment>& a, std::span<const OptimSegment> b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].begin != b[i].begin || a[i].end != b[i].end || a[i].decay != b[i].decay ||
        a[i].count_in_norm != b[i].count_in_norm)
      return false;
  return true;
}

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(const BackendOptions& o) {
    const int n = cuda::device_count();
    LT_CHECK(n > 0, "train.device: cuda has no usable GPU here: {}", cuda::no_device_reason());
    device_ = o.local_rank % n;
    LT_CUDA(cudaSetDevice(device_));
    info_ = cuda::device_info(device_);
    stream_ = std::make_unique<cuda::Stream>();
  }
  Device device() const override { return Device::cuda; }
  std::string describe() const override {
    return fmt::format("cuda: GPU {} {} (sm_{}{}, {:.0f} GiB)", device_, info_.name, info_.major, info_.minor,
                       double(info_.total_bytes) / (1024.0 * 1024.0 * 1024.0));
  }
  void* native_stream() const override { return stream_->get(); }
  int device_index() const override { return device_; }

  std::unique_ptr<Stage> make_stage(const ParamLayout& layout, const StageGeometry& g,
                                    TensorParallelOps* tp) override {
    return std::make_unique<CudaStage>(layout, g, tp, stream_->get());
  }

  BackendArray alloc(size_t n) override {
    auto* b = new cuda::DeviceBuffer(std::max<size_t>(n, 1) * sizeof(float));
    LT_CUDA(cudaMemsetAsync(b->data(), 0, b->bytes(), stream_->get()));
    stream_->synchronize();
    return BackendArray(b->as<float>(), n, [b](float*) { delete b; });
  }

  std::unique_ptr<FlatAccess> access(float* data, size_t n) override {
    return std::make_unique<DeviceFlat>(data, n, stream_->get());
  }

  double sum_squares(const float* g, std::span<const OptimSegment> segments) override {
    const cuda::SegmentTable& t = table(segments);
    partials_.reserve(size_t(std::max<int64_t>(t.chunks(), 1)) * sizeof(double));
    sums_.reserve(sizeof(double));
    cuda::sum_squares(g, t, partials_.as<double>(), sums_.as<double>(), stream_->get());
    double host = 0;
    cuda::copy_to_host(&host, sums_.data(), sizeof host, stream_->get());
    stream_->synchronize();
    return host;
  }

  void adamw(float* p, const float* g, float* m, float* v, std::span<const OptimSegment> segments,
             const AdamWHyper& h) override {
    cuda::adamw_update(p, g, m, v, table(segments),
                       {h.lr, h.beta1, h.beta2, h.eps, h.weight_decay, h.step, h.grad_scale}, stream_->get());
  }

  // Dense bf16 tensor-core peaks (SXM parts); LT_PEAK_TFLOPS sets another card's.
  double peak_flops(Precision precision) const override {
    if (double t = env_number("LT_PEAK_TFLOPS", 0); t > 0) return t * 1e12;
    const std::string name = info_.name;
    const bool hopper = name.find("H100") != std::string::npos || name.find("H200") != std::string::npos;
    const bool ampere = name.find("A100") != std::string::npos;
    if (precision == Precision::bf16) return hopper ? 989e12 : ampere ? 312e12 : 100e12;
    return hopper ? 67e12 : ampere ? 19.5e12 : 10e12;
  }

  ComputeCheck check_compute(int gemm_size, bool inject_fault) override {
    GpuHealthOptions o;
    o.gemm_size = gemm_size;
    const GpuHealth h = check_gpu(device_, o);
    ComputeCheck r;
    r.device = describe();
    r.max_rel_err = h.gemm_max_rel_err + (inject_fault ? 1.0 : 0.0);
    r.gflops = h.gemm_tflops * 1e3;
    r.memory_free = h.free_mb * 1024.0 * 1024.0;
    r.memory_total = h.total_mb * 1024.0 * 1024.0;
    return r;
  }

 private:
  // The device table of a segment list, rebuilt only when the list changes (an optimizer's
  // segments are fixed for a run).
  const cuda::SegmentTable& table(std::span<const OptimSegment> segments) {
    if (!table_ || !same_segments(segments_, segments)) {
      segments_.assign(segments.begin(), segments.end());
      std::vector<cuda::AdamWSegment> s;
      for (const OptimSegment& x : segments)
        s.push_back({int64_t(x.begin), int64_t(x.end), x.decay, x.count_in_norm});
      table_ = std::make_unique<cuda::SegmentTable>(s, stream_->get());
    }
    return *table_;
  }

  int device_ = 0;
  cuda::DeviceInfo info_;
  std::unique_ptr<cuda::Stream> stream_;
  std::vector<OptimSegment> segments_;
  std::unique_ptr<cuda::SegmentTable> table_;
  cuda::DeviceBuffer partials_, sums_;
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(const BackendOptions& o) { return std::make_unique<CudaBackend>(o); }

}  // namespace lt
