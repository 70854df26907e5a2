// NcclComm over one GPU (a group of one: the operations must still run and leave the data as a
// one-rank reduction leaves it) and the GPU health checks. Several GPUs are the device check's
// business (bench/gpu_check.sh); one rank already exercises the id broadcast, the stream
// ordering, the deferred point-to-point group and split.
#include <gtest/gtest.h>

#include "cuda_test_util.h"
#include "kernels/cuda/check.h"
#include "parallel/cuda/gpu_health.h"
#include "parallel/nccl_comm.h"
#include "parallel/self_comm.h"

namespace lt {
namespace {

TEST(CudaNccl, OneRankCollectivesAndSelfExchange) {
  LT_REQUIRE_GPU();
  SelfComm host;
  cuda::Stream stream;
  auto comm = NcclComm::create(host, 0, stream.get());
  EXPECT_EQ(comm->size(), 1);
  EXPECT_EQ(comm->kind(), "nccl");
  const std::vector<float> x = test::normal(1000, 51);
  cuda::DeviceBuffer a = cuda::upload(x), b(x.size() * 4), g(x.size() * 4);
  comm->all_reduce_sum(a.as<float>(), x.size());
  comm->reduce_scatter_sum(a.as<float>(), b.as<float>(), x.size());
  comm->all_gather(b.as<float>(), g.as<float>(), x.size());
  comm->broadcast(g.data(), x.size() * 4, 0);
  // A paired exchange with itself: both halves issued in one group when the request is waited on.
  cuda::DeviceBuffer recv(x.size() * 4);
  Request r = comm->irecv(recv.data(), x.size() * 4, 0, 1);
  Request s = comm->isend(g.data(), x.size() * 4, 0, 1);
  r->wait();
  s->wait();
  stream.synchronize();
  EXPECT_TRUE(test::bitwise_equal(cuda::download(recv.as<float>(), x.size()), x));
  EXPECT_EQ(comm->stats().calls, 6);
  auto sub = comm->split(0, 0);
  ASSERT_NE(sub, nullptr);
  EXPECT_EQ(sub->size(), 1);
  EXPECT_EQ(comm->split(-1, 0), nullptr);
  comm->barrier();
}

TEST(CudaHealth, GemmAndAllReduceChecksPass) {
  LT_REQUIRE_GPU();
  GpuHealthOptions o;
  o.gemm_size = 1024;
  o.comm_mb = 1;
  GpuHealth h = check_gpu(0, o);
  EXPECT_TRUE(h.compute_ok) << h.problems;
  EXPECT_LT(h.gemm_max_rel_err, 1e-3);
  EXPECT_GT(h.gemm_tflops, 0.0);
  EXPECT_GT(h.total_mb, 0.0);
  SelfComm host;
  cuda::Stream stream;
  auto comm = NcclComm::create(host, 0, stream.get());
  check_gpu_allreduce(*comm, o, h);
  EXPECT_TRUE(h.ok()) << h.problems;
}

TEST(CudaDevice, ErrorsNameTheCallAndNoDeviceIsExplained) {
  // Any machine: the error text a failed call produces, and the no-GPU reason.
  try {
    LT_CUDA(2);  // cudaErrorMemoryAllocation
    FAIL() << "no error thrown";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.rfind("CUDA: 2 failed:", 0), 0u) << what;
    EXPECT_NE(what.find("cudaErrorMemoryAllocation"), std::string::npos) << what;
    EXPECT_NE(what.find("tests/cuda/nccl_health_test.cpp:"), std::string::npos) << what;
    EXPECT_EQ(what.find(LT_SOURCE_DIR), std::string::npos) << "the build machine's path leaked: " << what;
  }
  if (cuda::device_count() == 0) EXPECT_FALSE(cuda::no_device_reason().empty());
  else EXPECT_TRUE(cuda::no_device_reason().empty());
}

}  // namespace
}  // namespace lt
