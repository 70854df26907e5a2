// GradientReducer: turns each rank's accumulated gradients into the global batch's, in the
// order the layout needs — norm weights summed over tp with sequence parallelism (each tp rank
// saw only its rows), replicated KV heads summed over the tp ranks that share them, the tied
// embedding's two copies summed between first and last stage, then the data-parallel sum:
// a reduce-scatter into this rank's ZeRO-1 range or an all-reduce of everything.
// The communicators must reach the stage's memory (MpiComm for host, NcclComm for device).
//
// Overlap (parallel.overlap_grad_reduce, data-parallel runs whose dp communicator has a
// non-blocking reduction): the flat gradient buffer is cut into buckets of at most
// parallel.grad_bucket_mb, never across two ranks' ZeRO-1 ranges. The pipeline hands the stage
// this reducer as its GradReadyHook for a step's last micro-batch; as the stage reports
// parameters complete (the head after the last forward, then layer by layer backwards, the
// embedding last), their tp / KV sums run at once and every bucket whose parameters are all
// complete starts its sum towards the range's owner (Comm::ireduce_sum); each report also
// lets the pending ones progress. reduce() then sums the tied embedding, starts what is left,
// and waits. Without ZeRO-1 the owners all-gather their summed ranges at the end. Every
// element is folded over dp in rank order exactly as the blocking reduce-scatter / all-reduce
// fold it, so the results are bit-identical with or without overlap.
//
// At most kMaxInFlight buckets are pending at once: a range owner holds a receive buffer of
// (dp − 2) x bucket floats ((dp − 1) without ZeRO-1) per pending bucket it owns; plan counts it.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "model/backend.h"
#include "parallel/plan.h"
#include "parallel/topology.h"
#include "train/optimizer.h"

namespace lt {

struct GradReduceOptions {
  bool overlap = true;
  size_t bucket_bytes = size_t(8) << 20;
};

class GradientReducer final : public GradReadyHook {
 public:
  GradientReducer(ProcessGroups& groups, Stage& stage, const ShardedAdamW& opt, Backend& backend,
                  GradReduceOptions o = {});
  ~GradientReducer() override;
  // Reduces the stage's gradients (what the hook has not started yet, then waits for all);
  // returns the summed gradients of the optimizer's range [begin, end) (backend memory).
  float* reduce();
  // The summed range of the last reduce().
  float* range() const;
  // The hook the pipeline arms for a step's last micro-batch (nullptr: no overlap).
  GradReadyHook* hook() { return overlap_ ? this : nullptr; }
  void grads_ready(size_t begin, size_t end) override;
  // Per step over `steps` steps since reset_stats(), for <run.dir>/ranks/rank_<r>.json:
  // wait_s_per_step (blocked on the reductions: inside reduce(), plus any wait for a full set
  // of pending buckets during the backward), buckets, started_in_backward_per_step, overlap.
  nlohmann::json stats(int64_t steps) const;
  void reset_stats() { wait_s_ = 0, early_ = 0; }

  static constexpr int kMaxInFlight = kMaxGradBucketsInFlight;

 private:
  struct Bucket {
    size_t begin = 0, end = 0;
    int owner = 0;
    size_t waiting = 0;  // parameter elements not yet complete
    bool tied = false;   // holds a tied parameter: starts in reduce(), after the sum with its copy
    bool started = false;
  };
  struct Param {
    std::vector<std::pair<int, size_t>> parts;  // (bucket, elements of this parameter in it)
    bool tied = false;                          // summed with its copy in reduce()
    bool done = false;
  };
  void plan_buckets(size_t bucket_elems);
  void sum_over_tp(const ParamInfo& p);  // sequence-parallel norms, shared KV heads
  void complete(size_t i);               // param i is final: its sums, its buckets
  void start(int b);
  void progress();
  void finish_pending();

  ProcessGroups& groups_;
  Stage& stage_;
  const ShardedAdamW& opt_;
  std::unique_ptr<Comm> kv_group_;  // tp ranks sharing one KV head (tp > KV heads)
  BackendArray shard_;              // ZeRO-1: the reduce-scattered range
  bool overlap_ = false;
  std::vector<Bucket> buckets_;
  std::vector<Param> params_;
  std::vector<std::pair<int, Request>> in_flight_;  // (bucket, request), oldest first
  double wait_s_ = 0;
  int64_t early_ = 0;  // buckets started from the hook, during the backward
  bool in_hook_ = false;
};

}  // namespace lt
