// Byte-level BPE from a Hugging Face tokenizer.json (Llama 3, GPT-2 and the like):
//
//   text ─▶ added tokens (matched first, leftmost-longest; never split further)
//        ─▶ Split pre-tokenizer (regex, "Isolated": PCRE2, data/regex_split.h)
//        ─▶ each piece's bytes, one symbol per byte (GPT-2's byte ↔ printable-character map)
//        ─▶ the whole piece if it is itself a token (ignore_merges), else BPE merges by rank
//
// decode() concatenates the tokens' bytes (skipping special added tokens, as HF's
// skip_special_tokens) and turns them into UTF-8 as Rust's from_utf8_lossy does, so ids that
// cut a character in two decode as the reference decoders do. BOS and EOS are the
// tokenizer_config.json beside the file says (bos_token, eos_token). Components this file does
// not implement are errors naming the JSON key.
#include <algorithm>
#include <array>
#include <filesystem>
#include <unordered_map>

#include "core/error.h"
#include "core/file.h"
#include "data/bpe.h"
#include "data/regex_split.h"
#include "data/tokenizer_json.h"
#include "data/utf8.h"

namespace lt::data {

namespace {

using nlohmann::json;

// GPT-2's bytes_to_unicode: printable Latin-1 bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for
// themselves; the other 68 bytes, in order, take the code points from U+0100 on.
std::array<uint32_t, 256> byte_chars() {
  std::array<uint32_t, 256> m{};
  uint32_t next = 256;
  for (uint32_t b = 0; b < 256; ++b) {
    bool printable = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae);
    m[b] = printable ? b : next++;
  }
  return m;
}

// Llama 3's and GPT-2's pre-tokenizer patterns (GPT-2's is what ByteLevel use_regex applies).
constexpr const char* kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

struct AddedToken {
  std::string content;
  int32_t id;
  bool special;
};

class ByteLevelBpeTokenizer : public Tokenizer {
 public:
  ByteLevelBpeTokenizer(const std::string& path, const std::string& hash, const json& j) {
    path_ = path;
    hash_ = hash;
    try {
      load(j);
      load_config();
    } catch (const json::exception& e) {
      fail("{}: unexpected tokenizer.json structure: {}", path, e.what());
    }
  }

  void encode_append(std::string_view text, std::vector<int32_t>& out) const override {
    std::string fixed;
    if (!valid_utf8(text)) {  // the regex engine needs valid UTF-8; prepare does the same
      fixed = text;
      utf8_sanitize(fixed);
      text = fixed;
    }
    size_t seg = 0, i = 0;
    while (i < text.size()) {
      const AddedToken* t = first_byte_[uint8_t(text[i])] ? added_at(text, i) : nullptr;
      if (!t) {
        ++i;
        continue;
      }
      encode_segment(text.substr(seg, i - seg), out);
      out.push_back(t->id);
      i += t->content.size();
      seg = i;
    }
    encode_segment(text.substr(seg), out);
  }

  std::string decode(const std::vector<int32_t>& ids) const override {
    std::string bytes;
    for (int32_t id : ids) {
      check_id(id);
      if (!special_[size_t(id)]) bytes += raw_[size_t(id)];
    }
    return utf8_lossy(bytes);
  }
  int vocab_size() const override { return int(pieces_.size()); }
  int bos_id() const override { return bos_; }
  int eos_id() const override { return eos_; }
  std::vector<int32_t> stop_ids() const override { return stop_; }
  std::string piece(int id) const override {
    check_id(id);
    return pieces_[size_t(id)];
  }
  std::string kind() const override { return "hf-tokenizer-json"; }

 private:
  void check_id(int id) const {
    LT_CHECK(id >= 0 && id < vocab_size(), "token id {} is outside the vocabulary [0, {})", id, vocab_size());
  }
  static bool valid_utf8(std::string_view s) {
    for (size_t i = 0, n; i < s.size(); i += n)
      if ((n = utf8_seq_len(s, i)) == 0) return false;
    return true;
  }

  // The longest added token starting at text[i], or null.
  const AddedToken* added_at(std::string_view text, size_t i) const {
    for (const AddedToken& t : added_)  // longest first
      if (text.compare(i, t.content.size(), t.content) == 0) return &t;
    return nullptr;
  }

  void encode_segment(std::string_view seg, std::vector<int32_t>& out) const {
    if (seg.empty()) return;
    std::vector<std::string_view> pieces;
    if (splitter_) splitter_->split(seg, pieces);
    else pieces.push_back(seg);
    auto encode = [](const void* self, std::string_view p, std::vector<int32_t>& o) {
      static_cast<const ByteLevelBpeTokenizer*>(self)->encode_piece(p, o);
    };
    for (std::string_view p : pieces) engine_.encode_memoized(p, out, encode, this);
  }

  void encode_piece(std::string_view p, std::vector<int32_t>& out) const {
    if (ignore_merges_)
      if (auto it = raw_ids_.find(p); it != raw_ids_.end()) {
        out.push_back(it->second);
        return;
      }
    std::vector<int32_t> syms(p.size());
    for (size_t k = 0; k < p.size(); ++k) syms[k] = byte_ids_[uint8_t(p[k])];
    engine_.merge(syms);
    out.insert(out.end(), syms.begin(), syms.end());
  }

  void load(const json& j) {
    const json& m = j.at("model");
    check_bpe_model(m, path_);
    if (m.value("byte_fallback", false)) fail("{}: model.byte_fallback with a ByteLevel pre-tokenizer is not supported", path_);
    ignore_merges_ = m.value("ignore_merges", false);
    if (j.contains("normalizer") && !j["normalizer"].is_null())
      fail("{}: normalizer \"{}\" with a ByteLevel pre-tokenizer is not supported", path_,
           j["normalizer"].value("type", "?"));
    const json& dec = j.at("decoder");
    if (dec.is_null() || dec.value("type", "") != "ByteLevel")
      fail("{}: decoder must be ByteLevel for a ByteLevel pre-tokenizer, got {}", path_, dec.dump());
    load_pre_tokenizer(j.at("pre_tokenizer"));

    const json& vocab = m.at("vocab");
    int64_t size = int64_t(vocab.size());
    if (j.contains("added_tokens"))
      for (const auto& t : j["added_tokens"]) size = std::max(size, t.at("id").get<int64_t>() + 1);
    pieces_.assign(size_t(size), "");
    raw_.assign(size_t(size), "");
    special_.assign(size_t(size), 0);
    std::vector<char> seen(size_t(size), 0);
    std::array<int32_t, 0x200> char_byte;  // byte-level character -> byte
    char_byte.fill(-1);
    const auto chars = byte_chars();
    for (int b = 0; b < 256; ++b) char_byte[chars[size_t(b)]] = b;
    for (auto it = vocab.begin(); it != vocab.end(); ++it) {
      int64_t id = it.value().get<int64_t>();
      if (id < 0 || id >= size || seen[size_t(id)]) fail("{}: model.vocab id {} (\"{}\") is out of range or repeated", path_, id, it.key());
      seen[size_t(id)] = 1;
      pieces_[size_t(id)] = it.key();
      // The piece's bytes: every character must be one of the 256 byte characters.
      const std::string& p = it.key();
      std::string& raw = raw_[size_t(id)];
      for (size_t i = 0, n; i < p.size(); i += n) {
        n = utf8_seq_len(p, i);
        uint32_t c = n ? utf8_decode(p, i, n) : 0xffffffffu;
        if (n == 0 || c >= char_byte.size() || char_byte[c] < 0)
          fail("{}: model.vocab piece \"{}\" is not byte-level (character at byte {})", path_, p, i);
        raw += char(char_byte[c]);
      }
      raw_ids_.emplace(raw, int32_t(id));
    }
    for (int b = 0; b < 256; ++b) {
      std::string one;
      utf8_append(one, chars[size_t(b)]);
      auto it = raw_ids_.find(std::string(1, char(b)));
      if (it == raw_ids_.end() || pieces_[size_t(it->second)] != one)
        fail("{}: model.vocab has no token for byte 0x{:02X} (\"{}\"): not a byte-level vocabulary", path_, b, one);
      byte_ids_[size_t(b)] = it->second;
    }
    if (j.contains("added_tokens"))
      for (const auto& t : j["added_tokens"]) {
        AddedToken a{t.at("content").get<std::string>(), t.at("id").get<int32_t>(), t.value("special", false)};
        for (const char* flag : {"single_word", "lstrip", "rstrip"})
          if (t.value(flag, false)) fail("{}: added token \"{}\" sets {}, which is not supported", path_, a.content, flag);
        if (a.content.empty()) fail("{}: added token {} has empty content", path_, a.id);
        if (seen[size_t(a.id)] && pieces_[size_t(a.id)] != a.content)
          fail("{}: added token \"{}\" reuses id {} of \"{}\"", path_, a.content, a.id, pieces_[size_t(a.id)]);
        seen[size_t(a.id)] = 1;
        pieces_[size_t(a.id)] = raw_[size_t(a.id)] = a.content;
        special_[size_t(a.id)] = a.special;
        first_byte_[uint8_t(a.content[0])] = 1;
        added_.push_back(std::move(a));
      }
    std::stable_sort(added_.begin(), added_.end(),
                     [](const AddedToken& a, const AddedToken& b) { return a.content.size() > b.content.size(); });

    std::unordered_map<std::string, int32_t> ids;
    for (auto it = vocab.begin(); it != vocab.end(); ++it) ids.emplace(it.key(), it.value().get<int32_t>());
    std::vector<BpeMerge> merges = parse_bpe_merges(m.at("merges"), ids, path_);
    engine_.init(pieces_, merges, std::vector<int32_t>(256, -1), 0);
  }

  // Sequence[Split(Regex, Isolated), ByteLevel(use_regex false)], or ByteLevel(use_regex true)
  // alone (GPT-2's pattern).
  void load_pre_tokenizer(const json& pt) {
    std::vector<json> steps = pt.value("type", "") == "Sequence" ? pt.at("pretokenizers").get<std::vector<json>>()
                                                                   : std::vector<json>{pt};
    bool byte_level = false;
    for (const auto& s : steps) {
      std::string type = s.value("type", "?"), where = path_ + ": pre_tokenizer " + type;
      if (type == "Split" && !splitter_ && !byte_level) {
        if (!s.contains("pattern") || !s["pattern"].contains("Regex"))
          fail("{}: only {{\"Regex\": ...}} patterns are supported", where);
        if (s.value("behavior", "") != "Isolated" || s.value("invert", false))
          fail("{}: behavior \"{}\" (invert {}) is not supported (\"Isolated\", not inverted, is)", where,
               s.value("behavior", "?"), s.value("invert", false));
        splitter_ = std::make_unique<RegexSplitter>(s["pattern"]["Regex"].get<std::string>(), where);
      } else if (type == "ByteLevel" && !byte_level) {
        byte_level = true;
        if (s.value("add_prefix_space", false)) fail("{}: add_prefix_space true is not supported", where);
        if (s.value("use_regex", true)) {
          if (splitter_) fail("{}: use_regex true after a Split is not supported", where);
          splitter_ = std::make_unique<RegexSplitter>(kGpt2Pattern, where);
        }
      } else {
        fail("{}: not supported here (a Split with a regex followed by ByteLevel is)", where);
      }
    }
    if (!byte_level) fail("{}: pre_tokenizer has no ByteLevel step", path_);
  }

  // BOS / EOS from tokenizer_config.json beside the file (a string or {"content": ...}); without
  // one, Llama 3's names.
  void load_config() {
    std::string bos = "<|begin_of_text|>", eos = "<|end_of_text|>";
    std::filesystem::path cfg = std::filesystem::path(path_).parent_path() / "tokenizer_config.json";
    if (std::filesystem::exists(cfg)) {
      json c;
      try {
        c = json::parse(read_file(cfg.string()));
      } catch (const json::exception& e) {
        fail("{}: not valid JSON: {}", cfg.string(), e.what());
      }
      auto name = [&](const char* key, std::string& out) {
        if (!c.contains(key) || c[key].is_null()) return;
        const json& v = c[key].is_object() ? c[key].at("content") : c[key];
        LT_CHECK(v.is_string(), "{}: '{}' must be a string or {{\"content\": ...}}, got {}", cfg.string(), key, v.dump());
        out = v.get<std::string>();
        LT_CHECK(id_of(out) >= 0, "{}: {} \"{}\" is not a token of {}", cfg.string(), key, out, path_);
      };
      name("bos_token", bos);
      name("eos_token", eos);
    }
    bos_ = id_of(bos);
    eos_ = id_of(eos);
    // generate stops at any end-of-turn or end-of-text token the vocabulary has.
    for (int32_t id : {eos_, id_of("<|eot_id|>"), id_of("<|end_of_text|>"), id_of("<|eom_id|>")})
      if (id >= 0 && std::find(stop_.begin(), stop_.end(), id) == stop_.end()) stop_.push_back(id);
  }
  int32_t id_of(const std::string& piece) const {
    for (const AddedToken& t : added_)
      if (t.content == piece) return t.id;
    return engine_.lookup(piece);
  }

  BpeEngine engine_;
  std::unique_ptr<RegexSplitter> splitter_;
  bool ignore_merges_ = false;
  std::vector<std::string> pieces_, raw_;  // per id: tokenizer.json text, bytes
  std::vector<char> special_;
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> raw_ids_;  // bytes -> vocab id
  std::array<int32_t, 256> byte_ids_{};
  std::vector<AddedToken> added_;  // longest first
  std::array<char, 256> first_byte_{};
  std::vector<int32_t> stop_;
  int bos_ = -1, eos_ = -1;
};

}  // namespace

std::unique_ptr<Tokenizer> open_byte_level_bpe(const std::string& path, const std::string& hash, const json& j) {
  return std::make_unique<ByteLevelBpeTokenizer>(path, hash, j);
}

}  // namespace lt::data
