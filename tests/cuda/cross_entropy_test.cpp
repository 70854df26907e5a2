// Vocabulary-parallel cross-entropy on the GPU against kernels/cpu/cross_entropy: a 1000-word
// vocabulary split over two "ranks" at 437 (mid-block), the combine steps done on the host as
// the tensor-parallel all-reduces would; ignored targets; the in-place bf16 gradient.
// Tolerances: statistics differ only in the order of fp32 sums and in exp: 1e-5 relative; the
// bf16 gradient is within one bf16 ulp of the CPU's (both round an fp32 value that may differ
// in its last bits); the loss sum in double, 1e-6 relative.
#include <gtest/gtest.h>

#include <cmath>

#include "cuda_test_util.h"
#include "kernels/cpu/cross_entropy.h"
#include "kernels/cuda/cross_entropy.h"

namespace lt {
namespace {

using cuda::DeviceBuffer;
using cuda::download;
using cuda::upload;

struct CeResult {
  std::vector<float> lse;
  double loss;
  std::vector<std::vector<float>> grad;  // per rank, [R, V_rank]
};

// Runs the pieces over `split` vocabulary ranges of the logits [R, V] (one device buffer each),
// combining across ranges on the host. in_place writes each rank's gradient over its logits.
CeResult run_gpu(const std::vector<float>& logits, int64_t R, int V, const std::vector<int32_t>& targets,
                 const std::vector<int>& split, float scale, bool in_place) {
  const size_t ranks = split.size() - 1;
  DeviceBuffer dt = upload(targets);
  std::vector<DeviceBuffer> dl, mx, se, tl;
  for (size_t k = 0; k < ranks; ++k) {
    const int b = split[k], Vk = split[k + 1] - b;
    std::vector<float> part(size_t(R) * Vk);
    for (int64_t r = 0; r < R; ++r)
      for (int j = 0; j < Vk; ++j) part[size_t(r * Vk + j)] = logits[size_t(r * V + b + j)];
    dl.push_back(upload(part));
    mx.emplace_back(size_t(R) * 4), se.emplace_back(size_t(R) * 4), tl.emplace_back(size_t(R) * 4);
    cuda::ce_row_stats(dl[k].as<float>(), Vk, R, Vk, b, dt.as<int32_t>(), mx[k].as<float>(), se[k].as<float>(),
                       tl[k].as<float>(), nullptr);
  }
  // vocab_max, rescale, vocab_sum (sumexp and tlogit), lse.
  std::vector<float> M(size_t(R), -INFINITY), S(size_t(R), 0.0f), TL(size_t(R), 0.0f);
  for (size_t k = 0; k < ranks; ++k) {
    const auto m = download(mx[k].as<float>(), size_t(R));
    for (int64_t r = 0; r < R; ++r) M[size_t(r)] = std::max(M[size_t(r)], m[size_t(r)]);
  }
  DeviceBuffer dM = upload(M);
  for (size_t k = 0; k < ranks; ++k) {
    cuda::ce_rescale_sumexp(mx[k].as<float>(), dM.as<float>(), se[k].as<float>(), R, nullptr);
    const auto s = download(se[k].as<float>(), size_t(R)), t = download(tl[k].as<float>(), size_t(R));
    for (int64_t r = 0; r < R; ++r) S[size_t(r)] += s[size_t(r)], TL[size_t(r)] += t[size_t(r)];
  }
  DeviceBuffer dS = upload(S), dTL = upload(TL), dlse(size_t(R) * 4), rows(size_t(R) * 8), total(8);
  cuda::ce_finish_lse(dM.as<float>(), dS.as<float>(), dlse.as<float>(), R, nullptr);
  cuda::ce_row_losses(dt.as<int32_t>(), dlse.as<float>(), dTL.as<float>(), rows.as<double>(), R, nullptr);
  cuda::sum_rows(rows.as<double>(), R, total.as<double>(), false, nullptr);
  CeResult res;
  res.lse = download(dlse.as<float>(), size_t(R));
  res.loss = download(total.as<double>(), 1)[0];
  for (size_t k = 0; k < ranks; ++k) {
    const int b = split[k], Vk = split[k + 1] - b;
    DeviceBuffer sep(size_t(R) * Vk * 2);
    bf16* g = in_place ? reinterpret_cast<bf16*>(dl[k].as<float>()) : sep.as<bf16>();
    const int64_t ldg = in_place ? 2 * Vk : Vk;
    cuda::ce_logits_grad(dl[k].as<float>(), Vk, R, Vk, b, dt.as<int32_t>(), dlse.as<float>(), scale, g, ldg, nullptr);
    std::vector<float> gk(size_t(R) * Vk);
    for (int64_t r = 0; r < R; ++r) {
      const auto row = download(g + r * ldg, size_t(Vk));
      for (int j = 0; j < Vk; ++j) gk[size_t(r * Vk + j)] = bf16_to_float(row[size_t(j)]);
    }
    res.grad.push_back(gk);
  }
  return res;
}

TEST(CudaCrossEntropy, VocabParallelPiecesMatchCpu) {
  LT_REQUIRE_GPU();
  const int64_t R = 77;
  const int V = 1000;
  const auto logits = test::normal(size_t(R) * V, 21, 3.0f);
  std::vector<int32_t> targets(static_cast<size_t>(R));
  Rng rng(22);
  for (auto& t : targets) t = int32_t(rng.next_u64() % V);
  targets[3] = -1;  // ignored rows
  targets[40] = -1;
  const float scale = 1.0f / 75;

  // CPU, one rank over the whole vocabulary.
  std::vector<float> mx(static_cast<size_t>(R)), se(static_cast<size_t>(R)), tl(static_cast<size_t>(R)), lse(static_cast<size_t>(R));
  cpu::ce_row_stats(logits.data(), R, V, 0, targets.data(), mx.data(), se.data(), tl.data());
  for (int64_t r = 0; r < R; ++r) lse[size_t(r)] = mx[size_t(r)] + std::log(se[size_t(r)]);
  std::vector<float> work = logits;
  std::vector<bf16> grad16(size_t(R) * V);
  const double loss = cpu::ce_loss_and_grad(work.data(), R, V, 0, targets.data(), lse.data(), tl.data(), scale,
                                            grad16.data());
  const std::vector<float> grad = test::from_bits(grad16);

  for (bool in_place : {false, true}) {
    const CeResult g = run_gpu(logits, R, V, targets, {0, 437, V}, scale, in_place);
    EXPECT_LT(test::rel_err(g.lse, lse), 1e-5) << "in_place=" << in_place;
    EXPECT_NEAR(g.loss, loss, 1e-6 * std::fabs(loss));
    for (int k = 0; k < 2; ++k) {
      const int b = k ? 437 : 0, Vk = k ? V - 437 : 437;
      std::vector<float> want(size_t(R) * Vk);
      for (int64_t r = 0; r < R; ++r)
        for (int j = 0; j < Vk; ++j) want[size_t(r * Vk + j)] = grad[size_t(r * V + b + j)];
      EXPECT_LT(test::rel_err(g.grad[size_t(k)], want), 1.0 / 128) << "rank " << k;
      for (int j = 0; j < Vk; ++j) EXPECT_EQ(g.grad[size_t(k)][size_t(3 * Vk + j)], 0.0f) << "ignored row";
    }
  }
  // One rank over the whole vocabulary, twice: the same bits.
  const CeResult a = run_gpu(logits, R, V, targets, {0, V}, scale, false);
  const CeResult b = run_gpu(logits, R, V, targets, {0, V}, scale, false);
  EXPECT_TRUE(test::bitwise_equal(a.lse, b.lse));
  EXPECT_EQ(a.loss, b.loss);
  EXPECT_TRUE(test::bitwise_equal(a.grad[0], b.grad[0]));
}

}  // namespace
}  // namespace lt
