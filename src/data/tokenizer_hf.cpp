// Hugging Face tokenizer.json with a BPE model and no pre-tokenizer (the Llama 2 file and ones
// like it; byte-level files such as Llama 3's go to tokenizer_bytelevel.cpp), implemented here: normalizer (Sequence of Prepend / Replace), BPE by merge rank with byte fallback, and the
// decoder (Sequence of Replace / ByteFallback / Fuse / Strip). Unsupported components are errors
// naming the JSON key, rather than silently different ids.
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/bpe.h"
#include "data/tokenizer.h"
#include "data/tokenizer_json.h"
#include "data/utf8.h"

namespace lt::data {

namespace {

using nlohmann::json;

struct NormalizerStep {
  enum Kind { prepend, replace } kind;
  std::string a, b;  // prepend: a; replace: a -> b
};
struct DecoderStep {
  enum Kind { replace, byte_fallback, fuse, strip } kind;
  std::string a, b;
  int start = 0, stop = 0;
};

std::string replace_all(std::string_view s, const std::string& from, const std::string& to) {
  if (from.empty()) return std::string(s);
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  for (size_t j; (j = s.find(from, i)) != std::string_view::npos; i = j + from.size()) {
    out.append(s, i, j - i);
    out += to;
  }
  out.append(s, i, std::string_view::npos);
  return out;
}

std::string string_pattern(const json& step, const std::string& where) {
  if (!step.contains("pattern") || !step["pattern"].contains("String"))
    fail("{}: only {{\"String\": ...}} patterns are supported", where);
  return step["pattern"]["String"].get<std::string>();
}

class HfBpeTokenizer : public Tokenizer {
 public:
  HfBpeTokenizer(const std::string& path, const std::string& hash, const json& j) {
    path_ = path;
    hash_ = hash;
    try {
      load(j);
    } catch (const json::exception& e) {
      fail("{}: unexpected tokenizer.json structure: {}", path, e.what());
    }
  }

  void encode_append(std::string_view text, std::vector<int32_t>& out) const override {
    if (text.empty()) return;
    std::string s(text);
    for (const auto& n : normalizer_) {
      if (n.kind == NormalizerStep::prepend) s = n.a + s;  // HF prepends only to non-empty text
      else s = replace_all(s, n.a, n.b);
    }
    engine_.encode(s, out);
  }

  std::string decode(const std::vector<int32_t>& ids) const override {
    std::vector<std::string> toks;
    for (int32_t id : ids) {
      LT_CHECK(id >= 0 && id < engine_.size(), "token id {} is outside the vocabulary [0, {})", id, engine_.size());
      if (!special_[size_t(id)]) toks.push_back(engine_.piece(id));
    }
    for (const auto& d : decoder_) apply(d, toks);
    std::string out;
    for (const auto& t : toks) out += t;
    return out;
  }
  int vocab_size() const override { return engine_.size(); }
  int bos_id() const override { return bos_; }
  int eos_id() const override { return eos_; }
  std::string piece(int id) const override {
    LT_CHECK(id >= 0 && id < engine_.size(), "token id {} is outside the vocabulary [0, {})", id, engine_.size());
    return engine_.piece(id);
  }
  std::string kind() const override { return "hf-tokenizer-json"; }

 private:
  void load(const json& j) {
    const json& m = j["model"];
    check_bpe_model(m, path_);

    const json& vocab = m.at("vocab");
    std::vector<std::string> pieces(vocab.size());
    for (auto it = vocab.begin(); it != vocab.end(); ++it) {
      int64_t id = it.value().get<int64_t>();
      if (id < 0 || id >= int64_t(pieces.size()) || !pieces[size_t(id)].empty())
        fail("{}: model.vocab ids are not a permutation of 0..{} (at \"{}\")", path_, pieces.size() - 1, it.key());
      pieces[size_t(id)] = it.key();
    }
    std::unordered_map<std::string, int32_t> ids;
    for (size_t i = 0; i < pieces.size(); ++i) ids.emplace(pieces[i], int32_t(i));
    auto id_of = [&](const std::string& p) {
      auto it = ids.find(p);
      return it == ids.end() ? -1 : it->second;
    };
    std::vector<BpeMerge> merges = parse_bpe_merges(m.at("merges"), ids, path_);
    std::vector<int32_t> byte_ids(256, -1);
    if (m.value("byte_fallback", false))
      for (int b = 0; b < 256; ++b) byte_ids[size_t(b)] = id_of(fmt::format("<0x{:02X}>", b));
    int32_t unk = -1;
    if (m.contains("unk_token") && m["unk_token"].is_string()) unk = id_of(m["unk_token"].get<std::string>());
    if (unk < 0) unk = 0;

    special_.assign(pieces.size(), 0);
    if (j.contains("added_tokens"))
      for (const auto& t : j["added_tokens"]) {
        int64_t id = t.at("id").get<int64_t>();
        if (id >= 0 && id < int64_t(pieces.size()) && t.value("special", false)) special_[size_t(id)] = 1;
      }
    bos_ = id_of("<s>");
    eos_ = id_of("</s>");

    if (j.contains("normalizer") && !j["normalizer"].is_null()) {
      const json& n = j["normalizer"];
      std::vector<json> steps = n.value("type", "") == "Sequence" ? n.at("normalizers").get<std::vector<json>>()
                                                                    : std::vector<json>{n};
      for (const auto& s : steps) {
        std::string t = s.value("type", "?");
        if (t == "Prepend") normalizer_.push_back({NormalizerStep::prepend, s.at("prepend").get<std::string>(), ""});
        else if (t == "Replace")
          normalizer_.push_back({NormalizerStep::replace, string_pattern(s, path_ + ": normalizer Replace"),
                                 s.at("content").get<std::string>()});
        else fail("{}: normalizer \"{}\" is not supported (Prepend, Replace are)", path_, t);
      }
    }
    if (j.contains("decoder") && !j["decoder"].is_null()) {
      const json& d = j["decoder"];
      std::vector<json> steps =
          d.value("type", "") == "Sequence" ? d.at("decoders").get<std::vector<json>>() : std::vector<json>{d};
      for (const auto& s : steps) {
        std::string t = s.value("type", "?");
        DecoderStep step{};
        if (t == "Replace") {
          step = {DecoderStep::replace, string_pattern(s, path_ + ": decoder Replace"), s.at("content").get<std::string>()};
        } else if (t == "ByteFallback") {
          step.kind = DecoderStep::byte_fallback;
        } else if (t == "Fuse") {
          step.kind = DecoderStep::fuse;
        } else if (t == "Strip") {
          step.kind = DecoderStep::strip;
          step.a = s.at("content").get<std::string>();
          step.start = s.value("start", 0);
          step.stop = s.value("stop", 0);
        } else {
          fail("{}: decoder \"{}\" is not supported (Replace, ByteFallback, Fuse, Strip are)", path_, t);
        }
        decoder_.push_back(step);
      }
    }
    engine_.init(std::move(pieces), merges, byte_ids, unk);
  }

  static void apply(const DecoderStep& d, std::vector<std::string>& toks) {
    switch (d.kind) {
      case DecoderStep::replace:
        for (auto& t : toks) t = replace_all(t, d.a, d.b);
        break;
      case DecoderStep::fuse: {
        std::string all;
        for (const auto& t : toks) all += t;
        toks.assign(1, all);
        break;
      }
      case DecoderStep::strip:
        for (auto& t : toks) {
          int k = 0;
          while (k < d.start && t.compare(0, d.a.size(), d.a) == 0 && !d.a.empty()) t.erase(0, d.a.size()), ++k;
          k = 0;
          while (k < d.stop && t.size() >= d.a.size() && !d.a.empty() &&
                 t.compare(t.size() - d.a.size(), d.a.size(), d.a) == 0)
            t.erase(t.size() - d.a.size()), ++k;
        }
        break;
      case DecoderStep::byte_fallback: {
        // Runs of <0xXX> become their bytes when those form valid UTF-8, else one U+FFFD per byte.
        std::vector<std::string> out;
        std::string run;
        size_t run_len = 0;
        auto flush = [&] {
          if (run_len == 0) return;
          std::string tmp = run;
          if (utf8_sanitize(tmp) == 0) out.push_back(run);
          else
            for (size_t k = 0; k < run_len; ++k) out.push_back("\xef\xbf\xbd");
          run.clear();
          run_len = 0;
        };
        for (auto& t : toks) {
          unsigned b;
          if (t.size() == 6 && std::sscanf(t.c_str(), "<0x%02X>", &b) == 1) {
            run += char(b);
            ++run_len;
          } else {
            flush();
            out.push_back(std::move(t));
          }
        }
        flush();
        toks = std::move(out);
        break;
      }
    }
  }

  BpeEngine engine_;
  std::vector<NormalizerStep> normalizer_;
  std::vector<DecoderStep> decoder_;
  std::vector<char> special_;
  int bos_ = -1, eos_ = -1;
};

}  // namespace

void check_bpe_model(const json& m, const std::string& path) {
  if (m.value("type", "") != "BPE") fail("{}: model.type is \"{}\", only \"BPE\" is supported", path, m.value("type", "?"));
  if (m.contains("dropout") && !m["dropout"].is_null() && m["dropout"].get<double>() != 0.0)
    fail("{}: model.dropout is set; BPE dropout is not supported", path);
  for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (m.contains(k) && !m[k].is_null() && !m[k].get<std::string>().empty())
      fail("{}: model.{} is not supported", path, k);
}

std::vector<BpeMerge> parse_bpe_merges(const json& ml, const std::unordered_map<std::string, int32_t>& vocab,
                                       const std::string& path) {
  auto id_of = [&](const std::string& p) {
    auto it = vocab.find(p);
    return it == vocab.end() ? -1 : it->second;
  };
  std::vector<BpeMerge> merges;
  merges.reserve(ml.size());
  for (size_t r = 0; r < ml.size(); ++r) {
    std::string a, b;
    if (ml[r].is_string()) {
      const std::string& s = ml[r].get_ref<const std::string&>();
      size_t sp = s.find(' ');
      if (sp == std::string::npos) fail("{}: model.merges[{}] \"{}\" is not \"left right\"", path, r, s);
      a = s.substr(0, sp), b = s.substr(sp + 1);
    } else {
      a = ml[r].at(0).get<std::string>(), b = ml[r].at(1).get<std::string>();
    }
    int32_t ia = id_of(a), ib = id_of(b), im = id_of(a + b);
    if (ia < 0 || ib < 0 || im < 0) fail("{}: model.merges[{}] \"{} {}\" uses a piece not in the vocabulary", path, r, a, b);
    merges.push_back({ia, ib, im, -1});
  }
  return merges;
}

std::unique_ptr<Tokenizer> open_hf_tokenizer_json(const std::string& path, const std::string& bytes) {
  json j;
  try {
    j = json::parse(bytes);
  } catch (const json::exception& e) {
    fail("{} is neither a SentencePiece model nor a valid tokenizer.json: {}", path, e.what());
  }
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object())
    fail("{} is JSON but not a Hugging Face tokenizer.json (no \"model\" object)", path);
  // A pre-tokenizer means byte-level BPE (Llama 3); none, SentencePiece-style BPE (Llama 2).
  if (j.contains("pre_tokenizer") && !j["pre_tokenizer"].is_null())
    return open_byte_level_bpe(path, tokenizer_file_hash(bytes), j);
  return std::make_unique<HfBpeTokenizer>(path, tokenizer_file_hash(bytes), j);
}

}  // namespace lt::data
