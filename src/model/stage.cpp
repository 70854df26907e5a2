#include "model/stage.h"

#include <cstring>

namespace lt {

void TensorParallelOps::all_gather_rows(const float* local, float* full, int64_t n_local) {
  if (full != local) std::memcpy(full, local, sizeof(float) * size_t(n_local));
}
void TensorParallelOps::reduce_scatter_rows(const float* full, float* local, int64_t n_local) {
  if (full != local) std::memcpy(local, full, sizeof(float) * size_t(n_local));
}

}  // namespace lt
