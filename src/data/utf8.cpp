#include "data/utf8.h"

namespace lt::data {

size_t utf8_seq_len(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return uint8_t(s[i + k]); };
  uint8_t c = b(0);
  if (c < 0x80) return 1;
  size_t n;
  uint32_t min;
  if ((c & 0xe0) == 0xc0) n = 2, min = 0x80;
  else if ((c & 0xf0) == 0xe0) n = 3, min = 0x800;
  else if ((c & 0xf8) == 0xf0) n = 4, min = 0x10000;
  else return 0;
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k)
    if ((b(k) & 0xc0) != 0x80) return 0;
  uint32_t cp = utf8_decode(s, i, n);
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return n;
}

uint32_t utf8_decode(std::string_view s, size_t i, size_t n) {
  const auto b = [&](size_t k) { return uint32_t(uint8_t(s[i + k])); };
  switch (n) {
    case 1: return b(0);
    case 2: return ((b(0) & 0x1f) << 6) | (b(1) & 0x3f);
    case 3: return ((b(0) & 0x0f) << 12) | ((b(1) & 0x3f) << 6) | (b(2) & 0x3f);
    default: return ((b(0) & 0x07) << 18) | ((b(1) & 0x3f) << 12) | ((b(2) & 0x3f) << 6) | (b(3) & 0x3f);
  }
}

void utf8_append(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xc0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += char(0xe0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3f));
    out += char(0x80 | (cp & 0x3f));
  } else {
    out += char(0xf0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3f));
    out += char(0x80 | ((cp >> 6) & 0x3f));
    out += char(0x80 | (cp & 0x3f));
  }
}

size_t utf8_sanitize(std::string& s) {
  size_t i = 0;
  while (i < s.size()) {  // fast scan: most text is valid
    size_t n = utf8_seq_len(s, i);
    if (n == 0) break;
    i += n;
  }
  if (i == s.size()) return 0;
  std::string out = s.substr(0, i);
  size_t bad = 0;
  while (i < s.size()) {
    size_t n = utf8_seq_len(s, i);
    if (n == 0) {
      utf8_append(out, 0xfffd);
      ++bad;
      ++i;
    } else {
      out.append(s, i, n);
      i += n;
    }
  }
  s = std::move(out);
  return bad;
}

std::string utf8_lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  const auto in = [&](size_t k, uint8_t lo, uint8_t hi) { return k < s.size() && uint8_t(s[k]) >= lo && uint8_t(s[k]) <= hi; };
  size_t i = 0;
  while (i < s.size()) {
    if (size_t n = utf8_seq_len(s, i)) {
      out.append(s, i, n);
      i += n;
      continue;
    }
    // The lead byte says how many continuation bytes follow and the range of the first one
    // (which excludes overlong forms, surrogates and code points above U+10FFFF).
    const uint8_t c = uint8_t(s[i]);
    size_t need = 0;
    uint8_t lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) need = 1;
    else if (c >= 0xe0 && c <= 0xef) need = 2, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
    else if (c >= 0xf0 && c <= 0xf4) need = 3, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
    size_t k = 1;
    if (need > 0 && in(i + 1, lo, hi))
      for (k = 2; k <= need && in(i + k, 0x80, 0xbf); ++k) {
      }
    utf8_append(out, 0xfffd);
    i += k;
  }
  return out;
}

std::string latin1_to_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size() + s.size() / 16);
  for (char c : s) utf8_append(out, uint8_t(c));
  return out;
}

}  // namespace lt::data
