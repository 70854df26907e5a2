#include "model/buffer_carver.h"

#include "core/error.h"

namespace lt {

BufferCarver::BufferCarver(const StageSizes& sizes, MemKind kind, void* base)
    : kind_(kind), next_(static_cast<char*>(base)) {
  for (const auto& b : sizes.buffers)
    if (b.kind == kind && !b.owner) uses_[b.name] = {&b, 0};
}

void* BufferCarver::take_bytes(const std::string& name) {
  auto it = uses_.find(name);
  LT_CHECK(it != uses_.end(), "stage: buffer '{}' ({}) is not in the stage's size table", name, mem_kind_name(kind_));
  Use& u = it->second;
  LT_CHECK(u.taken < u.spec->copies, "stage: buffer '{}' taken more than the {} copies its size table lists", name,
           u.spec->copies);
  ++u.taken;
  void* p = next_;
  next_ += u.spec->line_bytes();
  return p;
}

void BufferCarver::finish() const {
  for (const auto& [name, u] : uses_)
    LT_CHECK(u.taken == u.spec->copies, "stage: buffer '{}' ({}) taken {} times, its size table lists {}", name,
             mem_kind_name(kind_), u.taken, u.spec->copies);
}

}  // namespace lt
