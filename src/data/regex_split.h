// RegexSplitter: the `Split` pre-tokenizer of tokenizer.json (behaviour "Isolated"), on PCRE2
// with UTF + UCP (Unicode properties for \p{L}, \p{N}, \s, case folding) and JIT.
//
// split() cuts a text into the pieces BPE then encodes one by one: every match of the pattern is
// a piece, and so is every stretch between two matches (with Llama 3's pattern there are none).
// Patterns are written for the Rust tokenizers' regex engine (Oniguruma); Llama 3's and GPT-2's
// mean the same in PCRE2's syntax. Compile errors name the pattern and the offset.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace lt::data {

class RegexSplitter {
 public:
  // `where` prefixes compile errors (the file and JSON key).
  RegexSplitter(const std::string& pattern, const std::string& where);
  ~RegexSplitter();
  RegexSplitter(const RegexSplitter&) = delete;
  RegexSplitter& operator=(const RegexSplitter&) = delete;
  // Appends the pieces of `text` (views into it, in order, covering it exactly). `text` must be
  // valid UTF-8. Thread-safe.
  void split(std::string_view text, std::vector<std::string_view>& pieces) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lt::data
