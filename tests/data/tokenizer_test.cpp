// Tokenizer parity against Hugging Face's outputs (assets/llama2/tokenizer_tests, made with
// transformers 4.57.1) through tokenizer.model and tokenizer.json; round trips on the trilingual corpus; file-type detection errors.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/file.h"
#include "data/tokenizer.h"
#include "test_util.h"

namespace {

using nlohmann::json;

std::string asset(const std::string& rel) { return lt::test::source_path("assets/" + rel); }

std::unique_ptr<lt::Tokenizer> open_variant(const std::string& which) {
  return lt::open_tokenizer(asset(which == "json" ? "llama2/tokenizer.json" : "llama2/tokenizer.model"));
}

class TokenizerParity : public ::testing::TestWithParam<std::string> {};

TEST_P(TokenizerParity, MultilingualVectors) {
  auto tok = open_variant(GetParam());
  EXPECT_EQ(tok->vocab_size(), 32000);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  json inputs = json::parse(lt::read_file(asset("llama2/tokenizer_tests/multilingual_inputs.json")));
  std::map<std::string, std::string> text;
  for (const auto& e : inputs) text[e["id"]] = e["text"];
  json cases = json::parse(lt::read_file(asset("llama2/tokenizer_tests/tinyllama_multilingual.json")));
  size_t pairs = 0;
  for (const auto& e : cases["entries"]) {
    const std::string& t = text.at(e["id"]);
    std::vector<int32_t> want = e["input_ids"].get<std::vector<int32_t>>();
    std::vector<std::string> pieces = e["tokens"].get<std::vector<std::string>>();
    ASSERT_EQ(want.front(), 1);  // HF adds BOS; encode() does not
    std::vector<int32_t> ids = tok->encode(t);
    ids.insert(ids.begin(), tok->bos_id());
    EXPECT_EQ(ids, want) << e["id"];
    for (size_t k = 0; k < want.size(); ++k) EXPECT_EQ(tok->piece(want[k]), pieces[k]) << e["id"] << " #" << k;
    pairs += want.size();
    EXPECT_EQ(tok->decode(ids), e["decoded_skip_special"].get<std::string>()) << e["id"];
  }
  EXPECT_EQ(pairs, 2606u);
}

TEST_P(TokenizerParity, FrenchParagraph) {
  auto tok = open_variant(GetParam());
  json c = json::parse(lt::read_file(asset("llama2/tokenizer_tests/llama_encoded.json")));
  std::vector<int32_t> ids = tok->encode(c["text"].get<std::string>());
  ids.insert(ids.begin(), 1);
  EXPECT_EQ(ids, c["token_ids"].get<std::vector<int32_t>>());
  std::vector<std::string> pieces = c["bpe_tokens"].get<std::vector<std::string>>();
  ASSERT_EQ(pieces.size() + 1, ids.size());
  for (size_t k = 0; k < pieces.size(); ++k) EXPECT_EQ(tok->piece(ids[k + 1]), pieces[k]);
  EXPECT_EQ(tok->decode(ids), c["text"].get<std::string>());
}

TEST_P(TokenizerParity, EdgeCases) {
  auto tok = open_variant(GetParam());
  EXPECT_TRUE(tok->encode("").empty());
  EXPECT_EQ(tok->decode(tok->encode("  two leading spaces")), "  two leading spaces");
  EXPECT_EQ(tok->decode(tok->encode("tabs\tand\nnewlines\r\n")), "tabs\tand\nnewlines\r\n");
  // "<s>" in text is text, not BOS.
  std::vector<int32_t> ids = tok->encode("<s>");
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 1), 0);
  // Characters outside the vocabulary use byte fallback and round-trip.
  std::string rare = "\xf0\x9f\xa6\x9c parrot \xea\xb8\x80";
  EXPECT_EQ(tok->decode(tok->encode(rare)), rare);
  // A long run without spaces exercises the heap merge path.
  std::string cjk;
  for (int i = 0; i < 40; ++i) cjk += "\xe4\xbd\xa0\xe5\xa5\xbd\xe4\xb8\x96\xe7\x95\x8c";
  EXPECT_EQ(tok->decode(tok->encode(cjk)), cjk);
}

INSTANTIATE_TEST_SUITE_P(Data, TokenizerParity, ::testing::Values("model", "json"));

// The two encoders agree on the whole trilingual corpus, and decode inverts encode on it.
TEST(DataTokenizer, TrilingualCorpusRoundTripAndAgreement) {
  auto json_tok = open_variant("json");
  auto native = open_variant("model");
  size_t lines = 0, tokens = 0;
  for (const char* lang : {"ca", "es", "en"}) {
    std::istringstream in(lt::read_file(asset(std::string("corpus/gimp_help/gimp_help_") + lang + ".txt")));
    std::string line;
    while (std::getline(in, line)) {
      std::vector<int32_t> a = native->encode(line);
      ASSERT_EQ(native->decode(a), line);
      ASSERT_EQ(json_tok->decode(a), line);
      ASSERT_EQ(json_tok->encode(line), a) << line;
      ++lines;
      tokens += a.size();
    }
  }
  EXPECT_GT(lines, 10000u);
  EXPECT_GT(tokens, 1000000u);
}

// llama2.c's 512-piece model (remove_extra_whitespaces=true): ids from Python sentencepiece
// 0.1.97 (`SentencePieceProcessor(model_file=...).encode(text)`), recorded here.
TEST(DataTokenizer, Tok512MatchesPythonSentencepiece) {
  auto tok = lt::open_tokenizer(asset("stories260k/tok512.model"));
  EXPECT_EQ(tok->vocab_size(), 512);
  EXPECT_EQ(tok->encode("Once upon a time,  there was   a little girl."),
            (std::vector<int32_t>{403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 426}));
  EXPECT_EQ(tok->encode("  leading and trailing  "),
            (std::vector<int32_t>{278, 411, 380, 299, 269, 259, 420, 412, 290, 299}));
  std::vector<int32_t> ids = tok->encode("caf\xc3\xa9 \xc3\xb1 \xe4\xbd\xa0\xe5\xa5\xbd");
  EXPECT_EQ(ids, (std::vector<int32_t>{280, 412, 431, 485, 410, 493, 410, 231, 192, 163, 232, 168, 192}));
  EXPECT_EQ(tok->decode(ids), "caf\xc3\xa9 \xc3\xb1 \xe4\xbd\xa0\xe5\xa5\xbd");
}

TEST(DataTokenizer, IdentityAndBadFiles) {
  auto a = open_variant("json");
  auto b = lt::open_tokenizer(asset("llama2/tokenizer.model"));
  EXPECT_EQ(a->kind(), "hf-tokenizer-json");
  EXPECT_EQ(b->kind(), "sentencepiece");
  EXPECT_EQ(b->file_hash().rfind("xxh64:", 0), 0u);
  EXPECT_NE(a->file_hash(), b->file_hash());
  auto dir = lt::test::scratch_dir("tokenizer_bad");
  auto expect_error = [&](const std::string& name, const std::string& contents, const std::string& needle) {
    std::ofstream((dir / name).string(), std::ios::binary) << contents;
    try {
      lt::open_tokenizer((dir / name).string());
      ADD_FAILURE() << name << " opened";
    } catch (const lt::Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error("text.txt", "hello world, not a tokenizer", "neither");
  expect_error("empty.model", "", "empty");
  expect_error("config.json", R"({"vocab_size": 32000})", "no \"model\"");
  expect_error("broken.json", R"({"model": )", "neither");
  expect_error("wordpiece.json", R"({"model": {"type": "WordPiece", "vocab": {}}})", "WordPiece");
  EXPECT_THROW(lt::open_tokenizer((dir / "missing.model").string()), lt::Error);
  EXPECT_EQ(lt::open_tokenizer(asset("llama2"))->kind(), "sentencepiece");  // a model directory
  std::filesystem::create_directories(dir / "nodir");
  EXPECT_THROW(lt::open_tokenizer((dir / "nodir").string()), lt::Error);
  EXPECT_THROW(a->decode({32000}), lt::Error);
}

}  // namespace
