#include "core/flat_access.h"

#include "core/error.h"

namespace lt {

const float* HostFlat::read(size_t offset, size_t n) {
  LT_CHECK(offset <= n_ && n <= n_ - offset, "flat access: range [{}, {}) outside {} elements", offset, offset + n, n_);
  return data_ + offset;
}

float* HostFlat::write(size_t offset, size_t n) {
  LT_CHECK(writable_, "flat access: the array is read-only");
  LT_CHECK(offset <= n_ && n <= n_ - offset, "flat access: range [{}, {}) outside {} elements", offset, offset + n, n_);
  return data_ + offset;
}

}  // namespace lt
