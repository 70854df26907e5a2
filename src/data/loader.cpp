#include "data/loader.h"

#include "core/error.h"
#include "core/log.h"

namespace lt {

Loader::Loader(const TokenDataset& ds, uint64_t seed, bool shuffle, int dp_rank, int dp_size)
    : ds_(ds), seed_(seed), shuffle_(shuffle), rank_(dp_rank), dp_(dp_size) {
  LT_CHECK(dp_size >= 1, "data-parallel size must be >= 1, got {}", dp_size);
  LT_CHECK(dp_rank >= 0 && dp_rank < dp_size, "data-parallel rank {} out of range [0, {})", dp_rank, dp_size);
  LT_CHECK(ds.num_samples() > 0, "{}: no samples", ds.describe());
}

void Loader::set_position(int64_t pos) {
  LT_CHECK(pos >= 0, "loader position must be >= 0, got {}", pos);
  position_ = pos;
  crossed_ = false;
}

int64_t Loader::epoch() const { return position_ / ds_.num_samples(); }

int64_t Loader::sample_at(int64_t p) const {
  LT_CHECK(p >= 0, "loader position must be >= 0, got {}", p);
  const int64_t n = ds_.num_samples();
  const int64_t e = p / n, i = p % n;
  if (!shuffle_) return i;
  if (e != perm_epoch_) {
    perm_ = data::IndexPermutation(uint64_t(n), data::mix_key(seed_, uint64_t(e)));
    perm_epoch_ = e;
  }
  return int64_t(perm_(uint64_t(i)));
}

void Loader::next_batch(int global_batch, int32_t* out) {
  LT_CHECK(global_batch > 0, "global batch must be positive, got {}", global_batch);
  LT_CHECK(global_batch % dp_ == 0, "global batch {} is not divisible by the data-parallel size {}", global_batch,
           dp_);
  const int per_rank = global_batch / dp_;
  const int64_t first = position_ + int64_t(rank_) * per_rank;
  const int64_t t = ds_.sample_tokens();
  for (int j = 0; j < per_rank; ++j) ds_.read(sample_at(first + j), out + int64_t(j) * t);
  const int64_t n = ds_.num_samples();
  const int64_t e0 = position_ / n, e1 = (position_ + global_batch) / n;
  crossed_ = e1 != e0;
  if (crossed_ && rank_ == 0)
    log::info("data: epoch {} complete at global sample {}; epoch {} begins", e1 - 1, e1 * n, e1);
  position_ += global_batch;
}

}  // namespace lt
