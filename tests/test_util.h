// Helpers shared by the tests: paths to the source tree and a scratch directory.
#pragma once
#include <filesystem>
#include <string>

namespace lt::test {

inline std::string source_path(const std::string& rel) { return std::string(LT_SOURCE_DIR) + "/" + rel; }
inline std::string binary_path() { return LT_BINARY; }

// A fresh, empty directory under the build tree, removed at the start of each use.
inline std::filesystem::path scratch_dir(const std::string& name) {
  auto p = std::filesystem::current_path() / "test_scratch" / name;
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p;
}

}  // namespace lt::test
