#include "train/validator.h"

#include <cmath>
#include <vector>

#include "data/batch.h"

namespace lt {

Validator::Validator(const TokenDataset& data, ProcessGroups& groups, PipelineSchedule& pipe, int micro_batch,
                     int seq_len, int batches)
    : data_(data), groups_(groups), pipe_(pipe), micro_batch_(micro_batch), seq_len_(seq_len), batches_(batches) {}

double Validator::evaluate() {
  const int dp = groups_.dims().dp, mbs = micro_batch_, T = seq_len_, L = data_.sample_tokens();
  const int64_t n = std::min<int64_t>(data_.num_samples(), int64_t(batches_) * mbs * dp);
  const int per_rank = int(n / dp) / mbs * mbs;
  if (per_rank == 0) return std::nan("");
  std::vector<int32_t> samples(size_t(per_rank) * size_t(L)), in(size_t(per_rank) * T), tg(size_t(per_rank) * T);
  const int rank = groups_.coords().dp_rank;
  for (int i = 0; i < per_rank; ++i) data_.read(int64_t(rank) * per_rank + i, samples.data() + int64_t(i) * L);
  const int64_t counted = samples_to_inputs_targets(samples.data(), per_rank, L, T, in.data(), tg.data());
  const double sum = pipe_.evaluate(in.data(), tg.data(), per_rank / mbs);
  // The loss is summed on the last stage's tp rank 0 of every replica; so are the tokens.
  const bool owner = groups_.last_stage() && groups_.coords().tp_rank == 0;
  double vals[2] = {owner ? sum : 0.0, owner ? double(counted) : 0.0};
  groups_.world().all_reduce_sum(vals, 2);
  return vals[0] / vals[1];
}

}  // namespace lt
