// Wall-clock limits as people write them: "2d", "36h", "90m", "3600s", "3600" (seconds), or
// sums like "1d12h" / "1h30m". The seed's MAX_RUN is 2 days.
#pragma once
#include <string>

namespace lt {

// Seconds in `text`; throws lt::Error naming `what` and the accepted forms for anything else
// (empty, negative, zero, an unknown unit, a number without digits, trailing junk).
double parse_duration(const std::string& text, const std::string& what);

}  // namespace lt
