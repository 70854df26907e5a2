#include "model/backend.h"

#include "core/error.h"

namespace lt {

std::unique_ptr<Backend> make_cpu_backend(const BackendOptions& o);
#ifdef LLAMATRAIN_HAVE_CUDA
std::unique_ptr<Backend> make_cuda_backend(const BackendOptions& o);
#endif

BackendArray& BackendArray::operator=(BackendArray&& o) noexcept {
  if (this != &o) {
    reset();
    data_ = o.data_;
    n_ = o.n_;
    release_ = std::move(o.release_);
    o.data_ = nullptr;
    o.n_ = 0;
    o.release_ = nullptr;
  }
  return *this;
}

void BackendArray::reset() {
  if (data_ && release_) release_(data_);
  data_ = nullptr;
  n_ = 0;
}

std::string available_devices() {
#ifdef LLAMATRAIN_HAVE_CUDA
  return "cpu, cuda";
#else
  return "cpu";
#endif
}

std::unique_ptr<Backend> make_backend(Device device, const BackendOptions& o) {
  switch (device) {
    case Device::cpu:
      return make_cpu_backend(o);
    case Device::cuda:
#ifdef LLAMATRAIN_HAVE_CUDA
      return make_cuda_backend(o);
#else
      fail("train.device: cuda is not available in this build (devices: {}); build with -DLLAMATRAIN_CUDA=ON",
           available_devices());
#endif
  }
  fail("train.device: unknown device");
}

}  // namespace lt
