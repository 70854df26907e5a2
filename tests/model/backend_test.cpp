// The seam between the training code and a backend: the factory, the size table that drives a
// stage's allocation, host access to backend memory, and the optimizer maths of the CPU backend.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "kernels/cpu/adamw.h"
#include "model/backend.h"
#include "model/buffer_carver.h"
#include "model/stage_util.h"

namespace lt {
namespace {

TEST(Backend, FactoryNamesTheKeyForAnUnavailableDevice) {
  EXPECT_EQ(make_backend(Device::cpu)->device(), Device::cpu);
#ifndef LLAMATRAIN_HAVE_CUDA
  try {
    make_backend(Device::cuda);
    ADD_FAILURE() << "a build without CUDA made a cuda backend";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("train.device: cuda is not available in this build"), std::string::npos)
        << e.what();
  }
#endif
}

TEST(BufferCarver, TakesExactlyWhatTheTableLists) {
  StageSizes t;
  t.add("a", MemKind::workspace, 10);          // 40 B -> one 64-byte line
  t.add("b", MemKind::workspace, 17, 4, 2);    // 68 B -> two lines, twice
  t.add("c", MemKind::workspace, 5, 4, 1, "someone else");
  EXPECT_EQ(t.carved_bytes(MemKind::workspace), 64 + 2 * 128);
  EXPECT_EQ(t.bytes(MemKind::workspace), 64 + 2 * 128 + 64);
  std::vector<char> mem(size_t(t.carved_bytes(MemKind::workspace)));
  {
    BufferCarver c(t, MemKind::workspace, mem.data());
    EXPECT_EQ(c.take<char>("b"), mem.data());
    EXPECT_EQ(c.take<char>("a"), mem.data() + 128);
    EXPECT_EQ(c.take<char>("b"), mem.data() + 192);
    EXPECT_NO_THROW(c.finish());
    EXPECT_THROW(c.take<char>("b"), Error);  // a third copy
  }
  BufferCarver c(t, MemKind::workspace, mem.data());
  EXPECT_THROW(c.take<char>("c"), Error);  // not the stage's to carve
  EXPECT_THROW(c.take<char>("d"), Error);  // not in the table
  c.take<char>("a");
  EXPECT_THROW(c.finish(), Error);  // b never taken
}

TEST(Backend, CpuOptimizerMathsIsTheKernels) {
  auto backend = make_backend(Device::cpu);
  const size_t n = 1000;
  BackendArray p = backend->alloc(n), g = backend->alloc(n), m = backend->alloc(n), v = backend->alloc(n);
  Rng rng(3);
  std::vector<float> p0(n), g0(n);
  for (size_t i = 0; i < n; ++i) p.data()[i] = p0[i] = rng.normal(), g.data()[i] = g0[i] = rng.normal();
  const std::vector<OptimSegment> segs = {{0, 300, true, true}, {300, 310, false, false}, {310, 1000, true, true}};
  const double ss = backend->sum_squares(g.data(), segs);
  EXPECT_EQ(ss, cpu::sum_squares(g0.data(), 300) + cpu::sum_squares(g0.data() + 310, 690));
  backend->adamw(p.data(), g.data(), m.data(), v.data(), segs, {1e-2, 0.9, 0.95, 1e-8, 0.1, 1, 0.5f});
  std::vector<float> m0(n), v0(n);
  cpu::adamw_update(p0.data(), g0.data(), m0.data(), v0.data(), 300, {1e-2, 0.9, 0.95, 1e-8, 0.1, 1, 0.5f});
  cpu::adamw_update(p0.data() + 300, g0.data() + 300, m0.data() + 300, v0.data() + 300, 10,
                    {1e-2, 0.9, 0.95, 1e-8, 0.0, 1, 0.5f});  // no decay on this segment
  cpu::adamw_update(p0.data() + 310, g0.data() + 310, m0.data() + 310, v0.data() + 310, 690,
                    {1e-2, 0.9, 0.95, 1e-8, 0.1, 1, 0.5f});
  for (size_t i = 0; i < n; ++i) ASSERT_EQ(p.data()[i], p0[i]) << i;
}

TEST(Backend, HostAccessReadsAndWritesInPlace) {
  std::vector<float> x(8, 1.0f);
  HostFlat a(x.data(), x.size());
  EXPECT_EQ(a.read(2, 3), x.data() + 2);
  a.write(4, 2)[1] = 7.0f;
  a.flush();
  EXPECT_EQ(x[5], 7.0f);
  EXPECT_THROW(a.read(6, 3), Error);
  HostFlat r = HostFlat::read_only(x.data(), x.size());
  EXPECT_THROW(r.write(0, 1), Error);
}

// The stage allocates exactly its table: what a real stage got equals the table's carved bytes,
// and the table lists every buffer a layer record needs (with and without recomputation).
TEST(Backend, CpuStageAllocatesItsTable) {
  LlamaConfig c = preset_config("stories260k");
  for (bool recompute : {false, true})
    for (Precision prec : {Precision::fp32, Precision::bf16}) {
      ShardSpec s;
      s.tp = 2;
      s.pp = 2;
      s.pp_rank = 1;
      ParamLayout layout(c, s);
      StageOptions o;
      o.micro_batch = 2;
      o.seq_len = 40;
      o.slots = 1;
      o.recompute = recompute;
      o.precision = prec;
      test::TestStage st = test::make_cpu_stage(layout, o);
      const StageSizes& t = st->sizes();
      EXPECT_EQ(st->activation_bytes(), t.carved_bytes(MemKind::activations) + t.carved_bytes(MemKind::workspace));
      EXPECT_NE(t.find("head.logits"), nullptr);  // the last stage
      EXPECT_EQ(t.find("tokens")->copies, 1);
      EXPECT_EQ(t.find("layer.x")->copies, 2);  // stories260K's 5 layers: 3 + 2
      EXPECT_EQ(t.find("recompute.q") != nullptr, recompute);
      EXPECT_EQ(t.find("bf16.a") != nullptr, prec == Precision::bf16);
    }
}

}  // namespace
}  // namespace lt
