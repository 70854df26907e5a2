// Tokenizer: text <-> Llama token ids. open_tokenizer(path) picks the implementation from the
// file's content: a SentencePiece model (tokenizer.model; read natively, see tokenizer_sp.cpp) or a Hugging Face
// tokenizer.json with a BPE model (our own implementation: merge ranks, byte fallback, the
// normalizer and decoder the file declares; tokenizer_hf.cpp) — or, when the file has a
// ByteLevel pre-tokenizer (Llama 3), byte-level BPE after a regex split (tokenizer_bytelevel.cpp).
// Anything else is a clear error.
//
// encode() never adds BOS/EOS (callers do, per document). SentencePiece models and Llama 2's
// tokenizer.json never interpret text such as "<s>" as a special token: it is ordinary text.
// Byte-level tokenizer.json files match their added tokens ("<|eot_id|>", ...) in the text
// first, as Hugging Face tokenizers do. Invalid UTF-8 bytes go through byte fallback (prepare
// replaces them with U+FFFD first and counts them). decode() skips control tokens (BOS/EOS/pad,
// special added tokens), turns <0xXX> runs or byte-level pieces back into bytes and drops the
// dummy-prefix space of the first piece, as sentencepiece's DecodeIds and HF
// decode(skip_special_tokens=True) do. All methods are thread-safe.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace lt {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  std::vector<int32_t> encode(std::string_view text) const {
    std::vector<int32_t> ids;
    encode_append(text, ids);
    return ids;
  }
  virtual void encode_append(std::string_view text, std::vector<int32_t>& out) const = 0;
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;
  virtual int vocab_size() const = 0;
  virtual int bos_id() const = 0;  // -1 when the vocabulary has none
  virtual int eos_id() const = 0;
  // Ids that end generation: EOS, plus end-of-turn tokens where the vocabulary has them
  // (Llama 3: <|end_of_text|>, <|eot_id|>, <|eom_id|>).
  virtual std::vector<int32_t> stop_ids() const {
    return eos_id() >= 0 ? std::vector<int32_t>{eos_id()} : std::vector<int32_t>{};
  }
  virtual std::string piece(int id) const = 0;  // raw piece text ("▁the", "<0x0A>", "<s>")

  // Identity, recorded in dataset metadata.
  virtual std::string kind() const = 0;  // "sentencepiece" or "hf-tokenizer-json"
  const std::string& path() const { return path_; }
  const std::string& file_hash() const { return hash_; }  // "xxh64:<16 hex>" of the file bytes

 protected:
  std::string path_, hash_;
};

// `path` is a tokenizer file, or a model directory holding tokenizer.model (preferred) or
// tokenizer.json.
std::unique_ptr<Tokenizer> open_tokenizer(const std::string& path);

namespace data {
// Implementations (tokenizer_sp.cpp, tokenizer_hf.cpp); `bytes` is the whole file.
std::unique_ptr<Tokenizer> open_sentencepiece(const std::string& path, const std::string& bytes);
std::unique_ptr<Tokenizer> open_hf_tokenizer_json(const std::string& path, const std::string& bytes);
std::string tokenizer_file_hash(const std::string& bytes);
}  // namespace data

}  // namespace lt
