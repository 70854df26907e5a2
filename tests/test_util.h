// Helpers shared by the tests: paths to the source tree and a scratch directory.
#pragma once
#include <cstdlib>
#include <filesystem>
#include <string>

namespace lt::test {

// The source tree: where the build was configured, or LT_TEST_SOURCE_DIR (a test binary carried
// to another machine, e.g. the GPU device check, reads the fixtures of the checkout there).
inline std::string source_path(const std::string& rel) {
  const char* dir = std::getenv("LT_TEST_SOURCE_DIR");
  return std::string(dir && *dir ? dir : LT_SOURCE_DIR) + "/" + rel;
}
inline std::string binary_path() { return LT_BINARY; }

// A fresh, empty directory under the build tree, removed at the start of each use.
inline std::filesystem::path scratch_dir(const std::string& name) {
  auto p = std::filesystem::current_path() / "test_scratch" / name;
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p;
}

}  // namespace lt::test
