#include "parallel/topology.h"

#include <gtest/gtest.h>

#include <set>

#include "core/error.h"
#include "parallel/self_comm.h"

namespace lt {

TEST(Topology, MegatronOrderTpFastestThenDpThenPp) {
  ParallelDims d = dims_for_world(16, 2, 2);
  EXPECT_EQ(d.dp, 4);
  // Written out by hand from rank = pp*(dp*tp) + dp*tp + tp.
  RankCoords c = coords_of(d, 0);
  EXPECT_EQ(c.tp_rank + c.pp_rank + c.dp_rank, 0);
  c = coords_of(d, 1);
  EXPECT_EQ(c.tp_rank, 1);
  EXPECT_EQ(c.dp_rank, 0);
  c = coords_of(d, 2);
  EXPECT_EQ(c.tp_rank, 0);
  EXPECT_EQ(c.dp_rank, 1);
  c = coords_of(d, 7);
  EXPECT_EQ(c.tp_rank, 1);
  EXPECT_EQ(c.dp_rank, 3);
  EXPECT_EQ(c.pp_rank, 0);
  c = coords_of(d, 9);
  EXPECT_EQ(c.tp_rank, 1);
  EXPECT_EQ(c.dp_rank, 0);
  EXPECT_EQ(c.pp_rank, 1);
  std::set<int> seen;
  for (int r = 0; r < 16; ++r) {
    EXPECT_EQ(rank_of(d, coords_of(d, r)), r);
    seen.insert(rank_of(d, coords_of(d, r)));
  }
  EXPECT_EQ(seen.size(), 16u);
}

TEST(Topology, SeedLayoutKeepsTpInsideANode) {
  // 32 processes per node x 32 nodes, tp 8, pp 8 -> dp 16; a TP group is 8 consecutive ranks.
  ParallelDims d = dims_for_world(1024, 8, 8);
  EXPECT_EQ(d.dp, 16);
  for (int r = 0; r < 1024; r += 8) {
    int node = r / 32;
    for (int t = 0; t < 8; ++t) {
      RankCoords c = coords_of(d, r);
      c.tp_rank = t;
      EXPECT_EQ(rank_of(d, c) / 32, node);
    }
  }
}

TEST(Topology, IndivisibleWorldNamesTheNumbers) {
  try {
    dims_for_world(12, 8, 1);
    FAIL();
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("12 ranks"), std::string::npos) << m;
    EXPECT_NE(m.find("tp=8"), std::string::npos) << m;
    EXPECT_NE(m.find("1, 2, 3, 4, 6, 12"), std::string::npos) << m;
  }
  EXPECT_THROW(dims_for_world(4, 0, 1), Error);
}

TEST(SelfComm, SingleProcessGroupsAndCollectives) {
  SelfComm w;
  ProcessGroups g(w, 1, 1);
  EXPECT_EQ(g.tp().size(), 1);
  EXPECT_EQ(g.dp().rank(), 0);
  EXPECT_EQ(g.embedding(), nullptr);
  float x[3] = {1, 2, 3}, y[3] = {0, 0, 0};
  g.dp().all_reduce_sum(x, 3);
  EXPECT_EQ(x[2], 3.f);
  g.dp().reduce_scatter_sum(x, y, 3);
  EXPECT_EQ(y[1], 2.f);
  g.tp().all_gather(x, y, 3);
  EXPECT_EQ(y[0], 1.f);
  // Sends to itself are queued by tag and received in order, also through irecv.
  int a = 5, b = 6, c = 0;
  w.send(&a, sizeof(a), 0, 1);
  auto r = w.irecv(&c, sizeof(c), 0, 2);
  w.isend(&b, sizeof(b), 0, 2)->wait();
  r->wait();
  EXPECT_EQ(c, 6);
  w.recv(&c, sizeof(c), 0, 1);
  EXPECT_EQ(c, 5);
  EXPECT_THROW(w.recv(&c, sizeof(c), 0, 1), Error);  // would hang forever: nothing queued
  EXPECT_THROW(w.send(&a, sizeof(a), 1, 1), Error);
  EXPECT_EQ(w.split(-1, 0), nullptr);
}

}  // namespace lt
