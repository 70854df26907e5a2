// Continual pretraining end to end on tiny models: blended data (data.sources) identical in any
// layout and resumed bit-exactly, weights changed on resume, several validation sets against
// `llamatrain eval`, a wsd schedule against PyTorch's schedulers, init modes (the whole state of
// another run's checkpoint continues it bit-exactly; a cooldown from its stable phase), and the
// loss-spike guard (a spike on one rank of a parallel run is skipped like a non-finite step).
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <filesystem>
#include <fstream>

#include "ckpt/checkpoint.h"
#include "ckpt/reshard.h"
#include "core/file.h"
#include "model/config.h"
#include "model/fixture.h"
#include "train/train_util.h"

namespace lt {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::run_cmd;

struct CptRun {
  fs::path dir;
  std::string model, a, b;
  explicit CptRun(const std::string& name) : dir(test::scratch_dir(name)) {
    model = (dir / "config.json").string();
    a = (dir / "new.bin").string();
    b = (dir / "old.bin").string();
    test::write_text(model, test::tiny_config(48, 3, 4, 2, 100, 67, false));
    test::write_tokens(a, 12000, 67, 5);
    test::write_tokens(b, 6000, 67, 9);
  }
  std::string sources(double wa, double wb) const {
    return fmt::format("data.sources=[new={}@{},old={}@{}] ", a, wa, b, wb);
  }
  std::string args(const std::string& run, const std::string& extra) const {
    return " train model=" + model + " run.dir=" + (dir / run).string() +
           " train.seq_len=16 train.global_batch_size=8 train.micro_batch_size=2 optim.lr=3e-3 optim.decay_steps=12 " +
           extra;
  }
  test::CmdResult single(const std::string& run, const std::string& extra, const std::string& env = "") const {
    return run_cmd(env + test::train_env(1) + test::binary_path() + args(run, extra));
  }
  test::CmdResult mpi(int np, const std::string& run, const std::string& extra, const std::string& env = "") const {
    return run_cmd(env + test::mpirun(np) + test::binary_path() + args(run, extra));
  }
  std::vector<json> lines(const std::string& run, const char* key) const {
    std::vector<json> out;
    std::ifstream f(dir / run / "metrics.jsonl");
    std::string line;
    while (std::getline(f, line)) {
      auto j = json::parse(line);
      if (j.contains(key)) out.push_back(j);
    }
    return out;
  }
  std::vector<double> losses(const std::string& run) const {
    std::vector<double> out;
    for (const auto& j : lines(run, "loss")) out.push_back(j["loss"].get<double>());
    return out;
  }
  std::string model_bytes(const std::string& run, int step) const {
    return read_file((dir / run / "checkpoints" / step_dir_name(step) / "model/tp0_pp0.safetensors").string());
  }
};

TEST(CptTrain, BlendedDataIsLayoutIndependentAndResumesExactly) {
  CptRun t("cpt_blend");
  const std::string src = t.sources(0.75, 0.25) + "train.steps=8 ";
  auto one = t.single("one", src);
  ASSERT_EQ(one.status, 0) << one.output;
  EXPECT_NE(one.output.find("data: blend of 2 sources: new 75.0%, old 25.0%"), std::string::npos) << one.output;
  // Per-source consumption in metrics.jsonl: the shares of 8 x k samples, within one sample.
  const auto steps = t.lines("one", "loss");
  ASSERT_EQ(steps.size(), 8u);
  for (size_t k = 0; k < steps.size(); ++k) {
    const int64_t na = steps[k]["sources"]["new"]["samples"], nb = steps[k]["sources"]["old"]["samples"];
    EXPECT_EQ(na + nb, int64_t(8 * (k + 1)));
    EXPECT_NEAR(double(na), 0.75 * 8 * double(k + 1), 1.0);
    EXPECT_EQ(steps[k]["sources"]["new"]["tokens"].get<int64_t>(), na * 16);
  }
  auto par = t.mpi(4, "tp2dp2", src + "parallel.tp=2");
  ASSERT_EQ(par.status, 0) << par.output;
  auto la = t.losses("one"), lb = t.losses("tp2dp2");
  ASSERT_EQ(lb.size(), la.size());
  for (size_t i = 0; i < la.size(); ++i) EXPECT_NEAR(lb[i], la[i], 1e-5 * la[i]) << "step " << i + 1;
  // Stopped at 3 and resumed (in another layout, then back): the same bits as uninterrupted.
  ASSERT_EQ(t.mpi(2, "split", t.sources(0.75, 0.25) + "train.steps=3 parallel.pp=2").status, 0);
  auto r = t.single("split", src);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output.find("data weights"), std::string::npos) << r.output;  // unchanged weights: no new segment
  auto ls = t.losses("split");
  ASSERT_EQ(ls.size(), 8u);
  for (size_t i = 3; i < 8; ++i) EXPECT_EQ(ls[i], la[i]) << "step " << i + 1;
  EXPECT_TRUE(t.model_bytes("split", 8) == t.model_bytes("one", 8)) << "final weights differ";
  const CheckpointMeta m = open_checkpoint((t.dir / "split/checkpoints").string()).meta;
  EXPECT_EQ(m.extra["data"]["sources"]["old"]["samples"].get<int64_t>(), steps[7]["sources"]["old"]["samples"]);
}

TEST(CptTrain, WeightsChangedOnResumeContinueEachSource) {
  CptRun t("cpt_reweight");
  ASSERT_EQ(t.single("run", t.sources(0.75, 0.25) + "train.steps=4").status, 0);
  auto r = t.single("run", t.sources(0.25, 0.75) + "train.steps=8");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("data weights new 0.25, old 0.75 (were new 0.75, old 0.25) apply from global sample 32"),
            std::string::npos)
      << r.output;
  const auto s = t.lines("run", "loss");
  ASSERT_EQ(s.size(), 8u);
  const int64_t a4 = s[3]["sources"]["new"]["samples"], b4 = s[3]["sources"]["old"]["samples"];
  const int64_t a8 = s[7]["sources"]["new"]["samples"], b8 = s[7]["sources"]["old"]["samples"];
  EXPECT_EQ(a4, 24);
  EXPECT_EQ(b4, 8);
  EXPECT_EQ(a8 - a4, 8);  // a quarter of the 32 samples since the change
  EXPECT_EQ(b8 - b4, 24);
}

TEST(CptTrain, SeveralValidationSetsAgreeWithEval) {
  CptRun t("cpt_valid");
  auto r = t.single("run", "data.path=" + t.a + " train.steps=8 data.valid=[new=" + t.a + ",old=" + t.b +
                               "] eval.every=4 eval.batches=3 eval.at_start=true checkpoint.every=4");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("step 0 | valid | new loss "), std::string::npos) << r.output;
  const auto evals = t.lines("run", "valid");
  ASSERT_EQ(evals.size(), 3u);  // steps 0, 4, 8
  for (int i = 0; i < 3; ++i) EXPECT_EQ(evals[size_t(i)]["step"].get<int>(), 4 * i);
  // The same numbers from `llamatrain eval` on each checkpoint: 3 micro-batches of 2 samples.
  for (int step : {4, 8})
    for (const auto& [name, path] : {std::pair{"new", t.a}, std::pair{"old", t.b}}) {
      auto e = run_cmd(test::train_env(1) + test::binary_path() + " eval --model " +
                       (t.dir / "run/checkpoints" / step_dir_name(step)).string() + " --data " + path +
                       " --seq-len 16 --micro-batch 2 --max-samples 6 --json");
      ASSERT_EQ(e.status, 0) << e.output;
      const double want = json::parse(e.output.substr(e.output.find('{')))["loss"];
      const auto& got = evals[size_t(step / 4)]["valid"][name];
      EXPECT_NEAR(got["loss"].get<double>(), want, 1e-5 * want) << name << " at step " << step;
      EXPECT_NEAR(got["ppl"].get<double>(), std::exp(want), 1e-4 * std::exp(want));
    }
  // TensorBoard has one curve per set.
  std::string events;
  for (const auto& f : fs::directory_iterator(t.dir / "run/tensorboard")) events += read_file(f.path().string());
  for (const char* tag : {"valid/new/loss", "valid/old/loss", "valid/new/ppl"})
    EXPECT_NE(events.find(tag), std::string::npos) << tag;
}

TEST(CptTrain, WsdScheduleEqualsPyTorchAndIsPrinted) {
  CptRun t("cpt_wsd");
  const auto fx = json::parse(read_file(test::source_path("tests/fixtures/lr_schedules.json")));
  const auto& e = fx["schedules"][5];  // wsd, linear decay, cooldown 25 of 60 steps, no warm-up
  ASSERT_EQ(e["config"]["cooldown"].get<int>(), 25);
  auto r = t.single("run", "data.path=" + t.a +
                               " train.steps=60 optim.decay_steps=60 optim.schedule=wsd optim.lr=1e-3 optim.min_lr=0 optim.decay_shape=linear "
                               "optim.cooldown_steps=25");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("lr plan: wsd (linear decay), stable 0.001 to step 35, decay from step 36 to 60"),
            std::string::npos)
      << r.output;
  const auto s = t.lines("run", "loss");
  ASSERT_EQ(s.size(), 60u);
  for (size_t i = 0; i < s.size(); ++i) {
    const double want = e["lrs"][i];
    EXPECT_NEAR(s[i]["lr"].get<double>(), want, 1e-12 * std::max(want, 1e-6)) << "step " << i + 1;
  }
}

// init_mode full: the whole state of another run's checkpoint continues it bit for bit; with a
// new wsd horizon it is a cooldown from the stable phase. init_mode weights says what it reset.
TEST(CptTrain, InitModesAndCooldownFromStablePhase) {
  CptRun t("cpt_init");
  const std::string base = t.sources(0.5, 0.5) + "optim.schedule=wsd optim.warmup_steps=2 optim.decay_fraction=0.5 ";
  ASSERT_EQ(t.single("a", base + "train.steps=12 checkpoint.every=3 checkpoint.keep=10").status, 0);
  const std::string step3 = (t.dir / "a/checkpoints" / step_dir_name(3)).string();
  auto full = t.single("full", base + "train.steps=12 init_mode=full init=" + step3);
  ASSERT_EQ(full.status, 0) << full.output;
  EXPECT_NE(full.output.find("start: init_mode full: the whole state of " + step3 + " at step 3"), std::string::npos)
      << full.output;
  auto la = t.losses("a"), lf = t.losses("full");
  ASSERT_EQ(lf.size(), 9u);
  for (size_t i = 0; i < 9; ++i) EXPECT_EQ(lf[i], la[i + 3]) << "step " << i + 4;
  EXPECT_TRUE(t.model_bytes("full", 12) == t.model_bytes("a", 12)) << "final weights differ";
  // A cooldown from step 3 (stable: run a decays from step 7): decay over steps 4..8 instead.
  auto cool = t.single("cool", base + "train.steps=8 optim.decay_steps=8 optim.cooldown_steps=5 init_mode=full init=" + step3);
  ASSERT_EQ(cool.status, 0) << cool.output;
  EXPECT_NE(cool.output.find("the learning-rate schedule differs from the checkpoint's"), std::string::npos);
  const auto ca = t.lines("a", "loss"), cc = t.lines("cool", "loss");
  ASSERT_EQ(cc.size(), 5u);
  EXPECT_EQ(cc[0]["lr"].get<double>(), 3e-3);  // step 4: the decay's first update is still the peak
  EXPECT_EQ(cc[0]["loss"].get<double>(), ca[3]["loss"].get<double>());
  EXPECT_LT(cc[4]["lr"].get<double>(), 3e-3 * 0.5);
  // init_mode weights: the start-up line names what starts over.
  auto w = t.single("w", base + "train.steps=3 init=" + step3);
  ASSERT_EQ(w.status, 0) << w.output;
  EXPECT_NE(w.output.find("start: init_mode weights: the weights of " + step3 +
                          "; reset: optimizer state (zero), step (0), learning-rate schedule (from its start), "
                          "data position (every source from its first sample)"),
            std::string::npos)
      << w.output;
  EXPECT_EQ(t.lines("w", "loss")[0]["sources"]["new"]["samples"].get<int>(), 4);
}

// A spike (injected on one rank: its gradient x 1000, its loss x 10) is skipped exactly like a
// non-finite step: the same final weights as a run whose step 6 went NaN, in one process and at
// tp2 x dp2; a NaN on one rank too. rollback goes back to the last checkpoint with a lower lr.
TEST(CptTrain, SpikeGuardSkipsOrRollsBack) {
  CptRun t("cpt_spike");
  const std::string run = "data.path=" + t.a + " train.steps=10 ";
  const std::string guard = "train.spike_policy=skip train.spike_window=4 train.spike_sigma=50 ";
  ASSERT_EQ(t.single("nan", run, "LT_FAULT_NAN_AT_STEP=6 ").status, 0);
  auto sk = t.single("spike", run + guard + "--json", "LT_FAULT_SPIKE_AT_STEP=6 ");
  ASSERT_EQ(sk.status, 0) << sk.output;
  EXPECT_NE(sk.output.find("step 6: spike: loss"), std::string::npos) << sk.output;
  EXPECT_NE(sk.output.find("its global samples [40, 48) (train 8)"), std::string::npos) << sk.output;
  EXPECT_NE(sk.output.find("\"spikes\":1"), std::string::npos) << sk.output;
  const auto ev = t.lines("spike", "event");
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0]["step"].get<int>(), 6);
  EXPECT_EQ(ev[0]["samples"], json({40, 48}));
  EXPECT_TRUE(t.model_bytes("spike", 10) == t.model_bytes("nan", 10)) << "final weights differ";
  auto ref = [&](const std::string& r) {
    ParamLayout layout(resolve_model_config(t.model), ShardSpec{});
    std::vector<float> w(layout.total());
    load_model(open_checkpoint((t.dir / r / "checkpoints").string()), layout, w.data());
    return w;
  };
  const auto wn = ref("nan");
  for (const auto& [name, env] : {std::pair{"tp2dp2_spike", "LT_FAULT_RANK=3 LT_FAULT_SPIKE_AT_STEP=6 "},
                                  std::pair{"tp2dp2_nan", "LT_FAULT_RANK=1 LT_FAULT_NAN_AT_STEP=6 "}}) {
    auto p = t.mpi(4, name, run + guard + "parallel.tp=2", env);
    ASSERT_EQ(p.status, 0) << name << "\n" << p.output;
    const auto wp = ref(name);
    EXPECT_LT(test::norm_rel_err(wp.data(), wn.data(), wn.size()), 1e-5) << name;
    const auto s = t.lines(name, "loss");
    ASSERT_EQ(s.size(), 10u);
    EXPECT_TRUE(s[5]["skipped"].get<bool>()) << name;
  }
  // rollback: back to step 4 with lr x 0.5 for 3 steps; the samples since step 4 are not replayed.
  auto rb = t.single("rollback", run + "train.spike_policy=rollback train.spike_window=4 train.spike_sigma=50 "
                                       "train.spike_lr_scale=0.5 train.spike_lr_steps=3 checkpoint.every=4 --json",
                     "LT_FAULT_SPIKE_AT_STEP=6 ");
  ASSERT_EQ(rb.status, 0) << rb.output;
  EXPECT_NE(rb.output.find("rolled back to step 4: global samples [32, 48) are not replayed (train 16); lr x 0.5 "
                           "until step 7"),
            std::string::npos)
      << rb.output;
  const auto s = t.lines("rollback", "loss"), n = t.lines("nan", "loss");
  ASSERT_EQ(s.size(), 12u);  // steps 1-6, then 5-10 again
  EXPECT_EQ(s[6]["step"].get<int>(), 5);
  for (int i : {6, 7, 8}) EXPECT_EQ(s[size_t(i)]["lr"].get<double>(), 0.5 * n[size_t(i) - 2]["lr"].get<double>());
  EXPECT_EQ(s[9]["lr"].get<double>(), n[7]["lr"].get<double>());
}

// train.document_mask on a prepared dataset (format version 3): the same training in one process
// at tp2 x pp2 with sequence parallelism (held-out sets masked too) and with an interleaved
// pipeline (pp2 x v2: the masks follow each chunk's micro-batch through the program), different
// from the unmasked run; data without document boundaries and a backend without masking are clear errors.
TEST(CptTrain, DocumentMaskIsLayoutIndependent) {
  CptRun t("cpt_docmask");
  const std::string data = (t.dir / "data").string(), model = (t.dir / "v512.json").string();
  test::write_text(model, test::tiny_config(48, 4, 4, 2, 100, 512, false));
  // Short documents (one line of the manual each), so that most samples hold several.
  std::ifstream in(test::source_path("assets/corpus/gimp_help/gimp_help_en.txt"));
  std::string line, text;
  for (int i = 0; i < 3000 && std::getline(in, line);) {
    if (line.empty()) continue;
    text += line + "\n\n";
    ++i;
  }
  const std::string corpus = (t.dir / "lines.txt").string();
  test::write_text(corpus, text);
  auto p = run_cmd(test::binary_path() + " prepare " + corpus + " -o " + data + " --tokenizer " + test::source_path("assets/stories260k/tok512.model") +
                   " --text-mode paragraph --block-size 33 --validation-fraction 0.05 --no-progress");
  ASSERT_EQ(p.status, 0) << p.output;
  const std::string run = "model=" + model + " data.path=" + data + " data.valid=[held=" + data +
                          "/validation] eval.every=3 eval.batches=2 train.steps=6 train.document_mask=true "
                          "train.restart_positions=true ";
  ASSERT_EQ(t.single("one", run).status, 0);
  auto par = t.mpi(4, "tp2pp2sp", run + "parallel.tp=2 parallel.pp=2 parallel.sequence_parallel=true");
  ASSERT_EQ(par.status, 0) << par.output;
  auto a = t.losses("one"), b = t.losses("tp2pp2sp");
  ASSERT_EQ(a.size(), 6u);
  ASSERT_EQ(b.size(), a.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(b[i], a[i], 1e-5 * a[i]) << "step " << i + 1;
  auto vpp = t.mpi(2, "pp2v2", run + "parallel.pp=2 parallel.virtual_stages=2");
  ASSERT_EQ(vpp.status, 0) << vpp.output;
  auto c = t.losses("pp2v2");
  ASSERT_EQ(c.size(), a.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(c[i], a[i], 1e-5 * a[i]) << "interleaved, step " << i + 1;
  EXPECT_NEAR(t.lines("pp2v2", "valid")[1]["valid"]["held"]["loss"].get<double>(),
              t.lines("one", "valid")[1]["valid"]["held"]["loss"].get<double>(), 1e-5);
  const auto ea = t.lines("one", "valid"), eb = t.lines("tp2pp2sp", "valid");
  ASSERT_EQ(ea.size(), 2u);
  ASSERT_EQ(eb.size(), 2u);
  EXPECT_NEAR(eb[1]["valid"]["held"]["loss"].get<double>(), ea[1]["valid"]["held"]["loss"].get<double>(), 1e-5);
  ASSERT_EQ(t.single("plain", "model=" + model + " data.path=" + data + " train.steps=2").status, 0);
  EXPECT_NE(t.losses("plain")[1], a[1]) << "masking changed nothing";
  auto raw = t.single("raw", "data.path=" + t.a + " train.steps=2 train.document_mask=true");
  EXPECT_EQ(raw.status, 1);
  EXPECT_NE(raw.output.find("has no document boundaries"), std::string::npos) << raw.output;
  auto cuda = t.single("cuda", run + "train.device=cuda");
  EXPECT_EQ(cuda.status, 1);
  EXPECT_NE(cuda.output.find("config key 'train.document_mask': the cuda backend does not support document masking"),
            std::string::npos)
      << cuda.output;
}

}  // namespace
}  // namespace lt
