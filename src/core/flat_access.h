// FlatAccess: host access, one contiguous range at a time, to a flat float array that may live
// in device memory (a stage's weights, an optimizer's state). Checkpoint save/load, resharding
// and initialisation go through it, so they copy through bounded host buffers (a device backend
// stages one range at a time) and, for host memory, copy nothing at all (HostFlat).
#pragma once
#include <cstddef>

namespace lt {

class FlatAccess {
 public:
  virtual ~FlatAccess() = default;
  virtual size_t size() const = 0;
  // Elements [offset, offset + n) on the host; valid until the next call.
  virtual const float* read(size_t offset, size_t n) = 0;
  // A host buffer for elements [offset, offset + n), to be filled completely by the caller; it
  // is stored by the next call or by flush().
  virtual float* write(size_t offset, size_t n) = 0;
  virtual void flush() = 0;
};

// Host memory: read() and write() return pointers into the array itself.
class HostFlat final : public FlatAccess {
 public:
  HostFlat(float* data, size_t n) : data_(data), n_(n) {}
  // Read-only access to a const array (write() throws).
  static HostFlat read_only(const float* data, size_t n) { return HostFlat(const_cast<float*>(data), n, false); }
  size_t size() const override { return n_; }
  const float* read(size_t offset, size_t n) override;
  float* write(size_t offset, size_t n) override;
  void flush() override {}

 private:
  HostFlat(float* data, size_t n, bool writable) : data_(data), n_(n), writable_(writable) {}
  float* data_;
  size_t n_;
  bool writable_ = true;
};

}  // namespace lt
