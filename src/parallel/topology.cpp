#include "parallel/topology.h"

#include <string>

#include "core/error.h"

namespace lt {

namespace {
std::string divisors(int n) {
  std::string s;
  for (int d = 1; d <= n; ++d)
    if (n % d == 0) s += (s.empty() ? "" : ", ") + std::to_string(d);
  return s;
}
}  // namespace

ParallelDims dims_for_world(int world, int tp, int pp) {
  LT_CHECK(world >= 1, "parallel: world size must be >= 1 (got {})", world);
  LT_CHECK(tp >= 1 && pp >= 1, "parallel: tp and pp must be >= 1 (got tp={}, pp={})", tp, pp);
  LT_CHECK(world % (tp * pp) == 0,
           "parallel: {} ranks cannot be split into tp={} x pp={} = {} model-parallel ranks times a whole "
           "number of data-parallel replicas; tp*pp must divide the world size (divisors of {}: {})",
           world, tp, pp, tp * pp, world, divisors(world));
  return {tp, pp, world / (tp * pp)};
}

RankCoords coords_of(const ParallelDims& d, int r) {
  LT_CHECK(r >= 0 && r < d.world(), "parallel: rank {} outside world of {}", r, d.world());
  return {r % d.tp, r / (d.tp * d.dp), (r / d.tp) % d.dp};
}

int rank_of(const ParallelDims& d, const RankCoords& c) { return c.pp_rank * (d.dp * d.tp) + c.dp_rank * d.tp + c.tp_rank; }

ProcessGroups::ProcessGroups(Comm& world, int tp, int pp) : world_(world) {
  dims_ = dims_for_world(world.size(), tp, pp);
  coords_ = coords_of(dims_, world.rank());
  const auto& c = coords_;
  const ParallelDims& d = dims_;
  // Colours number the groups; keys make the group rank equal the coordinate.
  tp_ = world.split(c.pp_rank * d.dp + c.dp_rank, c.tp_rank);
  pp_ = world.split(c.dp_rank * d.tp + c.tp_rank, c.pp_rank);
  dp_ = world.split(c.pp_rank * d.tp + c.tp_rank, c.dp_rank);
  stage_ = world.split(c.pp_rank, c.dp_rank * d.tp + c.tp_rank);
  bool ends = d.pp > 1 && (first_stage() || last_stage());
  embedding_ = world.split(ends ? c.dp_rank * d.tp + c.tp_rank : -1, c.pp_rank);
  if (d.pp == 1) embedding_.reset();
}

}  // namespace lt
