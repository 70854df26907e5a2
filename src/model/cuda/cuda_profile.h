// Time per kernel category of the CUDA stage (LT_CUDA_PROFILE=1): each timed call is bracketed
// by two CUDA events on the stage's stream (no host synchronisation); the elapsed times are
// collected when the host waits anyway (take_loss), and a table is printed when the stage is
// destroyed. Off by default: then scope() records nothing and costs a branch.
#pragma once
#include <cuda_runtime_api.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace lt {

class CudaProfile {
 public:
  CudaProfile(cudaStream_t stream, bool on);
  ~CudaProfile();  // prints the table when on
  bool on() const { return on_; }

  class Scope {
   public:
    Scope(CudaProfile* p, const char* category);
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    CudaProfile* p_;
    const char* category_;
    cudaEvent_t begin_ = nullptr;
  };
  Scope scope(const char* category) { return Scope(on_ ? this : nullptr, category); }
  // After the stream has been synchronised: folds the finished event pairs into the totals.
  void collect();

 private:
  cudaEvent_t event();
  cudaStream_t stream_;
  bool on_;
  std::vector<cudaEvent_t> free_;
  struct Pending {
    const char* category;
    cudaEvent_t begin, end;
  };
  std::vector<Pending> pending_;
  std::map<std::string, std::pair<double, long>> totals_;  // category -> (ms, calls)
};

}  // namespace lt
