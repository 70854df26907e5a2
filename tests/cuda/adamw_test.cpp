// AdamW and Σg² over ZeRO-1 segments on the GPU against kernels/cpu/adamw and
// ShardedAdamW's per-segment loop. Segments with and without decay, one outside the norm, a
// gap and a padded tail that must stay untouched, segments longer than one chunk.
// Tolerances: the same float constants and operation order; the compilers may fuse a multiply
// and an add differently (GCC and nvcc both contract), so a few ulps: 1e-6 relative. Σg² is
// summed in double in a different order: 1e-12 relative.
#include <gtest/gtest.h>

#include "cuda_test_util.h"
#include "kernels/cpu/adamw.h"
#include "kernels/cuda/adamw.h"

namespace lt {
namespace {

using cuda::AdamWSegment;
using cuda::DeviceBuffer;
using cuda::download;
using cuda::upload;

const std::vector<AdamWSegment> kSegments = {
    {0, 5000, true, true},        // decay, counted
    {5000, 5003, false, true},    // a tiny norm weight
    {5003, 30000, true, false},   // not counted (replicated elsewhere), several chunks
    {30100, 30200, false, true},  // after a gap
};
constexpr int64_t kRange = 30300;  // the tail [30200, 30300) is padding

TEST(CudaAdamWTable, ChunksCoverEachSegmentInOrder) {
  int64_t chunks = 0;
  const auto e = cuda::SegmentTable::build(kSegments, &chunks);
  ASSERT_EQ(e.size(), 4u);
  const int64_t C = cuda::SegmentTable::kChunk;
  EXPECT_EQ(e[0].first_chunk, 0);
  EXPECT_EQ(e[1].first_chunk, (5000 + C - 1) / C);
  EXPECT_EQ(e[2].first_chunk, e[1].first_chunk + 1);
  EXPECT_EQ(e[3].first_chunk, e[2].first_chunk + (30000 - 5003 + C - 1) / C);
  EXPECT_EQ(chunks, e[3].first_chunk + 1);
  EXPECT_EQ(e[2].decay, 1);
  EXPECT_EQ(e[2].count_in_norm, 0);
  // Overlapping or unordered segments are an error.
  EXPECT_THROW(cuda::SegmentTable::build({{0, 10, true, true}, {5, 20, true, true}}, &chunks), Error);
}

TEST(CudaAdamW, UpdateAndNormMatchCpuSegmentLoop) {
  LT_REQUIRE_GPU();
  const auto g = test::normal(size_t(kRange), 31, 0.01f);
  std::vector<float> p = test::normal(size_t(kRange), 32), m(size_t(kRange), 0.0f), v(size_t(kRange), 0.0f);
  std::vector<float> pc = p, mc = m, vc = v;
  cuda::Stream stream;
  cuda::SegmentTable table(kSegments, stream.get());
  DeviceBuffer dp = upload(p), dg = upload(g), dm = upload(m), dv = upload(v);
  DeviceBuffer partials(size_t(table.chunks()) * 8), total(8);
  for (int64_t t = 1; t <= 3; ++t) {
    const double lr = 1e-3 * double(t);
    const float gs = t == 2 ? 0.5f : 1.0f;  // a clipped step
    for (const AdamWSegment& s : kSegments) {
      const cpu::AdamWParams a{lr, 0.9, 0.95, 1e-8, s.decay ? 0.1 : 0.0, t, gs};
      cpu::adamw_update(pc.data() + s.begin, g.data() + s.begin, mc.data() + s.begin, vc.data() + s.begin,
                        s.end - s.begin, a);
    }
    cuda::adamw_update(dp.as<float>(), dg.as<float>(), dm.as<float>(), dv.as<float>(), table,
                       {lr, 0.9, 0.95, 1e-8, 0.1, t, gs}, stream.get());
  }
  stream.synchronize();
  const auto gp = download(dp.as<float>(), p.size()), gm = download(dm.as<float>(), p.size()),
             gv = download(dv.as<float>(), p.size());
  EXPECT_LT(test::rel_err(gp, pc), 1e-6);
  EXPECT_LT(test::rel_err(gm, mc), 1e-6);
  EXPECT_LT(test::rel_err(gv, vc), 1e-6);
  for (int64_t i = 30000; i < 30100; ++i) ASSERT_EQ(gp[size_t(i)], p[size_t(i)]) << "gap element " << i;
  for (int64_t i = 30200; i < kRange; ++i) ASSERT_EQ(gp[size_t(i)], p[size_t(i)]) << "padding element " << i;

  double want = 0;
  for (const AdamWSegment& s : kSegments)
    if (s.count_in_norm) want += cpu::sum_squares(g.data() + s.begin, s.end - s.begin);
  double got[2];
  for (double& x : got) {
    cuda::sum_squares(dg.as<float>(), table, partials.as<double>(), total.as<double>(), stream.get());
    stream.synchronize();
    x = download(total.as<double>(), 1)[0];
  }
  EXPECT_NEAR(got[0], want, 1e-12 * want);
  EXPECT_EQ(got[0], got[1]);
}

}  // namespace
}  // namespace lt
