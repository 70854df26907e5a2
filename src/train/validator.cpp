#include "train/validator.h"

#include <cmath>
#include <vector>

#include "data/batch.h"

namespace lt {

Validator::Validator(std::vector<ValidSet> sets, ProcessGroups& groups, PipelineSchedule& pipe, int micro_batch,
                     int seq_len, int batches, bool document_mask, bool restart_positions)
    : sets_(std::move(sets)),
      groups_(groups),
      pipe_(pipe),
      micro_batch_(micro_batch),
      seq_len_(seq_len),
      batches_(batches),
      document_mask_(document_mask),
      restart_positions_(restart_positions) {}

std::vector<ValidLoss> Validator::evaluate() {
  std::vector<ValidLoss> out;
  for (const ValidSet& s : sets_) out.push_back(evaluate(s));
  return out;
}

ValidLoss Validator::evaluate(const ValidSet& set) {
  const TokenDataset& data = *set.data;
  const int dp = groups_.dims().dp, mbs = micro_batch_, T = seq_len_, L = data.sample_tokens();
  const int64_t n = std::min<int64_t>(data.num_samples(), int64_t(batches_) * mbs * dp);
  const int per_rank = int(n / dp) / mbs * mbs;
  if (per_rank == 0) return {set.name, std::nan(""), 0};
  std::vector<int32_t> samples(size_t(per_rank) * size_t(L)), in(size_t(per_rank) * T), tg(size_t(per_rank) * T);
  std::vector<int32_t> doc, doc_in;
  if (document_mask_) doc.resize(samples.size()), doc_in.resize(in.size());
  const int rank = groups_.coords().dp_rank;
  std::vector<int32_t> starts;
  for (int i = 0; i < per_rank; ++i) {
    const int64_t index = int64_t(rank) * per_rank + i;
    data.read(index, samples.data() + int64_t(i) * L);
    if (document_mask_) {
      data.document_starts(index, starts);
      document_start_of_tokens(starts, L, doc.data() + int64_t(i) * L);
    }
  }
  const int64_t counted =
      document_mask_ ? samples_to_inputs_targets(samples.data(), doc.data(), per_rank, L, T, in.data(), tg.data(),
                                                 doc_in.data())
                     : samples_to_inputs_targets(samples.data(), per_rank, L, T, in.data(), tg.data());
  if (document_mask_) pipe_.set_documents(doc_in.data(), restart_positions_);
  const double sum = pipe_.evaluate(in.data(), tg.data(), per_rank / mbs);
  if (document_mask_) pipe_.set_documents(nullptr, false);
  // The loss is summed on the last stage's tp rank 0 of every replica; so are the tokens.
  const bool owner = groups_.last_stage() && groups_.coords().tp_rank == 0;
  double vals[2] = {owner ? sum : 0.0, owner ? double(counted) : 0.0};
  groups_.world().all_reduce_sum(vals, 2);
  return {set.name, vals[0] / vals[1], int64_t(vals[1])};
}

}  // namespace lt
