// libFuzzer target: a Hugging Face tokenizer.json must load or throw lt::Error; one that loads
// must encode and decode text (including invalid UTF-8) and reject out-of-range ids with
// lt::Error, never crash or hang.
#include <string>
#include <vector>

#include "core/error.h"
#include "data/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::unique_ptr<lt::Tokenizer> tok;
  try {
    tok = lt::data::open_hf_tokenizer_json("fuzz", std::string(reinterpret_cast<const char*>(data), size));
  } catch (const lt::Error&) {
    return 0;
  }
  try {
    std::vector<int32_t> ids;
    tok->encode_append("Hello wor\xc3\xa9ld \xff\xfe  x", ids);
    std::string text = tok->decode(ids);
    ids.push_back(tok->vocab_size());  // out of range: an error, not a read past the end
    tok->decode(ids);
  } catch (const lt::Error&) {
  }
  try {
    tok->piece(-1);
  } catch (const lt::Error&) {
  }
  return 0;
}
