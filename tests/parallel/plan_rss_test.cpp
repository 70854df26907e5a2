// `plan`'s per-rank memory against the peak RSS that `llamatrain train` measures on small
// configs (issue 5: within 10%). The prediction comes from make_train_plan; the measurement
// is the trainer's own getrusage peak, logged per step in metrics.jsonl (before the final
// checkpoint is written, which is not part of the step loop).
#include <gtest/gtest.h>

#include <cmath>

#include "core/file.h"
#include "model/config.h"
#include "parallel/plan.h"
#include "train/train_util.h"

namespace lt {

namespace {
struct RssCase {
  const char* name;
  int dim, layers, heads, kv, hidden, vocab, seq, gbs, mbs;
  bool recompute;
  int ranks;  // data-parallel ranks under mpirun (1: plain process)
  bool pack = true;  // train.pack_weights
};

double measured_peak_rss(const std::string& run_dir) {
  double peak = 0;
  for (const auto& j : test::read_steps(run_dir)) peak = std::max(peak, j["peak_rss_bytes"].get<double>());
  return peak;
}
}  // namespace

TEST(PlanRss, PredictionWithinTenPercentOfPeakRss) {
  const RssCase cases[] = {
      {"full", 512, 4, 8, 4, 1376, 4000, 128, 8, 8, false, 1},
      {"recompute", 512, 6, 8, 4, 1376, 4000, 128, 8, 8, true, 1},
      {"zero1_dp2", 512, 4, 8, 4, 1376, 4000, 64, 8, 4, false, 2},
      {"unpacked", 512, 4, 8, 4, 1376, 4000, 128, 8, 8, false, 1, false},
  };
  for (const RssCase& c : cases) {
    auto dir = test::scratch_dir(std::string("plan_rss_") + c.name);
    std::string model = (dir / "config.json").string(), data = (dir / "tokens.bin").string();
    nlohmann::json cfg = nlohmann::json::parse(test::tiny_config(c.dim, c.layers, c.heads, c.kv, c.hidden, c.vocab, false));
    cfg["max_position_embeddings"] = c.seq;
    test::write_text(model, cfg.dump());
    test::write_tokens(data, 50000, c.vocab);
    std::string cmd = (c.ranks > 1 ? test::mpirun(c.ranks) : test::train_env(2)) + test::binary_path() +
                      " train model=" + model + " data.path=" + data + " run.dir=" + (dir / "run").string() +
                      " train.steps=1 train.global_batch_size=" + std::to_string(c.gbs) +
                      " train.micro_batch_size=" + std::to_string(c.mbs) + " train.seq_len=" + std::to_string(c.seq) +
                      " train.recompute=" + (c.recompute ? "true" : "false") +
                      " train.pack_weights=" + (c.pack ? "true" : "false");
    auto r = test::run_cmd(cmd);
    ASSERT_EQ(r.status, 0) << r.output;
    double measured = measured_peak_rss((dir / "run").string());
    ASSERT_GT(measured, 0) << "no peak_rss_bytes in metrics.jsonl";

    PlanOptions o;
    o.shape = {1, c.ranks, 1, 1, c.gbs, c.mbs, c.seq};
    o.precision = "fp32";
    o.device = "cpu";
    o.recompute = c.recompute;
    o.pack_weights = c.pack;
    o.zero1 = true;  // the trainer's default (no effect at dp 1)
    TrainPlan p = make_train_plan(resolve_model_config(model), o);
    double predicted = p.stages[p.peak_stage].total();
    EXPECT_LT(std::fabs(predicted - measured) / measured, 0.10)
        << c.name << ": predicted " << predicted / 1e6 << " MB, measured " << measured / 1e6 << " MB";
    std::printf("[plan-rss] %s: predicted %.1f MB, measured %.1f MB (%+.1f%%)\n", c.name, predicted / 1e6,
                measured / 1e6, 100.0 * (predicted - measured) / measured);
  }
}

}  // namespace lt

namespace lt {

// The per-step communication `plan` predicts against what the trainer's communicators counted
// (<run.dir>/ranks/rank_<r>.json) on tp2 x pp2 x dp2 over 8 ranks, with and without ZeRO-1,
// and with sequence parallelism.
TEST(PlanComm, MatchesTrainerRankStats) {
  for (int variant : {0, 1, 2}) {
    const bool zero1 = variant != 1, sp = variant == 2;
    auto dir = test::scratch_dir(std::string("plan_comm_") + (sp ? "sp" : zero1 ? "zero1" : "allreduce"));
    std::string model = (dir / "config.json").string(), data = (dir / "tokens.bin").string();
    test::write_text(model, test::tiny_config(64, 5, 8, 4, 128, 301, false));
    test::write_tokens(data, 20000, 301);
    auto r = test::run_cmd(test::mpirun(8) + test::binary_path() + " train model=" + model + " data.path=" + data +
                           " run.dir=" + (dir / "run").string() +
                           " train.steps=3 train.global_batch_size=8 train.micro_batch_size=2 train.seq_len=32"
                           " parallel.tp=2 parallel.pp=2 parallel.zero1=" +
                           (zero1 ? "true" : "false") + " parallel.sequence_parallel=" + (sp ? "true" : "false"));
    ASSERT_EQ(r.status, 0) << r.output;
    PlanOptions o;
    o.shape = {1, 8, 2, 2, 8, 2, 32};
    o.precision = "fp32";
    o.zero1 = zero1;
    o.sequence_parallel = sp;
    TrainPlan p = make_train_plan(resolve_model_config(model), o);
    for (int stage = 0; stage < 2; ++stage) {
      int rank = stage * 4;  // tp_rank 0, dp_rank 0 of the stage
      auto j = nlohmann::json::parse(read_file((dir / "run" / "ranks" / ("rank_" + std::to_string(rank) + ".json")).string()));
      const StageComm& c = p.comm[size_t(stage)];
      auto got = [&](const char* g, const char* k) { return j["comm"][g][k].get<double>(); };
      EXPECT_EQ(j["sequence_parallel"].get<bool>(), sp);
      EXPECT_EQ(got("tp", "payload_bytes_per_step"), c.tp_payload) << "stage " << stage;
      EXPECT_EQ(got("tp", "sent_bytes_per_step"), c.tp_sent) << "stage " << stage;
      EXPECT_EQ(got("pp", "payload_bytes_per_step"), c.pp_payload) << "stage " << stage;
      EXPECT_EQ(got("pp", "sent_bytes_per_step"), c.pp_sent) << "stage " << stage;
      // dp also carries a few small reductions (the loss) that the plan leaves out.
      EXPECT_NEAR(got("dp", "payload_bytes_per_step"), c.dp_payload, 0.01 * c.dp_payload) << "stage " << stage;
      EXPECT_NEAR(got("dp", "sent_bytes_per_step"), c.dp_sent, 0.01 * c.dp_sent) << "stage " << stage;
    }
  }
}

// Interleaved 1F1B: what plan says a rank of pp2 x v2 sends between stages and allocates for
// activations and workspace (its two chunks' tables, with the interleaved program's slots)
// against the trainer's own counts.
TEST(PlanComm, InterleavedMatchesTrainerRankStats) {
  auto dir = test::scratch_dir("plan_comm_interleaved");
  std::string model = (dir / "config.json").string(), data = (dir / "tokens.bin").string();
  test::write_text(model, test::tiny_config(64, 8, 8, 4, 128, 301, false));
  test::write_tokens(data, 20000, 301);
  auto r = test::run_cmd(test::mpirun(2) + test::binary_path() + " train model=" + model + " data.path=" + data +
                         " run.dir=" + (dir / "run").string() +
                         " train.steps=3 train.global_batch_size=8 train.micro_batch_size=2 train.seq_len=32"
                         " parallel.pp=2 parallel.virtual_stages=2");
  ASSERT_EQ(r.status, 0) << r.output;
  PlanOptions o;
  o.shape = {1, 2, 1, 2, 8, 2, 32};
  o.precision = "fp32";
  o.virtual_stages = 2;
  TrainPlan p = make_train_plan(resolve_model_config(model), o);
  EXPECT_DOUBLE_EQ(p.bubble, 1.0 / 9.0);  // (2 - 1) / (2 x 4 + 2 - 1)
  for (int stage = 0; stage < 2; ++stage) {
    auto j = nlohmann::json::parse(read_file((dir / "run" / "ranks" / ("rank_" + std::to_string(stage) + ".json")).string()));
    const StageComm& c = p.comm[size_t(stage)];
    EXPECT_EQ(j["virtual_stages"].get<int>(), 2);
    EXPECT_EQ(j["comm"]["pp"]["payload_bytes_per_step"].get<double>(), c.pp_payload) << "stage " << stage;
    EXPECT_EQ(j["comm"]["pp"]["sent_bytes_per_step"].get<double>(), c.pp_sent) << "stage " << stage;
    const StageSizes& t = p.tables[size_t(stage)];
    EXPECT_EQ(j["activation_bytes"].get<double>(), t.carved_bytes(MemKind::activations) + t.carved_bytes(MemKind::workspace))
        << "stage " << stage;
  }
}

}  // namespace lt
