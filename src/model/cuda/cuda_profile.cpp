#include "model/cuda/cuda_profile.h"

#include <cstdio>

#include "core/env.h"
#include "kernels/cuda/check.h"

namespace lt {

CudaProfile::CudaProfile(cudaStream_t stream, bool on) : stream_(stream), on_(on) {}

CudaProfile::~CudaProfile() {
  if (!on_) return;
  cudaStreamSynchronize(stream_);
  try {
    collect();
  } catch (...) {  // a destructor must not throw
  }
  double total = 0;
  for (const auto& [name, t] : totals_) total += t.first;
  std::fprintf(stderr, "CUDA stage profile (LT_CUDA_PROFILE): time per kernel category, all steps\n");
  std::fprintf(stderr, "  %-14s %12s %10s %7s\n", "category", "ms", "calls", "share");
  for (const auto& [name, t] : totals_)
    std::fprintf(stderr, "  %-14s %12.2f %10ld %6.1f%%\n", name.c_str(), t.first, t.second,
                 total > 0 ? 100.0 * t.first / total : 0.0);
  for (cudaEvent_t e : free_) cudaEventDestroy(e);
}

cudaEvent_t CudaProfile::event() {
  if (!free_.empty()) {
    cudaEvent_t e = free_.back();
    free_.pop_back();
    return e;
  }
  cudaEvent_t e = nullptr;
  LT_CUDA(cudaEventCreate(&e));
  return e;
}

void CudaProfile::collect() {
  for (const Pending& p : pending_) {
    float ms = 0;
    LT_CUDA(cudaEventElapsedTime(&ms, p.begin, p.end));
    auto& t = totals_[p.category];
    t.first += ms;
    ++t.second;
    free_.push_back(p.begin);
    free_.push_back(p.end);
  }
  pending_.clear();
}

CudaProfile::Scope::Scope(CudaProfile* p, const char* category) : p_(p), category_(category) {
  if (!p_) return;
  begin_ = p_->event();
  LT_CUDA(cudaEventRecord(begin_, p_->stream_));
}

CudaProfile::Scope::~Scope() {
  if (!p_) return;
  cudaEvent_t end = p_->event();
  cudaEventRecord(end, p_->stream_);
  p_->pending_.push_back({category_, begin_, end});
}

}  // namespace lt
