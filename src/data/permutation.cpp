#include "data/permutation.h"

#include "core/error.h"

namespace lt::data {

namespace {
uint64_t splitmix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
}  // namespace

uint64_t mix_key(uint64_t a, uint64_t b) { return splitmix(splitmix(a) ^ (b * 0xd6e8feb86659fd93ull)); }

IndexPermutation::IndexPermutation(uint64_t n, uint64_t key) : n_(n), key_(key) {
  LT_CHECK(n > 0, "cannot permute an empty range");
  int bits = 2;
  while (bits < 64 && (uint64_t(1) << bits) < n) ++bits;
  if (bits & 1) ++bits;
  half_bits_ = bits / 2;
  mask_ = half_bits_ == 32 ? 0xffffffffull : ((uint64_t(1) << half_bits_) - 1);
}

uint64_t IndexPermutation::round(uint64_t half, int r) const {
  return splitmix(key_ ^ (uint64_t(r + 1) * 0x632be59bd9b4e019ull) ^ (half << 7) ^ half) & mask_;
}

uint64_t IndexPermutation::operator()(uint64_t i) const {
  LT_CHECK(i < n_, "permutation index {} out of range [0, {})", i, n_);
  uint64_t x = i;
  do {
    uint64_t left = x >> half_bits_, right = x & mask_;
    for (int r = 0; r < 4; ++r) {
      uint64_t next = left ^ round(right, r);
      left = right;
      right = next;
    }
    x = (left << half_bits_) | right;
  } while (x >= n_);
  return x;
}

}  // namespace lt::data
