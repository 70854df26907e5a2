// GradientReducer: turns each rank's accumulated gradients into the global batch's, in the
// order the layout needs — norm weights summed over tp with sequence parallelism (each tp rank
// saw only its rows), replicated KV heads summed over the tp ranks that share them, the tied
// embedding's two copies summed between first and last stage, then the data-parallel sum:
// a reduce-scatter into this rank's ZeRO-1 range or an all-reduce of everything.
// The communicators must reach the stage's memory (MpiComm for host, NcclComm for device).
#pragma once
#include <memory>

#include "model/backend.h"
#include "parallel/topology.h"
#include "train/optimizer.h"

namespace lt {

class GradientReducer {
 public:
  GradientReducer(ProcessGroups& groups, Stage& stage, const ShardedAdamW& opt, Backend& backend);
  // Reduces the stage's gradients; returns the summed gradients of the optimizer's range
  // [begin, end) (backend memory).
  float* reduce();
  // The summed range of the last reduce().
  float* range() const;

 private:
  ProcessGroups& groups_;
  Stage& stage_;
  const ShardedAdamW& opt_;
  std::unique_ptr<Comm> kv_group_;  // tp ranks sharing one KV head (tp > KV heads)
  BackendArray shard_;              // ZeRO-1: the reduce-scattered range
};

}  // namespace lt
