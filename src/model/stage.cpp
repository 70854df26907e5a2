#include "model/stage.h"

#include <cstring>

#include "core/error.h"

namespace lt {

void TensorParallelOps::all_gather_rows(const float* local, float* full, int64_t n_local) {
  if (full != local) std::memcpy(full, local, sizeof(float) * size_t(n_local));
}
void TensorParallelOps::reduce_scatter_rows(const float* full, float* local, int64_t n_local) {
  if (full != local) std::memcpy(local, full, sizeof(float) * size_t(n_local));
}

void Stage::set_inputs(int, const MicroBatchInputs& in) {
  LT_CHECK(in.doc_start == nullptr && !in.restart_positions,
           "train.document_mask: this backend's stage does not support document masking");
}

}  // namespace lt
