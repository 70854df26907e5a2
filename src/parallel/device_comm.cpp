#include "parallel/device_comm.h"

#include "core/error.h"
#ifdef LLAMATRAIN_HAVE_CUDA
#include "parallel/nccl_comm.h"
#endif

namespace lt {

std::unique_ptr<Comm> make_device_world(Backend& backend, Comm& host_world) {
  // One rank moves no stage memory between ranks (every group has one member).
  if (host_world.size() == 1) return nullptr;
  switch (backend.device()) {
    case Device::cpu:
      return nullptr;
    case Device::cuda:
#ifdef LLAMATRAIN_HAVE_CUDA
      return NcclComm::create(host_world, backend.device_index(), static_cast<cudaStream_t>(backend.native_stream()));
#else
      break;
#endif
  }
  fail("train.device: {} has no communicator in this build", enum_name(backend.device()));
}

}  // namespace lt
