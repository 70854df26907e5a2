// Topology: where a rank sits in the tp x dp x pp grid, and the communicators of its groups.
//
// Rank order (Megatron's default): tensor-parallel rank varies fastest, then data-parallel,
// then pipeline stage:
//     world_rank = pp_rank * (dp * tp) + dp_rank * tp + tp_rank
// With mpirun's default by-slot placement, consecutive ranks share a node, so a TP group (the
// chattiest: two all-reduces per layer) stays inside one node whenever tp <= procs per node,
// and a whole pipeline stage's DP replicas sit next to each other.
#pragma once
#include <memory>

#include "parallel/comm.h"

namespace lt {

struct ParallelDims {
  int tp = 1, pp = 1, dp = 1;
  int world() const { return tp * pp * dp; }
};

struct RankCoords {
  int tp_rank = 0, pp_rank = 0, dp_rank = 0;
};

// dp = world / (tp * pp); throws naming the numbers (and tp/pp values that divide) if it
// does not divide.
ParallelDims dims_for_world(int world, int tp, int pp);
RankCoords coords_of(const ParallelDims& d, int world_rank);
int rank_of(const ParallelDims& d, const RankCoords& c);

// The groups of one rank, carved from `world` (collective over world: every rank constructs
// its ProcessGroups at the same time). Within each group, the group rank equals the
// coordinate: tp().rank() == tp_rank, pp().rank() == pp_rank, dp().rank() == dp_rank.
class ProcessGroups {
 public:
  ProcessGroups(Comm& world, int tp, int pp);

  Comm& world() { return world_; }
  Comm& tp() { return *tp_; }        // same pp, dp: tensor-parallel all-reduces / gathers
  Comm& pp() { return *pp_; }        // same tp, dp: pipeline send/recv between stages
  Comm& dp() { return *dp_; }        // same tp, pp: gradient all-reduce, ZeRO-1 shards
  Comm& stage() { return *stage_; }  // same pp (tp x dp, rank = dp_rank*tp + tp_rank)
  // First and last stage of one (tp, dp) pipeline: the tied embedding / LM head gradient
  // all-reduce when they live on different stages. nullptr on middle stages and when pp == 1.
  Comm* embedding() { return embedding_.get(); }

  const ParallelDims& dims() const { return dims_; }
  const RankCoords& coords() const { return coords_; }
  bool first_stage() const { return coords_.pp_rank == 0; }
  bool last_stage() const { return coords_.pp_rank == dims_.pp - 1; }

 private:
  Comm& world_;
  ParallelDims dims_;
  RankCoords coords_;
  std::unique_ptr<Comm> tp_, pp_, dp_, stage_, embedding_;
};

}  // namespace lt
