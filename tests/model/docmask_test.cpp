// Document masking (train.document_mask): the attention kernels with a block-diagonal causal
// mask against the plain reference with that mask, which itself equals the unmasked reference run
// on each document alone; the CPU stage against PyTorch (tools/make_docmask_fixture.py: loss and
// gradients with the mask, positions restarting or not) and against the documents unpacked, each
// through a plain causal stage.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/cpu/attention.h"
#include "model/fixture.h"
#include "model/stage_util.h"

namespace lt {
namespace {

using cpu::AttnShape;

std::vector<float> randv(size_t n, uint32_t seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

// Document starts of B rows of T tokens: rows start mid-document or at a document, hold a
// one-token document, documents longer than a 64-key tile, and one row is a single document.
std::vector<int32_t> make_docs(int B, int T, uint32_t seed) {
  std::mt19937 g(seed);
  std::vector<int32_t> d(size_t(B) * T);
  for (int b = 0; b < B; ++b) {
    int cur = 0;
    for (int t = 0; t < T; ++t) {
      const bool start = b % 3 == 2 ? false : (t == T / 2 || t == T / 2 + 1 || g() % 23 == 0);
      if (start) cur = t;
      d[size_t(b) * T + t] = cur;
    }
  }
  return d;
}

struct Case {
  int B, T, H, KV, hd;
};

TEST(DocMask, ReferenceEqualsEachDocumentAlone) {
  const Case c{1, 90, 2, 1, 8};
  const std::vector<int32_t> docs = make_docs(c.B, c.T, 7);
  const size_t nq = size_t(c.T) * c.H * c.hd, nk = size_t(c.T) * c.KV * c.hd;
  auto q = randv(nq, 1), k = randv(nk, 2), v = randv(nk, 3);
  std::vector<float> out(nq), lse(size_t(c.H) * c.T);
  cpu::attention_forward_ref(q.data(), k.data(), v.data(), out.data(), lse.data(), {c.B, c.T, c.H, c.KV, c.hd, docs.data()});
  int segments = 0;
  for (int a = 0; a < c.T;) {
    int e = a + 1;
    while (e < c.T && docs[size_t(e)] == docs[size_t(a)]) ++e;
    const int n = e - a;
    std::vector<float> o(size_t(n) * c.H * c.hd), l(size_t(c.H) * n);
    cpu::attention_forward_ref(q.data() + size_t(a) * c.H * c.hd, k.data() + size_t(a) * c.KV * c.hd,
                               v.data() + size_t(a) * c.KV * c.hd, o.data(), l.data(), {1, n, c.H, c.KV, c.hd});
    for (size_t i = 0; i < o.size(); ++i) ASSERT_FLOAT_EQ(out[size_t(a) * c.H * c.hd + i], o[i]) << "doc at " << a;
    ++segments;
    a = e;
  }
  EXPECT_GE(segments, 4);
}

// Every kernel path (generic fp32 / bf16 for odd head sizes, tiled for whole vectors) with the mask.
TEST(DocMask, AttentionKernelsMatchTheMaskedReference) {
  const Case cases[] = {{2, 150, 2, 1, 8}, {3, 130, 4, 2, 12}, {2, 200, 2, 2, 16}, {3, 150, 4, 2, 64}, {1, 70, 2, 1, 128}};
  uint32_t seed = 11;
  for (const Case& c : cases) {
    SCOPED_TRACE(testing::Message() << "B=" << c.B << " T=" << c.T << " hd=" << c.hd);
    const std::vector<int32_t> docs = make_docs(c.B, c.T, seed);
    const AttnShape s{c.B, c.T, c.H, c.KV, c.hd, docs.data()};
    const size_t nq = size_t(c.B) * c.T * c.H * c.hd, nk = size_t(c.B) * c.T * c.KV * c.hd;
    auto q = randv(nq, seed++), k = randv(nk, seed++), v = randv(nk, seed++), dout = randv(nq, seed++);
    std::vector<float> out_r(nq), lse_r(size_t(c.B) * c.H * c.T), dq_r(nq), dk_r(nk), dv_r(nk);
    cpu::attention_forward_ref(q.data(), k.data(), v.data(), out_r.data(), lse_r.data(), s);
    cpu::attention_backward_ref(q.data(), k.data(), v.data(), dout.data(), dq_r.data(), dk_r.data(), dv_r.data(), s);
    for (bool bf : {false, true}) {
      std::vector<float> out(nq), lse(lse_r.size()), dq(nq, 7.f), dk(nk, 7.f), dv(nk, 7.f);
      (bf ? cpu::attention_forward_bf16 : cpu::attention_forward)(q.data(), k.data(), v.data(), out.data(), lse.data(), s);
      (bf ? cpu::attention_backward_bf16 : cpu::attention_backward)(q.data(), k.data(), v.data(), out.data(),
                                                                     dout.data(), lse.data(), dq.data(), dk.data(),
                                                                     dv.data(), s);
      const double tol = bf ? 2e-2 : 2e-5;
      const std::pair<const std::vector<float>*, const std::vector<float>*> pairs[] = {
          {&out, &out_r}, {&lse, &lse_r}, {&dq, &dq_r}, {&dk, &dk_r}, {&dv, &dv_r}};
      const char* names[] = {"out", "lse", "dq", "dk", "dv"};
      for (int i = 0; i < 5; ++i) {
        for (float x : *pairs[i].first) ASSERT_TRUE(std::isfinite(x)) << names[i] << (bf ? " bf16" : "");
        EXPECT_LT(test::norm_rel_err(pairs[i].first->data(), pairs[i].second->data(), pairs[i].first->size()),
                  bf ? tol : 1e-5)
            << names[i] << (bf ? " bf16" : " fp32");
      }
    }
  }
}

class DocMaskFixtureTest : public testing::TestWithParam<const char*> {};

// The CPU stage with document masking equals PyTorch's block-diagonal causal mask (loss with
// positions restarting per document or continuing, gradients), and the loss equals the sum of
// the documents' own losses: PyTorch's (each document run alone) and the stage's own, each
// document through a plain causal stage.
TEST_P(DocMaskFixtureTest, StageMatchesPyTorchAndTheUnpackedDocuments) {
  test::Fixture fx(GetParam());
  ParamLayout layout(fx.config, ShardSpec{});
  const auto inputs = fx.i32("inputs"), targets = fx.i32("targets"), docs = fx.i32("doc_start");
  const int count = fx.i32("count")[0];
  StageOptions opt;
  opt.micro_batch = fx.B;
  opt.seq_len = fx.T;
  opt.document_mask = true;
  opt.slots = 1;
  for (auto [restart, recompute] : {std::pair{true, false}, {false, false}, {true, true}}) {
    opt.recompute = recompute;  // backward recomputes each layer's forward under the same mask
    test::TestStage stage = test::make_cpu_stage(layout, opt);
    fx.load_params(layout, stage->weights());
    stage->set_inputs(0, {docs.data(), restart});
    stage->forward(0, inputs.data(), targets.data(), 1.0f / float(count), true);
    const double loss = stage->take_loss();
    const float want = fx.f32(restart ? "loss_sum.restart" : "loss_sum.continue")[0];
    EXPECT_NEAR(loss, want, 1e-5 * want) << (restart ? "restart" : "continue");
    if (!restart) continue;
    stage->backward(0);
    for (const auto& p : layout.params()) {
      auto ref = fx.f32("grad.restart." + p.name);
      EXPECT_LT(test::norm_rel_err(stage->grads() + p.offset, ref.data(), p.numel), 1e-4)
          << p.name << (recompute ? " (recompute)" : "");
    }
    double docs_alone = 0;
    for (float x : fx.f32("doc_losses")) docs_alone += x;
    EXPECT_NEAR(loss, docs_alone, 1e-5 * docs_alone);
  }
  // Each document alone through a plain causal stage (one row, positions from 0, padded).
  StageOptions plain;
  plain.micro_batch = 1;
  plain.seq_len = fx.T;
  plain.forward_only = true;
  test::TestStage stage = test::make_cpu_stage(layout, plain);
  fx.load_params(layout, stage->weights());
  stage->refresh_weights();
  double sum = 0;
  int pieces = 0;
  for (int b = 0; b < fx.B; ++b)
    for (int a = 0; a < fx.T;) {
      int e = a + 1;
      while (e < fx.T && docs[size_t(b) * fx.T + e] == docs[size_t(b) * fx.T + a]) ++e;
      std::vector<int32_t> in(size_t(fx.T), 0), tg(size_t(fx.T), -1);
      for (int t = a; t < e; ++t) {
        in[size_t(t - a)] = inputs[size_t(b) * fx.T + t];
        tg[size_t(t - a)] = targets[size_t(b) * fx.T + t];
      }
      stage->forward(0, in.data(), tg.data(), 0.0f, false);
      sum += stage->take_loss();
      ++pieces;
      a = e;
    }
  EXPECT_GE(pieces, 8);
  EXPECT_NEAR(sum, fx.f32("loss_sum.restart")[0], 1e-5 * sum);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, DocMaskFixtureTest, ::testing::Values("docmask_hd16", "docmask_hd12"));

}  // namespace
}  // namespace lt
