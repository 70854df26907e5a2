// Replays every input kept under fuzz/corpus/ (seeds and past fuzzer findings) through the
// parsers the fuzz targets drive: each must parse or throw lt::Error, nothing else. (The fuzzers
// themselves run in tests/fuzz/fuzz_bounded_test.sh.)
#include <gtest/gtest.h>

#include <filesystem>

#include "ckpt/checkpoint_meta.h"
#include "ckpt/safetensors.h"
#include "core/error.h"
#include "core/file.h"
#include "data/dataset_meta.h"
#include "data/tokenizer.h"
#include "model/config.h"
#include "test_util.h"

namespace lt {
namespace {

namespace fs = std::filesystem;

template <typename Fn>
int replay(const std::string& sub, Fn parse) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(test::source_path("fuzz/corpus/" + sub))) {
    std::string bytes = read_file(e.path().string());
    try {
      parse(bytes);
    } catch (const Error&) {
    } catch (const std::exception& x) {
      ADD_FAILURE() << e.path() << ": escaped as a non-lt::Error exception: " << x.what();
    }
    ++n;
  }
  return n;
}

TEST(FuzzRegression, Safetensors) {
  int n = replay("safetensors", [](const std::string& b) {
    auto h = parse_safetensors(reinterpret_cast<const uint8_t*>(b.data()), b.size(), "corpus");
    for (const auto& t : h.tensors) ASSERT_LE(h.data_start + t.end, b.size());
  });
  EXPECT_GT(n, 0);
}

TEST(FuzzRegression, CheckpointMeta) {
  EXPECT_GT(replay("ckpt_meta", [](const std::string& b) { parse_checkpoint_meta(b, "corpus"); }), 0);
}

TEST(FuzzRegression, TokenizerJson) {
  EXPECT_GT(replay("tokenizer_json",
                   [](const std::string& b) {
                     auto tok = data::open_hf_tokenizer_json("corpus", b);
                     std::vector<int32_t> ids;
                     tok->encode_append("Hello wor\xc3\xa9ld \xff", ids);
                     tok->decode(ids);
                   }),
            0);
}

TEST(FuzzRegression, ModelConfig) {
  EXPECT_GT(replay("model_config", [](const std::string& b) { parse_hf_config(b, "corpus"); }), 0);
}

TEST(FuzzRegression, DatasetMeta) {
  EXPECT_GT(replay("dataset_meta",
                   [](const std::string& b) {
                     auto meta = data::parse_dataset_meta(b, "corpus");
                     data::dataset_split_shards(meta, "train", "corpus");
                   }),
            0);
}

}  // namespace
}  // namespace lt
