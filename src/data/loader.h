// Loader: the training job's deterministic, resumable, data-parallel sample order.
//
// Epoch e visits every sample once, in a permutation seeded by (seed, e) (in index order when
// shuffle=false). The position is a GLOBAL sample index: samples consumed by all DP ranks
// together, so a run resumed with a different DP size continues exactly where it stopped.
// Global position p maps to epoch p / N and to sample perm_e(p % N) (N = num_samples).
// Each global batch of B consecutive positions is split across DP ranks in contiguous slices:
// rank d gets positions [d*B/dp, (d+1)*B/dp) of the batch (B % dp == 0 required).
// A batch may straddle an epoch boundary: the next epoch's permutation continues it; the crossing
// is logged (rank 0) and reported by last_batch_crossed_epoch().
#pragma once
#include <cstdint>

#include "data/dataset.h"
#include "data/permutation.h"

namespace lt {

class Loader {
 public:
  Loader(const TokenDataset& ds, uint64_t seed, bool shuffle, int dp_rank, int dp_size);
  // Writes this rank's global_batch/dp_size samples, each sample_tokens() ids, to out; advances
  // the position by global_batch.
  void next_batch(int global_batch, int32_t* out);
  int64_t position() const { return position_; }  // global samples consumed
  void set_position(int64_t pos);                  // restore
  int64_t epoch() const;                           // epoch of the next sample
  bool last_batch_crossed_epoch() const { return crossed_; }
  // The dataset sample index at a global position (no state change).
  int64_t sample_at(int64_t global_position) const;

 private:
  const TokenDataset& ds_;
  uint64_t seed_;
  bool shuffle_;
  int rank_, dp_;
  int64_t position_ = 0;
  bool crossed_ = false;
  // The permutation of the most recently used epoch (rebuilding it is O(1), this just avoids rehashing).
  mutable int64_t perm_epoch_ = -1;
  mutable data::IndexPermutation perm_{1, 0};
};

}  // namespace lt
