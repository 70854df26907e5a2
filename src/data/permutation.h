// IndexPermutation: a seeded bijection of [0, n) computed per index in O(1) time and memory,
// so shuffling a dataset of any size costs nothing up front and any position can be jumped to.
// It is a 4-round balanced Feistel network on the smallest even number of bits covering n,
// with "cycle walking": values that land in [n, 2^bits) are encrypted again until they fall
// inside [0, n). Since 2^bits < 4n, fewer than 4 rounds of walking are needed on average.
#pragma once
#include <cstdint>

namespace lt::data {

class IndexPermutation {
 public:
  IndexPermutation(uint64_t n, uint64_t key);
  uint64_t size() const { return n_; }
  // The image of i (0 <= i < n).
  uint64_t operator()(uint64_t i) const;

 private:
  uint64_t round(uint64_t half, int r) const;
  uint64_t n_;
  uint64_t key_;
  int half_bits_;
  uint64_t mask_;
};

// Mixes two integers into a 64-bit key (SplitMix64 finaliser), e.g. (seed, epoch).
uint64_t mix_key(uint64_t a, uint64_t b);

}  // namespace lt::data
