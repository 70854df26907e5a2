#include "model/init.h"

#include <cmath>
#include <string>

#include "core/rng.h"

namespace lt {

namespace {
uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : s) h = (h ^ ch) * 1099511628211ull;
  return h;
}
// The value of global element `index` of the tensor whose stream is `stream`.
float normal_at(uint64_t seed, uint64_t stream, uint64_t index) {
  Rng r(seed ^ (stream * 0x9e3779b97f4a7c15ull), 2 * index);
  return r.normal();
}
}  // namespace

void init_weights(const ParamLayout& layout, FlatAccess& weights, uint64_t seed) {
  const double std_base = 0.02;
  const double std_out = 0.02 / std::sqrt(2.0 * layout.config().n_layers);
  for (const auto& p : layout.params()) {
    float* dst = weights.write(p.offset, p.numel);
    if (p.kind == ParamKind::norm) {
      for (size_t i = 0; i < p.numel; ++i) dst[i] = 1.0f;
      weights.flush();
      continue;
    }
    const double sd = (p.kind == ParamKind::attn_o || p.kind == ParamKind::mlp_down) ? std_out : std_base;
    const uint64_t stream = fnv1a(p.tied_copy ? "model.embed_tokens.weight" : p.name);
    const int64_t rows = p.shape[0], cols = p.shape[1], gcols = p.global_shape[1];
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j) {
        int64_t gi = p.split_dim == 0 ? p.split_begin + i : i;
        int64_t gj = p.split_dim == 1 ? p.split_begin + j : j;
        dst[i * cols + j] = float(sd * normal_at(seed, stream, uint64_t(gi * gcols + gj)));
      }
    weights.flush();
  }
}


void init_weights(const ParamLayout& layout, float* weights, uint64_t seed) {
  HostFlat w(weights, layout.total());
  init_weights(layout, w, seed);
}

}  // namespace lt
