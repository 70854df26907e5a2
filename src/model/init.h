// Deterministic random initialisation of a shard's weights, independent of the layout: element
// (i, j) of a global tensor gets the same value whatever tp/pp cut it. Matrices ~ N(0, 0.02²),
// o_proj/down_proj scaled by 1/√(2·layers) (GPT-2/Megatron), norms 1.
#pragma once
#include <cstdint>

#include "core/flat_access.h"
#include "model/layout.h"

namespace lt {

// `weights` covers the shard's flat buffer (layout.total() elements at least).
void init_weights(const ParamLayout& layout, FlatAccess& weights, uint64_t seed);
// Host memory convenience.
void init_weights(const ParamLayout& layout, float* weights, uint64_t seed);

}  // namespace lt
