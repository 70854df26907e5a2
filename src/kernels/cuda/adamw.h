// The optimizer's device kernels: AdamW over a rank's ZeRO-1 range and the gradient's Σg² for
// the global norm, with the semantics of kernels/cpu/adamw.h and train/optimizer.cpp.
//
// A rank's range is cut into segments at parameter boundaries (ShardedAdamW's segments): each
// says whether weight decay applies and whether it counts toward the norm (replicated
// parameters count once). Elements in no segment (the padding at the end) are left untouched.
// The segments are described once, as a device table (SegmentTable), and every launch covers
// all of them: a block handles one fixed chunk of one segment.
//
// AdamW's update is PyTorch's torch.optim.AdamW (kernels/cpu/adamw.h): the same float constants
// (computed on the host by the same expressions), the same operation order per element; the
// GPU may fuse a multiply and an add where the CPU compiler does not, so results agree to a few
// ulps. Σg² is summed in double per fixed chunk, then the chunk sums in order: the same value
// every run, and equal to the CPU's up to double rounding.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

namespace lt::cuda {

struct AdamWSegment {
  int64_t begin, end;  // element range, relative to the start of the rank's range
  bool decay;          // apply weight decay
  bool count_in_norm;  // include in Σg²
};

// The device-side table of segments and the chunk (block) each one starts at.
class SegmentTable {
 public:
  static constexpr int64_t kChunk = 8192;  // elements per block
  SegmentTable() = default;
  SegmentTable(const std::vector<AdamWSegment>& segments, cudaStream_t stream);
  ~SegmentTable();
  SegmentTable(const SegmentTable&) = delete;
  SegmentTable& operator=(const SegmentTable&) = delete;

  int segments() const { return n_; }
  int64_t chunks() const { return chunks_; }
  const void* device() const { return table_; }

  // The table as uploaded (host logic, exposed for tests): per segment {begin, end, flags,
  // first chunk}, chunks ascending.
  struct Entry {
    int64_t begin, end;
    int64_t first_chunk;
    int32_t decay, count_in_norm;
  };
  static std::vector<Entry> build(const std::vector<AdamWSegment>& segments, int64_t* total_chunks);

 private:
  int n_ = 0;
  int64_t chunks_ = 0;
  void* table_ = nullptr;
};

struct AdamWStep {
  double lr, beta1, beta2, eps, weight_decay;
  int64_t step;      // 1-based
  float grad_scale;  // clipping coefficient applied to g first
};

// p, m, v: the rank's range (p = weights + range begin); g: the summed gradient of the range.
void adamw_update(float* p, const float* g, float* m, float* v, const SegmentTable& segs, const AdamWStep& a,
                  cudaStream_t stream);

// Device double at `out` = Σ g² over the counted segments. `partials` holds segs.chunks() doubles.
void sum_squares(const float* g, const SegmentTable& segs, double* partials, double* out, cudaStream_t stream);

}  // namespace lt::cuda
