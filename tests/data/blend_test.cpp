// BlendedLoader (data/blend.h): weighted interleaving at sample granularity, checked from the
// samples themselves (every token of a test sample encodes its source and index): each prefix
// holds every source's share to within one sample; every source visits each of its samples
// once per epoch, reshuffled between epochs; the global order is the same for any dp; a resume
// is exact; changed weights continue every source's own order with nothing repeated or
// skipped; token budgets become weights; mismatched datasets are errors.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>
#include <vector>

#include "core/error.h"
#include "data/blend.h"
#include "data/loader.h"

namespace lt {
namespace {

// Sample i of source s: every token is s * 1000 + i.
class CodedDataset : public TokenDataset {
 public:
  CodedDataset(int source, int64_t n, int tokens, std::string tok = {})
      : source_(source), n_(n), t_(tokens), tok_(std::move(tok)) {}
  int64_t num_samples() const override { return n_; }
  int sample_tokens() const override { return t_; }
  int64_t max_token_id() const override { return source_ * 1000 + n_ - 1; }
  void read(int64_t index, int32_t* out) const override {
    for (int k = 0; k < t_; ++k) out[k] = int32_t(source_ * 1000 + index);
  }
  std::string describe() const override { return "coded"; }
  std::string tokenizer() const override { return tok_; }

 private:
  int source_;
  int64_t n_;
  int t_;
  std::string tok_;
};

struct Sample {
  int source, index;
  bool operator==(const Sample&) const = default;
};

struct Blend {
  std::vector<CodedDataset> data;
  std::vector<std::string> names;
  std::vector<double> weights;
  Blend(std::vector<int64_t> sizes, std::vector<double> w, std::vector<std::string> n = {"new", "replay", "third"})
      : names(n.begin(), n.begin() + long(sizes.size())), weights(std::move(w)) {
    for (size_t k = 0; k < sizes.size(); ++k) data.emplace_back(int(k), sizes[k], 4);
  }
  std::vector<BlendSource> sources(std::vector<double> w = {}) const {
    if (w.empty()) w = weights;
    std::vector<BlendSource> s;
    for (size_t k = 0; k < data.size(); ++k) s.push_back({names[k], "path/" + names[k], &data[k], w[k]});
    return s;
  }
};

// `steps` global batches from dp loaders (each restored from `state` when given), in global order.
std::vector<Sample> draw(const std::vector<BlendSource>& src, int dp, int batch, int steps,
                         const nlohmann::json* state = nullptr, nlohmann::json* state_out = nullptr) {
  std::vector<BlendedLoader> loaders;
  for (int d = 0; d < dp; ++d) {
    loaders.emplace_back(src, 7, true, d, dp);
    if (state) loaders.back().restore(*state, 0, "");
  }
  const int t = 4, per = batch / dp;
  std::vector<int32_t> buf(size_t(per) * t);
  std::vector<Sample> out;
  for (int s = 0; s < steps; ++s)
    for (int d = 0; d < dp; ++d) {
      loaders[size_t(d)].next_batch(batch, buf.data());
      for (int j = 0; j < per; ++j) out.push_back({buf[size_t(j) * t] / 1000, buf[size_t(j) * t] % 1000});
    }
  if (state_out) *state_out = loaders[0].state();
  return out;
}

TEST(DataBlend, EveryPrefixHoldsEachShareWithinOneSample) {
  Blend b({50, 30, 20}, {0.6, 0.25, 0.15});
  const auto order = draw(b.sources(), 1, 16, 20);
  std::vector<int64_t> count(3);
  for (size_t n = 0; n < order.size(); ++n) {
    ++count[size_t(order[n].source)];
    for (int k = 0; k < 3; ++k)
      ASSERT_LE(std::abs(double(count[size_t(k)]) - b.weights[size_t(k)] * double(n + 1)), 1.0)
          << "source " << k << " after " << n + 1 << " samples";
  }
}

TEST(DataBlend, EachSourceVisitsEverySampleOncePerEpochReshuffled) {
  Blend b({13, 7}, {0.5, 0.5});
  const auto order = draw(b.sources(), 1, 4, 20);  // 40 samples each: 3+ epochs of both
  for (int k = 0; k < 2; ++k) {
    const int n = k == 0 ? 13 : 7;
    std::vector<int> seq;
    for (const Sample& s : order)
      if (s.source == k) seq.push_back(s.index);
    ASSERT_GE(seq.size(), size_t(3 * n));
    std::vector<std::vector<int>> epochs;
    for (int e = 0; e < 3; ++e) {
      std::vector<int> ep(seq.begin() + e * n, seq.begin() + (e + 1) * n);
      EXPECT_EQ(std::set<int>(ep.begin(), ep.end()).size(), size_t(n)) << "source " << k << " epoch " << e;
      epochs.push_back(ep);
    }
    EXPECT_NE(epochs[0], epochs[1]) << "source " << k << ": epoch 1 not reshuffled";
  }
}

TEST(DataBlend, SameGlobalOrderForEveryDpSize) {
  Blend b({50, 30, 20}, {0.5, 0.3, 0.2});
  const auto one = draw(b.sources(), 1, 8, 12);
  EXPECT_EQ(draw(b.sources(), 2, 8, 12), one);
  EXPECT_EQ(draw(b.sources(), 4, 8, 12), one);
  EXPECT_EQ(draw(b.sources(), 8, 8, 12), one);
}

TEST(DataBlend, ResumeIsExactUnderAnotherDp) {
  Blend b({50, 30}, {0.7, 0.3});
  const auto full = draw(b.sources(), 1, 8, 10);
  nlohmann::json st;
  auto first = draw(b.sources(), 2, 8, 4, nullptr, &st);
  const nlohmann::json saved = nlohmann::json::parse(st.dump());  // through text, as a checkpoint holds it
  auto rest = draw(b.sources(), 4, 8, 6, &saved);
  first.insert(first.end(), rest.begin(), rest.end());
  EXPECT_EQ(first, full);
}

// Megatron #457: changing the blend on resume must neither repeat nor skip any source's samples.
TEST(DataBlend, ChangedWeightsContinueEverySourceWithoutRepeatOrSkip) {
  Blend b({40, 40}, {0.8, 0.2});
  nlohmann::json st;
  auto before = draw(b.sources(), 1, 10, 4, nullptr, &st);
  BlendedLoader probe(b.sources({0.3, 0.7}), 7, true, 0, 1);
  const auto notes = probe.restore(st, 0, "");
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("new 0.3, replay 0.7 (were new 0.8, replay 0.2) apply from global sample 40"),
            std::string::npos)
      << notes[0];
  auto after = draw(b.sources({0.3, 0.7}), 2, 10, 6, &st);
  for (int k = 0; k < 2; ++k) {
    std::vector<int> got;
    for (const auto* part : {&before, &after})
      for (const Sample& s : *part)
        if (s.source == k) got.push_back(s.index);
    // Source k's samples are exactly the first ones of its own order: the source drawn alone.
    BlendedLoader alone({b.sources()[size_t(k)]}, 7, true, 0, 1);
    std::vector<int32_t> buf(4);
    for (size_t i = 0; i < got.size(); ++i) {
      alone.next_batch(1, buf.data());
      EXPECT_EQ(got[i], buf[0] % 1000) << "source " << k << " sample " << i;
    }
  }
  // And the new weights hold from the change on.
  int replay = 0;
  for (const Sample& s : after) replay += s.source == 1;
  EXPECT_NEAR(replay, 42, 1);  // 0.7 of 60
}

TEST(DataBlend, SourceLeftOutKeepsItsPlace) {
  Blend b({40, 40}, {0.5, 0.5});
  nlohmann::json st;
  draw(b.sources(), 1, 10, 2, nullptr, &st);  // 10 samples of each
  std::vector<BlendSource> only_new = {b.sources()[0]};
  BlendedLoader a(only_new, 7, true, 0, 1);
  auto notes = a.restore(st, 0, "");
  ASSERT_FALSE(notes.empty());
  EXPECT_NE(notes[0].find("source 'replay' (10 samples consumed) is not in this run's data"), std::string::npos)
      << notes[0];
  std::vector<int32_t> buf(40);
  a.next_batch(10, buf.data());
  BlendedLoader back(b.sources(), 7, true, 0, 1);
  back.restore(a.state(), 0, "");
  EXPECT_EQ(back.counts()[0].samples, 20);  // 10 blended + 10 alone
  EXPECT_EQ(back.counts()[1].samples, 10);
}

// A data.path run (one source, "train") continued with data.sources: the source reading the same
// dataset takes over its position and its order: the next samples are the single loader's next.
TEST(DataBlend, RenamedSourceKeepsItsPositionByPath) {
  Blend b({40, 40}, {0.5, 0.5});
  BlendedLoader single({{"train", "path/new", &b.data[0], 1.0}}, 7, true, 0, 1, true);
  std::vector<int32_t> buf(4 * 12);
  single.next_batch(12, buf.data());
  BlendedLoader blend(b.sources(), 7, true, 0, 1);
  const auto notes = blend.restore(single.state(), 0, "");
  ASSERT_FALSE(notes.empty());
  EXPECT_NE(notes[0].find("source 'new' continues the position of 'train' (the same path path/new)"), std::string::npos)
      << notes[0];
  EXPECT_EQ(blend.counts()[0].samples, 12);
  EXPECT_EQ(blend.counts()[1].samples, 0);
  std::vector<int32_t> a(4 * 8), want(4 * 4);
  blend.next_batch(8, a.data());  // 4 of each, "new" first
  single.next_batch(4, want.data());
  std::vector<int32_t> got;
  for (int j = 0; j < 8; ++j)
    if (a[size_t(j) * 4] / 1000 == 0) got.insert(got.end(), a.begin() + j * 4, a.begin() + j * 4 + 4);
  EXPECT_EQ(got, want);
}

TEST(DataBlend, TokenBudgetsBecomeWeights) {
  // 1000 tokens of a 4000-token run: a quarter; the weighted sources share the rest 2:1.
  auto w = resolve_weights({2, 0, 1}, {0, 1000, 0}, 4000, {"a", "b", "c"});
  EXPECT_NEAR(w[0], 0.5, 1e-15);
  EXPECT_NEAR(w[1], 0.25, 1e-15);
  EXPECT_NEAR(w[2], 0.25, 1e-15);
  w = resolve_weights({0, 0}, {300, 100}, 4000, {"a", "b"});  // budgets only: proportional
  EXPECT_NEAR(w[0], 0.75, 1e-15);
  try {
    resolve_weights({1, 0}, {0, 5000}, 4000, {"a", "b"});
    ADD_FAILURE() << "a budget above the run's tokens was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("fill the whole run"), std::string::npos) << e.what();
  }
}

TEST(DataBlend, MismatchedTokenizerOrBlockSizeIsAnError) {
  CodedDataset a(0, 10, 4, "sentencepiece xxh64:1"), b(1, 10, 4, "bytelevel xxh64:2"), c(1, 10, 5, "sentencepiece xxh64:1");
  try {
    check_compatible({"a", "b"}, {&a, &b}, {"data.sources 'a'", "data.sources 'b'"}, true);
    ADD_FAILURE() << "different tokenizers accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("data.sources 'b' (b) was prepared with another tokenizer than data.sources 'a'"),
              std::string::npos)
        << e.what();
  }
  try {
    check_compatible({"a", "c"}, {&a, &c}, {"data.sources 'a'", "data.sources 'c'"}, true);
    ADD_FAILURE() << "different block sizes accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("holds samples of 5 tokens but data.sources 'a' (a) of 4"), std::string::npos)
        << e.what();
  }
  EXPECT_NO_THROW(check_compatible({"a", "c"}, {&a, &c}, {"x", "y"}, false));  // held-out sets: lengths may differ
}

// data.path's single source gives exactly data/loader.h's order (runs before blending resume bit-exactly).
TEST(DataBlend, SingleSourceIsTheClassicLoader) {
  CodedDataset d(0, 37, 4);
  BlendedLoader b({{"train", "p", &d, 1.0}}, 1234, true, 0, 1, true);
  Loader l(d, 1234, true, 0, 1);
  std::vector<int32_t> x(32), y(32);
  for (int s = 0; s < 12; ++s) {
    b.next_batch(8, x.data());
    l.next_batch(8, y.data());
    ASSERT_EQ(x, y) << "batch " << s;
  }
}

}  // namespace
}  // namespace lt
