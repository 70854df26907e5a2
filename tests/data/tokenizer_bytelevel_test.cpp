// Byte-level tokenizer.json behaviour on a small hand-made file whose ids follow from its merges
// by hand: added tokens matched before BPE, ignore_merges, decode skipping special tokens,
// BOS/EOS/stop ids from tokenizer_config.json, and clear errors for what is not implemented.
// (The real Llama 3 file against two independent implementations: llama3_tokenizer_test.sh.)
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file.h"
#include "data/tokenizer.h"
#include "test_util.h"

namespace lt {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// GPT-2's byte -> character map, as its encoder.py states it: printable Latin-1 bytes map to
// themselves, the rest to U+0100 + their rank among the others.
std::string byte_char(int b) {
  bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  int cp = b;
  if (!printable) {
    cp = 256;
    for (int k = 0; k < b; ++k) cp += !((k >= 33 && k <= 126) || (k >= 161 && k <= 172) || (k >= 174 && k <= 255));
  }
  std::string s;
  if (cp < 0x80) s += char(cp);
  else s += char(0xc0 | (cp >> 6)), s += char(0x80 | (cp & 0x3f));
  return s;
}

// Bytes are ids 0..255; merges: "h e" -> 256, "l l" -> 257, "he ll" -> 258, "Ġ w" -> 259,
// plus the whole-word token "Ġworld" (260) reachable only through ignore_merges.
json small_tokenizer(bool ignore_merges) {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_char(b)] = b;
  vocab["he"] = 256;
  vocab["ll"] = 257;
  vocab["hell"] = 258;
  vocab["Ġw"] = 259;
  vocab["Ġworld"] = 260;
  json added = json::array();
  const char* names[] = {"<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|eot|>", "plain"};
  for (int i = 0; i < 5; ++i)
    added.push_back({{"id", 261 + i}, {"content", names[i]}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", false}, {"special", i < 4}});
  return {{"version", "1.0"},
          {"added_tokens", added},
          {"normalizer", nullptr},
          {"pre_tokenizer",
           {{"type", "Sequence"},
            {"pretokenizers",
             {{{"type", "Split"},
               {"pattern", {{"Regex", R"( ?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)"}}},
               {"behavior", "Isolated"},
               {"invert", false}},
              {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}}}}},
          {"decoder", {{"type", "ByteLevel"}}},
          {"model",
           {{"type", "BPE"},
            {"ignore_merges", ignore_merges},
            {"vocab", vocab},
            {"merges", {"h e", "l l", "he ll", "Ġ w"}}}}};
}

std::unique_ptr<Tokenizer> open_json(const fs::path& dir, const json& j, const json& config = nullptr) {
  fs::create_directories(dir);
  write_file_atomic((dir / "tokenizer.json").string(), j.dump());
  if (!config.is_null()) write_file_atomic((dir / "tokenizer_config.json").string(), config.dump());
  return open_tokenizer((dir / "tokenizer.json").string());
}

TEST(ByteLevelTokenizer, MergesAddedTokensAndDecode) {
  auto dir = test::scratch_dir("bytelevel_small");
  auto tok = open_json(dir, small_tokenizer(true));
  EXPECT_EQ(tok->vocab_size(), 266);
  // "hello" -> he ll o; " world" is a token itself (ignore_merges); "!" a byte.
  EXPECT_EQ(tok->encode("hello world!"), (std::vector<int32_t>{258, 'o', 260, '!'}));
  // Added tokens are cut out first (longest first: <|eot_id|> before <|eot|>), also inside words.
  EXPECT_EQ(tok->encode("he<|eot_id|>he<|eot|>plain"), (std::vector<int32_t>{256, 263, 256, 264, 265}));
  EXPECT_EQ(tok->encode("<|eot_id").size(), 8u);  // a near miss is text: 8 byte tokens
  // Decode skips special added tokens, keeps the others, and joins bytes across tokens.
  EXPECT_EQ(tok->decode({258, 'o', 263, 260, 265}), "hello worldplain");
  EXPECT_EQ(tok->decode({0xc3, 0xa9}), "\xc3\xa9");  // é from two byte tokens
  EXPECT_EQ(tok->decode({0xc3, 'x'}), "\xef\xbf\xbdx");  // a cut character: U+FFFD
  EXPECT_EQ(tok->piece(260), "Ġworld");
  // Without ignore_merges " world" goes through the merges: Ġw o r l d.
  auto plain = open_json(dir / "merges", small_tokenizer(false));
  EXPECT_EQ(plain->encode(" world"), (std::vector<int32_t>{259, 'o', 'r', 'l', 'd'}));
  // Invalid UTF-8 is replaced by U+FFFD before the regex, as prepare does.
  EXPECT_EQ(tok->decode(tok->encode("a\xff" "b")), "a\xef\xbf\xbd" "b");
}

TEST(ByteLevelTokenizer, BosEosAndStopIdsFromTokenizerConfig) {
  auto dir = test::scratch_dir("bytelevel_config");
  auto tok = open_json(dir / "none", small_tokenizer(true));  // Llama 3's names by default
  EXPECT_EQ(tok->bos_id(), 261);
  EXPECT_EQ(tok->eos_id(), 262);
  EXPECT_EQ(tok->stop_ids(), (std::vector<int32_t>{262, 263}));  // <|end_of_text|>, <|eot_id|>
  auto cfg = open_json(dir / "cfg", small_tokenizer(true),
                       {{"bos_token", "<|eot|>"}, {"eos_token", {{"content", "<|eot_id|>"}}}});
  EXPECT_EQ(cfg->bos_id(), 264);
  EXPECT_EQ(cfg->eos_id(), 263);
  EXPECT_EQ(cfg->stop_ids(), (std::vector<int32_t>{263, 262}));
  try {
    open_json(dir / "bad", small_tokenizer(true), {{"eos_token", "</s>"}});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("eos_token \"</s>\" is not a token"), std::string::npos) << e.what();
  }
}

TEST(ByteLevelTokenizer, UnsupportedComponentsAreClearErrors) {
  auto dir = test::scratch_dir("bytelevel_errors");
  auto error_of = [&](json j) {
    try {
      open_json(dir, j);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  json j = small_tokenizer(true);
  j["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "MergedWithPrevious";
  EXPECT_NE(error_of(j).find("behavior \"MergedWithPrevious\""), std::string::npos) << error_of(j);
  j = small_tokenizer(true);
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(unclosed";
  EXPECT_NE(error_of(j).find("cannot compile the pre-tokenizer regex"), std::string::npos) << error_of(j);
  j = small_tokenizer(true);
  j["pre_tokenizer"]["pretokenizers"][1]["type"] = "Metaspace";
  EXPECT_NE(error_of(j).find("pre_tokenizer Metaspace"), std::string::npos) << error_of(j);
  j = small_tokenizer(true);
  j["decoder"] = {{"type", "WordPiece"}};
  EXPECT_NE(error_of(j).find("decoder must be ByteLevel"), std::string::npos) << error_of(j);
  j = small_tokenizer(true);
  j["added_tokens"][2]["lstrip"] = true;
  EXPECT_NE(error_of(j).find("sets lstrip"), std::string::npos) << error_of(j);
  j = small_tokenizer(true);
  j["model"]["vocab"].erase(byte_char(' '));
  EXPECT_NE(error_of(j).find("no token for byte 0x20"), std::string::npos) << error_of(j);
}

}  // namespace
}  // namespace lt
