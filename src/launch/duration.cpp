#include "launch/duration.h"

#include <cctype>
#include <cmath>
#include <cstdlib>

#include "core/error.h"

namespace lt {

double parse_duration(const std::string& text, const std::string& what) {
  auto bad = [&](const std::string& why) {
    fail("{}: cannot parse '{}' as a duration ({}); expected a positive number with a unit d, h, m or s, "
         "e.g. 2d, 36h, 90m, 3600s, 1h30m (a bare number means seconds)",
         what, text, why);
  };
  if (text.empty()) bad("empty");
  double total = 0;
  size_t i = 0;
  int parts = 0;
  while (i < text.size()) {
    size_t start = i;
    while (i < text.size() && (std::isdigit((unsigned char)text[i]) || text[i] == '.')) ++i;
    if (i == start) bad(fmt::format("expected a number at position {}", start + 1));
    std::string num = text.substr(start, i - start);
    char* end = nullptr;
    double v = std::strtod(num.c_str(), &end);
    if (end != num.c_str() + num.size() || !std::isfinite(v)) bad(fmt::format("'{}' is not a number", num));
    double unit = 1;
    if (i < text.size()) {
      switch (text[i]) {
        case 'd': unit = 86400; break;
        case 'h': unit = 3600; break;
        case 'm': unit = 60; break;
        case 's': unit = 1; break;
        default: bad(fmt::format("unknown unit '{}'", text[i]));
      }
      ++i;
    } else if (parts > 0) {
      bad("a number without a unit after another part");
    }
    total += v * unit;
    ++parts;
  }
  if (!(total > 0)) bad("must be greater than zero");
  return total;
}

}  // namespace lt
