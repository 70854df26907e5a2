// Loader and TokenDataset: every sample exactly once per epoch for any DP size, and a resume
// under a different DP size continues the same global order.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <set>
#include <vector>

#include "core/error.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "data/permutation.h"
#include "data/shard.h"
#include "test_util.h"

namespace {

// A raw uint16 file of n samples of t tokens where every token of sample i is i.
std::string write_raw(const std::string& name, int n, int t) {
  auto path = (lt::test::scratch_dir("loader_" + name) / "tokens.bin").string();
  std::vector<uint16_t> ids;
  for (int i = 0; i < n; ++i)
    for (int k = 0; k < t; ++k) ids.push_back(uint16_t(i));
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(ids.data()), ids.size() * 2);
  return path;
}

// Runs `steps` global batches on dp loaders starting at `start`; returns samples in global order.
std::vector<int> run(const lt::TokenDataset& ds, int dp, int batch, int steps, int64_t start, bool shuffle) {
  std::vector<lt::Loader> loaders;
  for (int d = 0; d < dp; ++d) {
    loaders.emplace_back(ds, 1234, shuffle, d, dp);
    loaders.back().set_position(start);
  }
  const int t = ds.sample_tokens(), per = batch / dp;
  std::vector<int> order;
  std::vector<int32_t> buf(size_t(per) * t);
  for (int s = 0; s < steps; ++s)
    for (int d = 0; d < dp; ++d) {
      loaders[d].next_batch(batch, buf.data());
      for (int j = 0; j < per; ++j) {
        for (int k = 1; k < t; ++k) EXPECT_EQ(buf[j * t + k], buf[j * t]);
        order.push_back(buf[j * t]);
      }
      EXPECT_EQ(loaders[d].position(), start + int64_t(s + 1) * batch);
    }
  return order;
}

TEST(DataLoader, ExactlyOncePerEpochForEveryDpSize) {
  const int n = 37, t = 3, batch = 12;
  auto ds = lt::TokenDataset::open(write_raw("once", n, t), t);
  ASSERT_EQ(ds->num_samples(), n);
  ASSERT_EQ(ds->max_token_id(), n - 1);
  const int steps = 10;  // 120 positions: 3 full epochs + part of a 4th, with straddling batches
  std::vector<int> reference = run(*ds, 1, batch, steps, 0, true);
  for (int dp : {1, 2, 3, 4}) {
    std::vector<int> order = run(*ds, dp, batch, steps, 0, true);
    ASSERT_EQ(order, reference) << "dp=" << dp;
    for (int e = 0; e < 3; ++e) {
      std::set<int> seen(order.begin() + e * n, order.begin() + (e + 1) * n);
      EXPECT_EQ(int(seen.size()), n) << "epoch " << e << " dp=" << dp;
    }
  }
  // Shuffled, and differently per epoch.
  std::vector<int> e0(reference.begin(), reference.begin() + n), e1(reference.begin() + n, reference.begin() + 2 * n);
  std::vector<int> identity(n);
  for (int i = 0; i < n; ++i) identity[i] = i;
  EXPECT_NE(e0, identity);
  EXPECT_NE(e0, e1);
  // Unshuffled is index order.
  std::vector<int> plain = run(*ds, 2, batch, 4, 0, false);
  for (int p = 0; p < int(plain.size()); ++p) EXPECT_EQ(plain[p], p % n);
}

TEST(DataLoader, ResumeUnderDifferentDpContinuesExactly) {
  const int n = 41, t = 2, batch = 12;
  auto ds = lt::TokenDataset::open(write_raw("resume", n, t), t);
  std::vector<int> uninterrupted = run(*ds, 1, batch, 12, 0, true);
  // 5 steps on DP=2, save position, resume on DP=3, then DP=4.
  std::vector<int> a = run(*ds, 2, batch, 5, 0, true);
  std::vector<int> b = run(*ds, 3, batch, 4, 5 * batch, true);
  std::vector<int> c = run(*ds, 4, batch, 3, 9 * batch, true);
  a.insert(a.end(), b.begin(), b.end());
  a.insert(a.end(), c.begin(), c.end());
  EXPECT_EQ(a, uninterrupted);
}

TEST(DataLoader, EpochBoundaryReported) {
  auto ds = lt::TokenDataset::open(write_raw("epoch", 10, 1), 1);
  lt::Loader l(*ds, 7, true, 0, 1);
  std::vector<int32_t> buf(4);
  l.next_batch(4, buf.data());
  EXPECT_FALSE(l.last_batch_crossed_epoch());
  l.next_batch(4, buf.data());
  EXPECT_FALSE(l.last_batch_crossed_epoch());
  EXPECT_EQ(l.epoch(), 0);
  l.next_batch(4, buf.data());  // positions 8..11 straddle the boundary at 10
  EXPECT_TRUE(l.last_batch_crossed_epoch());
  EXPECT_EQ(l.epoch(), 1);
}

TEST(DataLoader, BatchMustDivideByDp) {
  auto ds = lt::TokenDataset::open(write_raw("div", 10, 1), 1);
  lt::Loader l(*ds, 7, true, 1, 4);
  std::vector<int32_t> buf(4);
  EXPECT_THROW(l.next_batch(6, buf.data()), lt::Error);
}

TEST(DataPermutation, IsABijection) {
  for (uint64_t n : {1ull, 2ull, 3ull, 5ull, 16ull, 17ull, 1000ull, 4097ull, 65536ull}) {
    lt::data::IndexPermutation p(n, lt::data::mix_key(99, n));
    std::vector<char> hit(n, 0);
    for (uint64_t i = 0; i < n; ++i) {
      uint64_t v = p(i);
      ASSERT_LT(v, n);
      ASSERT_FALSE(hit[v]) << "n=" << n;
      hit[v] = 1;
    }
  }
}

TEST(DataDataset, ShardDirectoryAndSingleShard) {
  auto dir = lt::test::scratch_dir("dataset_shards");
  std::vector<std::string> names = {"train-00000.bin", "train-00001.bin"};
  int next = 0;
  for (int s = 0; s < 2; ++s) {
    lt::data::ShardWriter w((dir / names[s]).string(), 4, 5);
    for (int b = 0; b < 3 + s; ++b) {
      std::vector<int32_t> blk(5);
      for (auto& x : blk) x = 70000 + next;  // needs uint32
      ++next;
      w.write_block(blk.data(), 1);
    }
    w.finish();
  }
  std::ofstream(dir / "meta.json") << R"({"format":"llamatrain-dataset","version":1,"block_size":5,"dtype":"uint32",
    "documents":7,"splits":{"train":{"shards":["train-00000.bin","train-00001.bin"],"blocks":7,"tokens":35,
    "documents":7,"dropped_tokens":0}}})";
  auto ds = lt::TokenDataset::open(dir.string(), 0);
  EXPECT_EQ(ds->num_samples(), 7);
  EXPECT_EQ(ds->sample_tokens(), 5);
  EXPECT_EQ(ds->max_token_id(), 70006);
  std::vector<int32_t> out(5);
  for (int i = 0; i < 7; ++i) {
    ds->read(i, out.data());
    EXPECT_EQ(out[4], 70000 + i);
  }
  EXPECT_EQ(lt::TokenDataset::open(dir.string(), 6)->sample_tokens(), 5);  // raw_sample_tokens ignored
  EXPECT_THROW(lt::TokenDataset::open(dir.string(), 0, "validation"), lt::Error);  // no such split
  EXPECT_EQ(lt::TokenDataset::open((dir / "train").string(), 0)->num_samples(), 7);  // split by path
  EXPECT_THROW(lt::TokenDataset::open((dir / "nosplit").string(), 0), lt::Error);
  auto one = lt::TokenDataset::open((dir / names[1]).string(), 0);
  EXPECT_EQ(one->num_samples(), 4);
  // uint32 shards say so in their version (2); uint16 ones stay version 1; both read.
  auto version_of = [](const std::filesystem::path& p) {
    uint32_t v = 0;
    std::ifstream f(p, std::ios::binary);
    f.seekg(8);
    f.read(reinterpret_cast<char*>(&v), 4);
    return v;
  };
  EXPECT_EQ(version_of(dir / names[0]), 2u);
  {
    lt::data::ShardWriter w((dir / "u16.bin").string(), 2, 5);
    std::vector<int32_t> blk = {1, 2, 65535, 4, 5};
    w.write_block(blk.data(), 1);
    w.finish();
  }
  EXPECT_EQ(version_of(dir / "u16.bin"), 1u);
  auto u16 = lt::TokenDataset::open((dir / "u16.bin").string(), 0);
  EXPECT_EQ(u16->max_token_id(), 65535);
  // A version-2 header that claims uint16 ids, and an unknown version, are rejected.
  std::filesystem::copy_file(dir / "u16.bin", dir / "bad.bin");
  {
    std::fstream f(dir / "bad.bin", std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(8);
    uint32_t v = 2;
    f.write(reinterpret_cast<const char*>(&v), 4);
  }
  EXPECT_THROW(lt::TokenDataset::open((dir / "bad.bin").string(), 0), lt::Error);
  for (uint32_t v : {3u, 4u}) {  // 3 without its document index; 4 unknown
    std::fstream f(dir / "bad.bin", std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(8);
    f.write(reinterpret_cast<const char*>(&v), 4);
    f.close();
    EXPECT_THROW(lt::TokenDataset::open((dir / "bad.bin").string(), 0), lt::Error) << "version " << v;
  }
  // Versions 1 and 2 have no document boundaries: document masking says to re-run prepare.
  std::vector<int32_t> starts;
  EXPECT_FALSE(u16->has_documents());
  try {
    u16->document_starts(0, starts);
    ADD_FAILURE() << "document starts of a version 1 shard";
  } catch (const lt::Error& e) {
    EXPECT_NE(std::string(e.what()).find("re-run `llamatrain prepare`"), std::string::npos) << e.what();
  }
  // A truncated shard (an interrupted write) is rejected.
  std::filesystem::resize_file(dir / names[1], 64 + 4 * 5 * 4 - 1);
  EXPECT_THROW(lt::TokenDataset::open((dir / names[1]).string(), 0), lt::Error);
}

// Version 3: a document index per block, for either id width; a corrupt index is an error.
TEST(DataDataset, DocumentIndexVersion3) {
  auto dir = lt::test::scratch_dir("dataset_docs");
  for (uint32_t bytes : {2u, 4u}) {
    const auto path = (dir / ("v3_" + std::to_string(bytes) + ".bin")).string();
    {
      lt::data::ShardWriter w(path, bytes, 6, true);
      std::vector<int32_t> blk = {1, 5, 6, 1, 7, 8};
      w.write_block(blk.data(), std::vector<uint32_t>{0, 3});
      w.write_block(blk.data(), std::vector<uint32_t>{});  // a block inside one document
      w.write_block(blk.data(), std::vector<uint32_t>{5});
      EXPECT_THROW(w.write_block(blk.data(), std::vector<uint32_t>{4, 2}), lt::Error);  // not ascending
      EXPECT_THROW(w.write_block(blk.data(), 1), lt::Error);  // no starts for an indexed shard
      w.finish();
    }
    lt::data::ShardReader r(path);
    EXPECT_EQ(r.header().num_documents, 3u);
    auto ds = lt::TokenDataset::open(path, 0);
    ASSERT_TRUE(ds->has_documents());
    std::vector<int32_t> s;
    ds->document_starts(0, s);
    EXPECT_EQ(s, (std::vector<int32_t>{0, 3}));
    ds->document_starts(1, s);
    EXPECT_TRUE(s.empty());
    ds->document_starts(2, s);
    EXPECT_EQ(s, (std::vector<int32_t>{5}));
    // A start position past the block is caught when read.
    {
      std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
      f.seekp(64 + 18 * std::streamoff(bytes) + 4 * 8 + 4);
      uint32_t bad = 9;
      f.write(reinterpret_cast<const char*>(&bad), 4);
    }
    auto broken = lt::TokenDataset::open(path, 0);
    EXPECT_THROW(broken->document_starts(0, s), lt::Error);
  }
}

TEST(DataDataset, BadRawFiles) {
  auto dir = lt::test::scratch_dir("dataset_bad");
  EXPECT_THROW(lt::TokenDataset::open((dir / "missing.bin").string(), 4), lt::Error);
  std::ofstream(dir / "empty.bin").close();
  EXPECT_THROW(lt::TokenDataset::open((dir / "empty.bin").string(), 4), lt::Error);
  std::ofstream(dir / "short.bin") << "abcd";  // 2 tokens
  EXPECT_THROW(lt::TokenDataset::open((dir / "short.bin").string(), 4), lt::Error);
  std::ofstream(dir / "odd.u32") << "abcdef";
  EXPECT_THROW(lt::TokenDataset::open((dir / "odd.u32").string(), 1), lt::Error);
  std::ofstream(dir / "x.txt") << "abcdef";
  try {
    lt::TokenDataset::open((dir / "x.txt").string(), 1);
    FAIL();
  } catch (const lt::Error& e) {
    EXPECT_NE(std::string(e.what()).find("x.txt"), std::string::npos);
  }
  std::filesystem::create_directories(dir / "notds");
  EXPECT_THROW(lt::TokenDataset::open((dir / "notds").string(), 1), lt::Error);
  // uint32 raw file
  std::vector<uint32_t> ids = {1, 100000, 3, 4};
  std::ofstream(dir / "ok.u32.bin", std::ios::binary).write(reinterpret_cast<const char*>(ids.data()), 16);
  auto ds = lt::TokenDataset::open((dir / "ok.u32.bin").string(), 2);
  EXPECT_EQ(ds->num_samples(), 2);
  EXPECT_EQ(ds->max_token_id(), 100000);
}

}  // namespace
