// BufferCarver: hands out a stage's buffers of one memory kind from one allocation, in the sizes
// its table (model/stage_sizes.h) gives. A stage takes every buffer by name; taking a name the
// table does not list, taking more copies than it lists, or leaving copies untaken (finish())
// throws — so the table and what the stage allocates cannot drift apart.
#pragma once
#include <cstdint>
#include <map>
#include <string>

#include "model/stage_sizes.h"

namespace lt {

class BufferCarver {
 public:
  // `base` holds sizes.carved_bytes(kind) bytes, 64-byte aligned (or nullptr when that is 0).
  BufferCarver(const StageSizes& sizes, MemKind kind, void* base);
  template <class T>
  T* take(const std::string& name) {
    return static_cast<T*>(take_bytes(name));
  }
  float* floats(const std::string& name) { return take<float>(name); }
  void finish() const;

 private:
  void* take_bytes(const std::string& name);
  struct Use {
    const StageBuffer* spec;
    int64_t taken = 0;
  };
  std::map<std::string, Use> uses_;
  MemKind kind_;
  char* next_;
};

}  // namespace lt
