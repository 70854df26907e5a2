// SentencePiece models (tokenizer.model), read and encoded natively.
//
// Why not libsentencepiece: Debian's libsentencepiece.so.0 exports its own bundled protobuf 3.14
// runtime (≈1600 google::protobuf symbols), and this binary also links libprotobuf 3.21 for the
// TensorBoard writer; whichever comes first in the link wins, and sentencepiece then aborts when
// it loads a model ("compiled against version 3.14.0 ... installed version 3.21.12"). So the
// ModelProto is read here from its protobuf wire format, and BPE models are encoded by our
// BpeEngine with merge priority = the merged piece's score, which is exactly sentencepiece's BPE
// rule. Parity is checked against Hugging Face's outputs and Python sentencepiece (bench script).
// Supported: model_type BPE, normalizer "identity" (with add_dummy_prefix,
// remove_extra_whitespaces, escape_whitespaces) — the Llama 2 and llama2.c models; anything
// else is an error naming the field.
#include <algorithm>
#include <cstring>
#include <map>

#include "core/error.h"
#include "core/log.h"
#include "data/bpe.h"
#include "data/tokenizer.h"
#include "data/utf8.h"

namespace lt::data {

namespace {

// ModelProto fields used (sentencepiece_model.proto): 1 = pieces {1 = piece, 2 = score (float),
// 3 = type: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte};
// 2 = trainer_spec {3 = model_type (1 unigram, 2 BPE), 35 = byte_fallback, 40..43 = unk/bos/eos/pad
// ids}; 3 = normalizer_spec {1 = name, 3 = add_dummy_prefix, 4 = remove_extra_whitespaces,
// 5 = escape_whitespaces}. Defaults are the proto's.
struct SpPiece {
  std::string text;
  float score = 0;
  int type = 1;
};
struct SpModel {
  std::vector<SpPiece> pieces;
  int model_type = 1;
  bool byte_fallback = false;
  int unk_id = 0, bos_id = 1, eos_id = 2, pad_id = -1;
  std::string normalizer = "nmt_nfkc";
  bool add_dummy_prefix = true, remove_extra_whitespaces = true, escape_whitespaces = true;
};
enum PieceType { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

struct Wire {
  const uint8_t* p;
  const uint8_t* end;
  bool ok = true;
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; p < end && shift < 64; shift += 7) {
      uint8_t b = *p++;
      v |= uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    ok = false;
    return 0;
  }
  // Calls f(field, wiretype, varint value, bytes) for each field; skips fixed-width ones.
  template <typename F> void each(F f) {
    while (ok && p < end) {
      uint64_t tag = varint();
      int field = int(tag >> 3), type = int(tag & 7);
      if (type == 0) {
        uint64_t v = varint();
        f(field, type, v, std::string_view());
      } else if (type == 2) {
        uint64_t n = varint();
        if (n > uint64_t(end - p)) { ok = false; return; }
        f(field, type, 0, std::string_view(reinterpret_cast<const char*>(p), n));
        p += n;
      } else if (type == 5) {
        if (end - p < 4) { ok = false; return; }
        uint32_t v;
        std::memcpy(&v, p, 4);
        p += 4;
        f(field, type, v, std::string_view());
      } else if (type == 1) {
        p += 8;
      } else {
        ok = false;
      }
    }
    if (p > end) ok = false;
  }
};

Wire wire(std::string_view s) {
  auto b = reinterpret_cast<const uint8_t*>(s.data());
  return Wire{b, b + s.size()};
}

int64_t as_int(uint64_t v) { return int64_t(int32_t(uint32_t(v))); }  // proto int32 (negatives sign-extend)

bool read_model(const std::string& bytes, SpModel& spec) {
  Wire top = wire(bytes);
  bool ok = true;
  top.each([&](int field, int type, uint64_t, std::string_view sub) {
    if (type != 2) return;
    if (field == 1) {
      SpPiece piece;
      Wire w = wire(sub);
      w.each([&](int f, int t, uint64_t v, std::string_view s) {
        if (f == 1 && t == 2) piece.text = std::string(s);
        if (f == 2 && t == 5) {
          uint32_t u = uint32_t(v);
          std::memcpy(&piece.score, &u, 4);
        }
        if (f == 3 && t == 0) piece.type = int(v);
      });
      ok = ok && w.ok;
      spec.pieces.push_back(std::move(piece));
    } else if (field == 2) {
      Wire w = wire(sub);
      w.each([&](int f, int t, uint64_t v, std::string_view) {
        if (t != 0) return;
        if (f == 3) spec.model_type = int(v);
        if (f == 35) spec.byte_fallback = v != 0;
        if (f == 40) spec.unk_id = int(as_int(v));
        if (f == 41) spec.bos_id = int(as_int(v));
        if (f == 42) spec.eos_id = int(as_int(v));
        if (f == 43) spec.pad_id = int(as_int(v));
      });
      ok = ok && w.ok;
    } else if (field == 3) {
      Wire w = wire(sub);
      w.each([&](int f, int t, uint64_t v, std::string_view s) {
        if (f == 1 && t == 2) spec.normalizer = std::string(s);
        if (t != 0) return;
        if (f == 3) spec.add_dummy_prefix = v != 0;
        if (f == 4) spec.remove_extra_whitespaces = v != 0;
        if (f == 5) spec.escape_whitespaces = v != 0;
      });
      ok = ok && w.ok;
    }
  });
  return ok && top.ok;
}

class SentencePieceTokenizer : public Tokenizer {
 public:
  SentencePieceTokenizer(const std::string& path, const std::string& bytes) {
    path_ = path;
    hash_ = tokenizer_file_hash(bytes);
    if (!read_model(bytes, m_) || m_.pieces.empty())
      fail("{} is neither a SentencePiece model (tokenizer.model) nor a Hugging Face tokenizer.json", path);
    const int n = int(m_.pieces.size());
    if (m_.model_type != 2)
      fail("{}: SentencePiece model_type {} is not supported (only BPE = 2, as Llama uses)", path, m_.model_type);
    if (m_.normalizer != "identity")
      fail("{}: SentencePiece normalizer \"{}\" is not supported (only \"identity\", as Llama uses)", path,
           m_.normalizer);
    if (!m_.escape_whitespaces) fail("{}: normalizer_spec.escape_whitespaces=false is not supported", path);
    for (int id : {m_.unk_id, m_.bos_id, m_.eos_id})
      if (id >= n) fail("{}: special id {} is outside the {} pieces", path, id, n);
    build_engine();
  }

  void encode_append(std::string_view text, std::vector<int32_t>& out) const override {
    if (m_.remove_extra_whitespaces) {  // trim spaces and collapse runs, as sentencepiece does
      std::string t;
      for (char c : text) {
        if (c == ' ' && (t.empty() || t.back() == ' ')) continue;
        t += c;
      }
      if (!t.empty() && t.back() == ' ') t.pop_back();
      return encode_normalized(t, out);
    }
    encode_normalized(text, out);
  }

  // Control pieces vanish, byte runs become their bytes (U+FFFD per byte when not valid UTF-8),
  // unknown is " ⁇ ", ▁ is a space, and the dummy-prefix space of the first piece is dropped.
  std::string decode(const std::vector<int32_t>& ids) const override {
    std::string out, run;
    bool first = true;
    auto flush = [&] {
      if (run.empty()) return;
      std::string tmp = run;
      if (utf8_sanitize(tmp) == 0) out += run;
      else
        for (size_t k = 0; k < run.size(); ++k) out += "\xef\xbf\xbd";
      run.clear();
    };
    for (int32_t id : ids) {
      LT_CHECK(id >= 0 && id < vocab_size(), "token id {} is outside the vocabulary [0, {})", id, vocab_size());
      const SpPiece& p = m_.pieces[size_t(id)];
      if (p.type == kControl) continue;
      if (p.type == kByte) {
        run += char(byte_value_[size_t(id)]);
        first = false;
        continue;
      }
      flush();
      std::string text = p.type == kUnknown ? std::string(" \xe2\x81\x87 ") : p.text;
      size_t at = out.size();
      for (size_t i = 0; i < text.size();) {
        if (text.compare(i, 3, "\xe2\x96\x81") == 0) out += ' ', i += 3;
        else out += text[i++];
      }
      if (first && m_.add_dummy_prefix && p.type != kUnknown && out.size() > at && out[at] == ' ') out.erase(at, 1);
      first = false;
    }
    flush();
    return out;
  }
  int vocab_size() const override { return int(m_.pieces.size()); }
  int bos_id() const override { return m_.bos_id; }
  int eos_id() const override { return m_.eos_id; }
  std::string piece(int id) const override {
    LT_CHECK(id >= 0 && id < vocab_size(), "token id {} is outside the vocabulary [0, {})", id, vocab_size());
    return m_.pieces[size_t(id)].text;
  }
  std::string kind() const override { return "sentencepiece"; }

 private:
  void encode_normalized(std::string_view text, std::vector<int32_t>& out) const {
    if (text.empty()) return;
    std::string norm = m_.add_dummy_prefix ? "\xe2\x96\x81" : "";
    norm.reserve(text.size() + text.size() / 4 + 3);
    for (char c : text) {
      if (c == ' ') norm += "\xe2\x96\x81";
      else norm += c;
    }
    engine_.encode(norm, out);
  }

  // Merges: every split of a normal piece into two normal pieces, ranked by the merged piece's
  // score (equal scores share a rank, so ties go leftmost as in sentencepiece).
  void build_engine() {
    const int n = vocab_size();
    std::vector<std::string> texts(static_cast<size_t>(n));
    std::vector<int32_t> byte_ids(256, -1);
    byte_value_.assign(size_t(n), 0);
    std::map<std::string, int32_t> normal;
    for (int id = 0; id < n; ++id) {
      const SpPiece& p = m_.pieces[size_t(id)];
      texts[size_t(id)] = p.text;
      if (p.type == kByte) {
        unsigned b = 0;
        if (std::sscanf(p.text.c_str(), "<0x%02X>", &b) != 1 || b > 255)
          fail("{}: byte piece {} \"{}\" is not <0xXX>", path_, id, p.text);
        byte_ids[b] = id;
        byte_value_[size_t(id)] = uint8_t(b);
      } else if (p.type == kUserDefined) {
        fail("{}: user-defined pieces (id {} \"{}\") are not supported", path_, id, p.text);
      } else if (p.type == kNormal) {
        normal.emplace(p.text, id);
      }
    }
    if (!m_.byte_fallback) byte_ids.assign(256, -1);
    std::vector<BpeMerge> merges;
    std::vector<float> scores;
    for (const auto& [p, id] : normal) {
      for (size_t i = 0; i < p.size();) {
        size_t len = utf8_seq_len(p, i);
        if (len == 0) fail("{}: piece {} is not valid UTF-8", path_, id);
        // sentencepiece merges before byte fallback, so a piece holding a character that is not
        // itself a piece could form there but never here.
        if (!normal.count(p.substr(i, len)))
          fail("{}: piece {} \"{}\" contains a character that is not a piece; not supported", path_, id, p);
        if (i > 0) {
          auto a = normal.find(p.substr(0, i)), b = normal.find(p.substr(i));
          if (a != normal.end() && b != normal.end()) {
            merges.push_back({a->second, b->second, id, -1});
            scores.push_back(m_.pieces[size_t(id)].score);
          }
        }
        i += len;
      }
    }
    std::vector<float> distinct = scores;
    std::sort(distinct.begin(), distinct.end(), std::greater<float>());
    distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
    for (size_t k = 0; k < merges.size(); ++k)
      merges[k].rank = int32_t(std::lower_bound(distinct.begin(), distinct.end(), scores[k], std::greater<float>()) -
                               distinct.begin());
    engine_.init(std::move(texts), merges, byte_ids, m_.unk_id);
  }

  SpModel m_;
  std::vector<uint8_t> byte_value_;
  BpeEngine engine_;
};

}  // namespace

std::unique_ptr<Tokenizer> open_sentencepiece(const std::string& path, const std::string& bytes) {
  return std::make_unique<SentencePieceTokenizer>(path, bytes);
}

}  // namespace lt::data
