// Small UTF-8 helpers used by the tokenizers and the corpus readers.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace lt::data {

// Length of the valid UTF-8 sequence starting at s[i] (1..4), or 0 if it is not valid
// (bad lead byte, bad continuation, overlong form, surrogate, > U+10FFFF, truncated).
size_t utf8_seq_len(std::string_view s, size_t i);
// Decodes the valid sequence of length n at s[i].
uint32_t utf8_decode(std::string_view s, size_t i, size_t n);
void utf8_append(std::string& out, uint32_t cp);
// Replaces each invalid byte with U+FFFD; returns how many were replaced.
size_t utf8_sanitize(std::string& s);
// Bytes to valid UTF-8 the way Rust's String::from_utf8_lossy and WHATWG TextDecoder do: each
// maximal prefix of a valid sequence that is cut short (or a lone bad byte) becomes one U+FFFD.
std::string utf8_lossy(std::string_view s);
// ISO-8859-1 bytes to UTF-8 (every byte is the code point of the same value).
std::string latin1_to_utf8(std::string_view s);

}  // namespace lt::data
