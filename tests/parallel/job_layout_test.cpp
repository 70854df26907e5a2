#include "parallel/job_layout.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace lt {

namespace {
std::string error_of(const JobShape& s) {
  try {
    derive_job_layout(s);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
void expect_has(const std::string& m, const std::string& part) {
  EXPECT_NE(m.find(part), std::string::npos) << "'" << part << "' not in: " << m;
}
}  // namespace

TEST(JobLayout, SeedSeventyBLayout) {
  JobShape s{32, 32, 8, 8, 512, 1, 4096};
  JobLayout l = derive_job_layout(s, preset_config("llama2-70b"));
  EXPECT_EQ(l.world, 1024);
  EXPECT_EQ(l.dp, 16);
  EXPECT_EQ(l.per_replica_batch, 32);
  EXPECT_EQ(l.micro_batches, 32);
  EXPECT_DOUBLE_EQ(l.bubble(), 7.0 / 39.0);
  EXPECT_TRUE(l.warnings.empty());
}

TEST(JobLayout, WorldNotDivisibleSuggestsSizes) {
  std::string m = error_of({3, 10, 8, 8, 512, 1, 0});  // 30 ranks, tp*pp = 64
  expect_has(m, "world size 30");
  expect_has(m, "tp x pp = 8 x 8 = 64");
  expect_has(m, "e.g. 64 processes");
  m = error_of({1, 12, 8, 1, 24, 1, 0});
  expect_has(m, "with pp = 1 a tp in {1, 2, 3, 4, 6, 12}");
}

TEST(JobLayout, GlobalBatchNotDivisibleSuggestsNearest) {
  // dp = 16; gbs 500 -> 496 or 512 with mbs 1; with mbs 2 multiples of 32: 480 or 512.
  std::string m = error_of({32, 32, 8, 8, 500, 1, 0});
  expect_has(m, "global batch size 500 is not divisible by dp = 16");
  expect_has(m, "496 or 512");
  m = error_of({32, 32, 8, 8, 500, 2, 0});
  expect_has(m, "480 or 512");
  // Small batch: only the multiple above exists.
  m = error_of({32, 32, 8, 8, 8, 1, 0});
  expect_has(m, ": 16 (multiples");
}

TEST(JobLayout, MicroBatchNotDividingSuggestsDivisors) {
  std::string m = error_of({32, 32, 8, 8, 512, 3, 0});  // per replica 32
  expect_has(m, "per-replica batch 32");
  expect_has(m, "1, 2, 4, 8, 16, 32");
  expect_has(m, "global batch 480 or 528");
}

TEST(JobLayout, ModelChecks) {
  LlamaConfig c = preset_config("llama2-70b");
  JobShape s{1, 24, 3, 1, 8, 1, 4096};  // 64 heads: tp 3 does not divide
  EXPECT_THROW(derive_job_layout(s, c), Error);
  s = {1, 8, 1, 1, 8, 1, 8192};
  try {
    derive_job_layout(s, c);
    FAIL();
  } catch (const Error& e) {
    expect_has(e.what(), "seq_len = 8192");
  }
}

TEST(JobLayout, FewMicroBatchesWarn) {
  JobLayout l = derive_job_layout({1, 4, 1, 4, 2, 1, 0});
  EXPECT_EQ(l.micro_batches, 2);
  ASSERT_EQ(l.warnings.size(), 1u);
  EXPECT_NE(l.warnings[0].find("never fills"), std::string::npos);
}

}  // namespace lt
