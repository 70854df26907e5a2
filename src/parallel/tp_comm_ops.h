// The tensor-parallel hooks a stage calls (model/stage.h: Megatron's f and g, the
// vocab-parallel cross-entropy's max and sum, sequence parallelism's row gather and
// reduce-scatter), carried out over the tp communicator. The communicator must reach the
// stage's memory (MpiComm for host memory, NcclComm for device memory).
#pragma once
#include "model/stage.h"
#include "parallel/comm.h"

namespace lt {

class CommTpOps final : public TensorParallelOps {
 public:
  explicit CommTpOps(Comm& tp) : tp_(tp) {}
  void reduce_partial(float* x, int64_t n) override { tp_.all_reduce_sum(x, size_t(n)); }
  void reduce_input_grad(float* dx, int64_t n) override { tp_.all_reduce_sum(dx, size_t(n)); }
  void vocab_max(float* x, int64_t n) override { tp_.all_reduce_max(x, size_t(n)); }
  void vocab_sum(float* x, int64_t n) override { tp_.all_reduce_sum(x, size_t(n)); }
  void all_gather_rows(const float* local, float* full, int64_t n_local) override {
    tp_.all_gather(local, full, size_t(n_local));
  }
  void reduce_scatter_rows(const float* full, float* local, int64_t n_local) override {
    tp_.reduce_scatter_sum(full, local, size_t(n_local));
  }

 private:
  Comm& tp_;
};

}  // namespace lt
