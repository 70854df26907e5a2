// parallel.stage_starts: the cost-balanced cut against an exhaustive search over every cut,
// the stories15M numbers worked out by hand, and the parser's errors.
#include "parallel/stage_balance.h"

#include <gtest/gtest.h>

#include <functional>

#include "core/error.h"
#include "model/config.h"
#include "model/layout.h"

namespace lt {
namespace {

// Every composition of `layers` into `stages` positive parts: the smallest largest cost, and the
// smallest sum of squares among the cuts that reach it.
std::pair<double, double> exhaustive_best(const StageCostModel& m, int layers, int stages) {
  std::pair<double, double> best{1e300, 1e300};
  std::vector<int> n;
  std::function<void(int)> rec = [&](int left) {
    const int s = int(n.size());
    if (s == stages - 1) {
      n.push_back(left);
      double mx = 0, sq = 0;
      for (int i = 0; i < stages; ++i) {
        double c = stage_cost(m, n[size_t(i)], i, stages);
        mx = std::max(mx, c);
        sq += c * c;
      }
      best = std::min(best, {mx, sq});
      n.pop_back();
      return;
    }
    for (int k = 1; k <= left - (stages - s - 1); ++k) {
      n.push_back(k);
      rec(left - k);
      n.pop_back();
    }
  };
  rec(layers);
  return best;
}

TEST(StageBalance, MatchesAnExhaustiveSearch) {
  for (double head : {0.0, 0.5, 3.0, 8.6, 40.0})
    for (double emb : {0.0, 2.5})
      for (int layers : {1, 2, 5, 8, 12})
        for (int stages = 1; stages <= std::min(layers, 6); ++stages) {
          StageCostModel m{1.0, emb, head};
          std::vector<int> starts = balanced_stage_starts(m, layers, stages);
          ASSERT_EQ(int(starts.size()), stages);
          std::vector<int> n = stage_layer_counts(starts, layers, stages);
          double mx = 0, sq = 0;
          for (int s = 0; s < stages; ++s) {
            EXPECT_GE(n[size_t(s)], 1);
            double c = stage_cost(m, n[size_t(s)], s, stages);
            mx = std::max(mx, c);
            sq += c * c;
          }
          auto [bmx, bsq] = exhaustive_best(m, layers, stages);
          EXPECT_DOUBLE_EQ(mx, bmx) << "head " << head << " layers " << layers << " stages " << stages;
          EXPECT_DOUBLE_EQ(sq, bsq) << "head " << head << " layers " << layers << " stages " << stages;
        }
}

// stories15M (D 288, 6 layers, 6 heads, F 768, V 32000), seq 256. By hand: a layer costs
// 6·(2·288² + 2·288·288 + 3·288·768) + 6·256·288 = 6,414,336 FLOPs per token, the head
// 6·32000·288 + 5·32000 = 55,456,000 (8.6 layers). pp2: 5 layers | 1 layer + head
// (32.1M | 61.9M: the last stage holds 66% instead of 3 | 3's 80%); pp3: 2 | 3 | 1 + head (the
// same largest cost as 3 | 2 | 1 + head, and a smaller sum of squares: the embedding is on stage 0).
TEST(StageBalance, Stories15m) {
  LlamaConfig c = preset_config("stories15m");
  StageCostModel m = stage_cost_model(c, 256, false);
  EXPECT_DOUBLE_EQ(m.layer, 6414336.0);
  EXPECT_DOUBLE_EQ(m.head, 55456000.0);
  EXPECT_EQ(resolve_stage_starts({}, c, 2, 1, 256, false), (std::vector<int>{0, 5}));
  EXPECT_EQ(resolve_stage_starts({}, c, 3, 1, 256, false), (std::vector<int>{0, 2, 5}));
  EXPECT_EQ(resolve_stage_starts({StageCutMode::even, {}}, c, 2, 1, 256, false), std::vector<int>{});
  EXPECT_EQ(resolve_stage_starts({StageCutMode::list, {0, 2}}, c, 2, 1, 256, false), (std::vector<int>{0, 2}));
  // Full recomputation makes layers 4/3 dearer; the head is not recomputed.
  EXPECT_DOUBLE_EQ(stage_cost_model(c, 256, true).layer, 6414336.0 * 4 / 3);
  // llama2-7b at seq 4096: the head costs 0.6 of a layer, so the last stage never takes more
  // layers than the first.
  LlamaConfig big = preset_config("llama2-7b");
  std::vector<int> s = resolve_stage_starts({}, big, 4, 1, 4096, false);
  std::vector<int> n = stage_layer_counts(s, big.n_layers, 4);
  EXPECT_EQ(n[0] + n[1] + n[2] + n[3], 32);
  EXPECT_LE(n[3], n[0]);
  // The cut is a valid layout.
  for (int r = 0; r < 4; ++r) EXPECT_NO_THROW(ParamLayout(big, ShardSpec{1, 0, 4, r, s}));
}

// Interleaved: the ranks are balanced (a rank's cost is the sum of its chunks'), against an
// exhaustive search over every cut into ranks·v chunks; each chunk keeps at least one layer.
TEST(StageBalance, InterleavedBalancesRanks) {
  for (double head : {0.0, 2.5, 8.6})
    for (int ranks : {2, 3})
      for (int v : {2, 3})
        for (int layers = ranks * v; layers <= ranks * v + 5; ++layers) {
          const StageCostModel m{1.0, 0.1, head};
          std::vector<int> starts = balanced_stage_starts(m, layers, ranks, v);
          std::vector<int> n = stage_layer_counts(starts, layers, ranks * v);
          auto rank_costs = [&](const std::vector<int>& chunk_layers) {
            std::vector<double> cost(size_t(ranks), 0.0);
            for (int k = 0; k < ranks * v; ++k) cost[size_t(k % ranks)] += chunk_layers[size_t(k)];
            for (int r = 0; r < ranks; ++r) cost[size_t(r)] = stage_cost(m, int(cost[size_t(r)]), r, ranks);
            return cost;
          };
          for (int x : n) EXPECT_GE(x, 1);
          double mx = 0;
          for (double c : rank_costs(n)) mx = std::max(mx, c);
          // Every composition of the layers into ranks·v positive chunk sizes.
          double best = 1e300;
          std::vector<int> cur;
          std::function<void(int)> rec = [&](int left) {
            if (int(cur.size()) == ranks * v - 1) {
              cur.push_back(left);
              double worst = 0;
              for (double c : rank_costs(cur)) worst = std::max(worst, c);
              best = std::min(best, worst);
              cur.pop_back();
              return;
            }
            for (int k = 1; k <= left - (ranks * v - int(cur.size()) - 1); ++k) {
              cur.push_back(k);
              rec(left - k);
              cur.pop_back();
            }
          };
          rec(layers);
          EXPECT_DOUBLE_EQ(mx, best) << "head " << head << " ranks " << ranks << " v " << v << " layers " << layers;
        }
  // stories15M, pp 2, v 2: ranks 4 | 2 + head; the head's chunk keeps 1 layer.
  EXPECT_EQ(resolve_stage_starts({}, preset_config("stories15m"), 2, 2, 256, false), (std::vector<int>{0, 2, 3, 5}));
}

TEST(StageBalance, ParsesAndNamesTheKeyOnBadInput) {
  EXPECT_EQ(parse_stage_cut("auto", "k").mode, StageCutMode::cost);
  EXPECT_EQ(parse_stage_cut("", "k").mode, StageCutMode::cost);
  EXPECT_EQ(parse_stage_cut("even", "k").mode, StageCutMode::even);
  StageCut l = parse_stage_cut("[0, 2,4]", "k");
  EXPECT_EQ(l.mode, StageCutMode::list);
  EXPECT_EQ(l.starts, (std::vector<int>{0, 2, 4}));
  EXPECT_EQ(stage_cut_text(l), "[0,2,4]");
  for (const char* bad : {"0,-2", "0,x", "fast", "0,,2"}) {
    try {
      parse_stage_cut(bad, "config key 'parallel.stage_starts'");
      ADD_FAILURE() << bad << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("config key 'parallel.stage_starts': expected auto, even or a list"),
                std::string::npos)
          << e.what();
    }
  }
  EXPECT_THROW(balanced_stage_starts(StageCostModel{1, 0, 1}, 3, 4), Error);
}

}  // namespace
}  // namespace lt
