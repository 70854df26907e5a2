#include "core/error.h"
#include "kernels/cuda/adamw.h"
#include "kernels/cuda/check.h"

namespace lt::cuda {

std::vector<SegmentTable::Entry> SegmentTable::build(const std::vector<AdamWSegment>& segments,
                                                     int64_t* total_chunks) {
  std::vector<Entry> e;
  int64_t chunk = 0, prev_end = 0;
  for (const AdamWSegment& s : segments) {
    LT_CHECK(s.begin >= prev_end && s.end >= s.begin, "optimizer segments must be ordered and disjoint ([{}, {}))",
             s.begin, s.end);
    prev_end = s.end;
    if (s.end == s.begin) continue;
    e.push_back({s.begin, s.end, chunk, s.decay ? 1 : 0, s.count_in_norm ? 1 : 0});
    chunk += (s.end - s.begin + kChunk - 1) / kChunk;
  }
  *total_chunks = chunk;
  return e;
}

SegmentTable::SegmentTable(const std::vector<AdamWSegment>& segments, cudaStream_t stream) {
  const std::vector<Entry> e = build(segments, &chunks_);
  n_ = int(e.size());
  if (e.empty()) return;
  LT_CUDA(cudaMalloc(&table_, e.size() * sizeof(Entry)));
  LT_CUDA(cudaMemcpyAsync(table_, e.data(), e.size() * sizeof(Entry), cudaMemcpyHostToDevice, stream));
  LT_CUDA(cudaStreamSynchronize(stream));  // `e` goes out of scope
}

SegmentTable::~SegmentTable() {
  if (table_) cudaFree(table_);
}

}  // namespace lt::cuda
