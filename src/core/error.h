// One error type for the whole system. Messages name the thing that is wrong (a file,
// a config key, a tensor) and what was expected, so the CLI can print them as they are.
#pragma once
#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace lt {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

// Re-throws `e` with `context` in front: "reading ckpt/meta.json: <original message>".
[[noreturn]] void rethrow_with_context(const std::exception& e, const std::string& context);

}  // namespace lt

#define LT_CHECK(cond, ...)              \
  do {                                   \
    if (!(cond)) ::lt::fail(__VA_ARGS__); \
  } while (0)
