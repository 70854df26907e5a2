// The interleaved 1F1B programs (parallel/pipeline_program.h): every rank's program runs to the end
// under rendezvous messaging (no deadlock, every input there before its use, senders and
// receivers agree) for many shapes; an event-driven timing of the programs with unit forward
// and double backward costs gives exactly Megatron's bubble (P−1)/(v·M + P−1); and a broken
// program is caught.
#include "parallel/pipeline_program.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "core/error.h"

namespace lt {
namespace {

// Makespan of the programs when a forward costs `tf`, a backward `tb` and messages nothing: a
// step starts when the rank's previous step ended; its exchange ends when every message of it
// has both ends posted (a message's sender posts at the end of its step's compute).
double makespan(const std::vector<PipeProgram>& progs, int P, double tf, double tb) {
  // Post times of each message, per directed link and direction, in order.
  std::map<std::tuple<int, int, int>, std::vector<double>> send_at, recv_at;
  std::vector<size_t> pc(size_t(P), 0);
  std::vector<double> clock(size_t(P), 0.0);
  // Iterate until every step's end time is known (steps wait on peers' posts).
  std::vector<std::vector<double>> posted(static_cast<size_t>(P)), ended(static_cast<size_t>(P));
  for (int r = 0; r < P; ++r) posted[size_t(r)].assign(progs[size_t(r)].steps.size(), -1), ended[size_t(r)] = posted[size_t(r)];
  // Message indices per step, to find the partner's post time.
  struct Msg {
    std::tuple<int, int, int> link;
    size_t index;
    bool send;
  };
  std::vector<std::vector<std::vector<Msg>>> msgs(static_cast<size_t>(P));
  std::map<std::tuple<int, int, int>, size_t> nsend, nrecv;
  std::map<std::tuple<int, int, int, bool>, std::vector<std::pair<int, size_t>>> owner;  // (link, send) -> (rank, step)
  for (int r = 0; r < P; ++r) {
    msgs[size_t(r)].resize(progs[size_t(r)].steps.size());
    for (size_t i = 0; i < progs[size_t(r)].steps.size(); ++i) {
      const PipeStep& st = progs[size_t(r)].steps[i];
      auto add = [&](int src, int dst, int dir, bool send) {
        auto link = std::tuple{src, dst, dir};
        size_t idx = send ? nsend[link]++ : nrecv[link]++;
        msgs[size_t(r)][i].push_back({link, idx, send});
        owner[{src, dst, dir, send}].push_back({r, i});
      };
      if (st.send_forward) add(r, (r + 1) % P, 0, true);
      if (st.send_backward) add(r, (r + P - 1) % P, 1, true);
      if (st.recv_forward) add((r + P - 1) % P, r, 0, false);
      if (st.recv_backward) add((r + 1) % P, r, 1, false);
    }
  }
  for (bool progress = true; progress;) {
    progress = false;
    for (int r = 0; r < P; ++r) {
      auto& steps = progs[size_t(r)].steps;
      while (pc[size_t(r)] < steps.size()) {
        const size_t i = pc[size_t(r)];
        const PipeStep& st = steps[i];
        const double start = i == 0 ? 0.0 : ended[size_t(r)][i - 1];
        posted[size_t(r)][i] = start + (st.forward ? tf : 0.0) + (st.backward ? tb : 0.0);
        double end = posted[size_t(r)][i];
        bool known = true;
        for (const Msg& m : msgs[size_t(r)][i]) {
          auto [src, dst, dir] = m.link;
          auto [pr, pi] = owner[{src, dst, dir, !m.send}][m.index];
          if (posted[size_t(pr)][pi] < 0) {
            known = false;
            break;
          }
          end = std::max(end, posted[size_t(pr)][pi]);
        }
        if (!known) break;
        ended[size_t(r)][i] = end;
        ++pc[size_t(r)];
        progress = true;
      }
    }
  }
  double t = 0;
  for (int r = 0; r < P; ++r) {
    EXPECT_EQ(pc[size_t(r)], progs[size_t(r)].steps.size()) << "rank " << r << " never finished";
    t = std::max(t, ended[size_t(r)].back());
  }
  return t;
}

TEST(PipelineProgram, EveryShapeRunsWithoutDeadlock) {
  for (int P = 2; P <= 6; ++P)
    for (int v = 2; v <= 4; ++v)
      for (int M = P; M <= 4 * P; M += P) {
        auto progs = interleaved_programs(P, v, M);
        EXPECT_NO_THROW(check_programs(progs, P, v, M)) << "P " << P << " v " << v << " M " << M;
        for (int r = 0; r < P; ++r)
          for (int c = 0; c < v; ++c) {
            // At most M micro-batches of a chunk are ever in flight, and at least one.
            EXPECT_GE(progs[size_t(r)].slots[size_t(c)], 1);
            EXPECT_LE(progs[size_t(r)].slots[size_t(c)], M);
          }
      }
}

// With a forward of 1 and a backward of 2 per chunk, a rank's work is 3·v·M and the step lasts
// 3·v·M + 3·(P−1): the bubble is (P−1) / (v·M + P−1), exactly.
TEST(PipelineProgram, BubbleIsMegatrons) {
  for (int P : {2, 4})
    for (int v : {2, 3})
      for (int M : {P, 2 * P, 8}) {
        if (M % P) continue;
        auto progs = interleaved_programs(P, v, M);
        const double T = makespan(progs, P, 1.0, 2.0), work = 3.0 * v * M;
        const double bubble = 1.0 - work / T;
        EXPECT_NEAR(bubble, double(P - 1) / double(v * M + P - 1), 1e-12) << "P " << P << " v " << v << " M " << M;
      }
}

TEST(PipelineProgram, BrokenProgramsAreCaught) {
  auto progs = interleaved_programs(2, 2, 4);
  // A gradient that never arrives: the backward runs without it.
  for (PipeStep& st : progs[0].steps)
    if (st.recv_backward) {
      st.recv_backward = {};
      break;
    }
  EXPECT_THROW(check_programs(progs, 2, 2, 4), Error);
  progs = interleaved_programs(2, 2, 4);
  std::swap(progs[1].steps[1], progs[1].steps[2]);  // a forward before its input
  EXPECT_THROW(check_programs(progs, 2, 2, 4), Error);
  EXPECT_THROW(interleaved_programs(2, 2, 3), Error);  // M not a multiple of P
  EXPECT_THROW(interleaved_programs(1, 2, 4), Error);  // nothing to interleave
}

}  // namespace
}  // namespace lt
