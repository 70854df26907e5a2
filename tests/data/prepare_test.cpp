// prepare: packing invariants (token stream preserved up to the dropped remainder, BOS at each
// document start, block boundaries), the seeded document split, identical bytes for any thread
// count, and nothing that looks complete after a failure.
#include <gtest/gtest.h>

#include <unistd.h>

#include <fstream>

#include "core/error.h"
#include "core/file.h"
#include "data/corpus.h"
#include "data/dataset.h"
#include "data/prepare.h"
#include "data/shard.h"
#include "data/tokenizer.h"
#include "test_util.h"

namespace {

namespace fs = std::filesystem;

std::string tokenizer_path() { return lt::test::source_path("assets/llama2/tokenizer.model"); }

// A small multi-document corpus: the wikicorpus excerpts + one English gimp_help page set.
lt::data::PrepareOptions base_options(const fs::path& out) {
  lt::data::PrepareOptions o;
  o.inputs = {lt::test::source_path("assets/corpus/wikicorpus_sample")};
  o.output = out.string();
  o.tokenizer = tokenizer_path();
  o.block_size = 97;  // odd on purpose: documents straddle blocks everywhere
  o.progress = false;
  o.shard_bytes = 97 * 2 * 10;  // 10 blocks per shard -> several shards
  return o;
}

std::vector<int32_t> read_split(const std::string& dir, const std::string& split) {
  auto ds = lt::TokenDataset::open(dir, 0, split);
  std::vector<int32_t> all(size_t(ds->num_samples() * ds->sample_tokens()));
  for (int64_t i = 0; i < ds->num_samples(); ++i) ds->read(i, all.data() + i * ds->sample_tokens());
  return all;
}

TEST(DataPrepare, PackingInvariantsAndSplit) {
  auto dir = lt::test::scratch_dir("prepare_pack");
  auto o = base_options(dir / "ds");
  o.validation_fraction = 0.3;
  o.split_seed = 5;
  o.add_eos = true;
  nlohmann::json meta = lt::data::prepare_dataset(o);
  ASSERT_TRUE(fs::exists(dir / "ds" / "meta.json"));
  EXPECT_FALSE(fs::exists(dir / ("ds.tmp-" + std::to_string(getpid()))));

  // Independent expectation: the documents, tokenised one by one, assigned by the split rule.
  auto tok = lt::open_tokenizer(tokenizer_path());
  lt::data::CorpusReader reader(lt::data::expand_inputs(o.inputs), {});
  std::vector<int32_t> want[2];
  uint64_t docs[2] = {0, 0};
  std::string doc;
  for (uint64_t i = 0; reader.next(doc); ++i) {
    int s = lt::data::is_validation_document(o.split_seed, i, o.validation_fraction) ? 1 : 0;
    want[s].push_back(1);
    for (int32_t id : tok->encode(doc)) want[s].push_back(id);
    want[s].push_back(2);
    ++docs[s];
  }
  ASSERT_GT(docs[0], 0u);
  ASSERT_GT(docs[1], 0u);
  const char* names[2] = {"train", "validation"};
  for (int s = 0; s < 2; ++s) {
    const auto& m = meta["splits"][names[s]];
    std::vector<int32_t> got = read_split((dir / "ds").string(), names[s]);
    uint64_t blocks = want[s].size() / 97;
    EXPECT_EQ(m["blocks"].get<uint64_t>(), blocks);
    EXPECT_EQ(m["documents"].get<uint64_t>(), docs[s]);
    EXPECT_EQ(m["dropped_tokens"].get<uint64_t>(), want[s].size() - blocks * 97);
    EXPECT_EQ(m["document_tokens"].get<uint64_t>(), want[s].size());
    ASSERT_EQ(got.size(), blocks * 97);
    EXPECT_TRUE(std::equal(got.begin(), got.end(), want[s].begin())) << names[s];
    // Shard headers: blocks and document starts (BOS tokens) add up.
    uint64_t header_blocks = 0, header_docs = 0, bos = 0;
    for (const auto& name : m["shards"]) {
      lt::data::ShardReader r((dir / "ds" / name.get<std::string>()).string());
      EXPECT_EQ(r.header().token_bytes, 2u);
      EXPECT_LE(r.header().num_blocks, 10u);
      header_blocks += r.header().num_blocks;
      header_docs += r.header().num_documents;
    }
    for (int32_t id : got) bos += id == 1;
    EXPECT_EQ(header_blocks, blocks);
    EXPECT_EQ(header_docs, bos);  // documents whose BOS is stored
    // The document index (format version 3): every block's starts are exactly its BOS tokens.
    auto ds = lt::TokenDataset::open((dir / "ds" / names[s]).string(), 0);
    ASSERT_TRUE(ds->has_documents());
    std::vector<int32_t> starts;
    for (int64_t i = 0; i < ds->num_samples(); ++i) {
      ds->document_starts(i, starts);
      std::vector<int32_t> want_starts;
      for (int t = 0; t < 97; ++t)
        if (got[size_t(i) * 97 + size_t(t)] == 1) want_starts.push_back(t);
      ASSERT_EQ(starts, want_starts) << names[s] << " block " << i;
    }
  }
  EXPECT_EQ(meta["version"].get<int>(), 3);
  EXPECT_GT(meta["splits"]["train"]["shards"].size(), 1u);
  EXPECT_EQ(meta["tokenizer"]["hash"], tok->file_hash());
  EXPECT_EQ(meta["documents"].get<uint64_t>(), docs[0] + docs[1]);
  EXPECT_EQ(meta["sources"].size(), 6u);
}

TEST(DataPrepare, SameBytesForAnyThreadCount) {
  auto dir = lt::test::scratch_dir("prepare_threads");
  std::vector<std::string> outputs;
  for (int threads : {1, 3}) {
    auto o = base_options(dir / ("t" + std::to_string(threads)));
    o.inputs.push_back(lt::test::source_path("assets/corpus/gimp_help/gimp_help_ca.txt"));
    o.corpus.text_mode = lt::data::TextMode::paragraph;
    o.threads = threads;
    o.block_size = 512;
    o.shard_bytes = 1 << 20;
    lt::data::prepare_dataset(o);
    std::string all;
    for (const auto& e : fs::directory_iterator(dir / ("t" + std::to_string(threads))))
      if (e.path().extension() == ".bin") all += e.path().filename().string() + lt::read_file(e.path().string());
    outputs.push_back(all);
  }
  EXPECT_GT(outputs[0].size(), 100000u);
  EXPECT_TRUE(outputs[0] == outputs[1]);
}

TEST(DataPrepare, FailuresLeaveNothingComplete) {
  auto dir = lt::test::scratch_dir("prepare_fail");
  // A bad JSONL line in the last file: error with the line number, no output, no temp dir.
  std::ofstream(dir / "a.jsonl") << "{\"text\": \"hello there, a document\"}\n";
  std::ofstream(dir / "b.jsonl") << "{\"text\": \"fine\"}\n{\"txt\": \"typo\"}\n";
  lt::data::PrepareOptions o;
  o.inputs = {(dir / "a.jsonl").string(), (dir / "b.jsonl").string()};
  o.output = (dir / "out").string();
  o.tokenizer = tokenizer_path();
  o.block_size = 4;
  o.progress = false;
  try {
    lt::data::prepare_dataset(o);
    FAIL();
  } catch (const lt::Error& e) {
    EXPECT_NE(std::string(e.what()).find("b.jsonl:2"), std::string::npos) << e.what();
  }
  for (const auto& e : fs::directory_iterator(dir)) EXPECT_NE(e.path().filename().string().rfind("out", 0), 0u) << e.path();
  // Empty corpus.
  std::ofstream(dir / "empty.txt") << "  \n\n";
  o.inputs = {(dir / "empty.txt").string()};
  EXPECT_THROW(lt::data::prepare_dataset(o), lt::Error);
  EXPECT_FALSE(fs::exists(dir / "out"));
  // Fewer tokens than one block.
  o.inputs = {(dir / "a.jsonl").string()};
  o.block_size = 4096;
  EXPECT_THROW(lt::data::prepare_dataset(o), lt::Error);
  // Not a tokenizer.
  o.block_size = 4;
  o.tokenizer = (dir / "a.jsonl").string();
  EXPECT_THROW(lt::data::prepare_dataset(o), lt::Error);
  // A good run, then a second one without --force refuses to overwrite.
  o.tokenizer = tokenizer_path();
  lt::data::prepare_dataset(o);
  EXPECT_TRUE(fs::exists(dir / "out" / "meta.json"));
  EXPECT_THROW(lt::data::prepare_dataset(o), lt::Error);
  o.force = true;
  lt::data::prepare_dataset(o);
  // A directory that is not a dataset is never replaced, even with --force.
  fs::create_directories(dir / "precious");
  std::ofstream(dir / "precious" / "keep.txt") << "x";
  o.output = (dir / "precious").string();
  EXPECT_THROW(lt::data::prepare_dataset(o), lt::Error);
  EXPECT_TRUE(fs::exists(dir / "precious" / "keep.txt"));
}

}  // namespace
