// Token embedding over a vocabulary range [vocab_begin, vocab_begin + V) on the GPU, as
// kernels/cpu/embedding.h: rows of other tensor-parallel ranks give zeros here.
//
// The backward is deterministic without atomics: a host-side plan groups the token positions
// by local vocabulary row (rows ascending, each row's positions in token order), and one block
// per (row, column slice) adds that row's gradients in token order onto dtable's current value
// — the CPU kernel's order exactly, so the result is bitwise equal to it. The tokens are on the
// host before every step anyway (the loader makes them); the plan is built there and uploaded.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

namespace lt::cuda {

// tokens: device [N]; table: device [V, D]; out: device [N, D].
void embedding_forward(const int32_t* tokens, const float* table, float* out, int64_t N, int D, int vocab_begin,
                       int V, cudaStream_t stream);

// Token positions grouped by local vocabulary row (CSR): row rows[i] (0-based within the range)
// receives the positions positions[offsets[i] .. offsets[i+1]), in ascending order. Tokens
// outside the range appear nowhere.
struct EmbeddingGradPlan {
  std::vector<int32_t> rows;       // distinct local rows, ascending
  std::vector<int32_t> offsets;    // rows.size() + 1
  std::vector<int32_t> positions;  // token indices, grouped by row
  // The same three arrays packed back to back (rows | offsets | positions), as uploaded.
  std::vector<int32_t> packed() const;
};
EmbeddingGradPlan plan_embedding_backward(const int32_t* tokens_host, int64_t N, int vocab_begin, int V);

// dtable[row] += dout[position] for every position of the plan, in position order.
// `plan_device` holds plan.packed() on the device.
void embedding_backward(const int32_t* plan_device, int num_rows, int64_t num_positions, const float* dout,
                        float* dtable, int D, cudaStream_t stream);

}  // namespace lt::cuda
