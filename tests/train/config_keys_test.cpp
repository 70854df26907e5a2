// Config keys are declared once (train/run_config.h): the user guide's key table is that
// declaration, and every key's declared range and type are enforced.
#include <gtest/gtest.h>

#include <string>

#include "core/error.h"
#include "core/file.h"
#include "test_util.h"
#include "train/run_config.h"

namespace lt {
namespace {

std::vector<std::string> required() {
  return {"model=stories260k", "data.path=x", "train.steps=10", "train.global_batch_size=4", "train.seq_len=8"};
}

TEST(ConfigKeys, UserGuideTableIsTheDeclaration) {
  const std::string guide = read_file(test::source_path("docs/USER_GUIDE.md"));
  const std::string begin = "<!-- config-keys:begin -->\n", end = "<!-- config-keys:end -->";
  const size_t a = guide.find(begin), b = guide.find(end);
  ASSERT_NE(a, std::string::npos);
  ASSERT_NE(b, std::string::npos);
  EXPECT_EQ(guide.substr(a + begin.size(), b - a - begin.size()), run_config_help(true))
      << "docs/USER_GUIDE.md's key table is stale: regenerate it with `llamatrain train --help-config --markdown`";
}

TEST(ConfigKeys, EveryKeyParsesItsDefaultAndRejectsTheWrongType) {
  for (const RunKeyInfo& k : run_config_keys()) {
    if (k.type == "string" || k.type == "list") continue;  // any text is a string, or a list of one path
    auto args = required();
    args.push_back(k.key + "=not-a-" + k.type);
    try {
      load_run_config("", args);
      ADD_FAILURE() << k.key << " accepted a value of the wrong type";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("'" + k.key + "'"), std::string::npos) << e.what();
    }
  }
  EXPECT_NO_THROW(load_run_config("", required()));
}

TEST(ConfigKeys, RangesAndEnumsAreEnforced) {
  struct Case {
    std::string arg, message;
  };
  const Case cases[] = {
      {"train.steps=0", "config key 'train.steps' must be >= 1, got 0"},
      {"optim.beta2=1", "config key 'optim.beta2' must be in [0, 1), got 1"},
      {"optim.lr=20", "config key 'optim.lr' must be in [1e-12, 10], got 20"},
      {"train.threads=-1", "config key 'train.threads' must be in [0, 4096], got -1"},
      {"parallel.stage_starts=[0,-2]", "config key 'parallel.stage_starts': expected auto, even or a list of first layers such as [0,3,5], got '0,-2'"},
      {"train.precision=fp16", "config key 'train.precision': expected fp32 or bf16, got 'fp16'"},
      {"train.device=tpu", "config key 'train.device': expected cpu or cuda, got 'tpu'"},
      {"optim.schedule=step", "config key 'optim.schedule': expected cosine, linear, constant or wsd, got 'step'"},
      {"optim.decay_shape=exp", "config key 'optim.decay_shape': expected linear, cosine or 1-sqrt, got 'exp'"},
      {"data.sources=[a=x@0.5,a=y@0.5]", "config key 'data.sources': two entries are named 'a' (name them: name=path)"},
      {"data.sources=[a=x@heavy]", "config key 'data.sources': entry 'a=x@heavy': expected name=path@weight"},
      {"data.sources=[a=x@1.5tokens]", "a token budget must be a whole number >= 1"},
      {"data.sources=[a b=x@1]", "may hold only letters, digits"},
      {"data.valid=[a=x@1]", "config key 'data.valid': entry 'a' has a weight; held-out sets have none"},
      {"init_mode=full", "config key 'init_mode' is full but init is empty"},
      {"train.spike_sigma=0.5", "config key 'train.spike_sigma' must be in [1, 1e+06], got 0.5"},
      {"train.restart_positions=true", "config key 'train.restart_positions' needs train.document_mask = true"},
      {"train.nan_policy=ignore", "config key 'train.nan_policy': expected skip, rollback or fail, got 'ignore'"},
  };
  for (const Case& c : cases) {
    auto args = required();
    args.push_back(c.arg);
    try {
      load_run_config("", args);
      ADD_FAILURE() << c.arg << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(c.message), std::string::npos) << e.what();
    }
  }
  auto args = required();
  args.push_back("train.precision=bf16");
  args.push_back("train.device=cuda");
  args.push_back("optim.schedule=linear");
  const RunConfig c = load_run_config("", args);
  EXPECT_EQ(c.precision, Precision::bf16);
  EXPECT_EQ(c.device, Device::cuda);
  EXPECT_EQ(c.schedule, ScheduleKind::linear);
  EXPECT_EQ(c.checkpoint_dir, "runs/default/checkpoints");
  EXPECT_EQ(c.decay_steps, 10);  // 0 = train.steps
}

TEST(ConfigKeys, DataSourcesAndValidationSets) {
  std::vector<std::string> args = {"model=stories260k", "train.steps=10", "train.global_batch_size=4", "train.seq_len=8",
                                   "data.sources=[manual=d/manual@0.75, d/replay/train@1000000tokens]",
                                   "data.valid=[d/manual/validation, stories=d/replay/validation]"};
  RunConfig c = load_run_config("", args);
  ASSERT_EQ(c.sources.size(), 2u);
  EXPECT_EQ(c.sources[0], (DataSpec{"manual", "d/manual", 0.75, 0}));
  EXPECT_EQ(c.sources[1], (DataSpec{"replay", "d/replay/train", -1, 1000000}));  // named after the dataset
  ASSERT_EQ(c.valid.size(), 2u);
  EXPECT_EQ(c.valid[0].name, "manual");
  EXPECT_EQ(c.valid[1], (DataSpec{"stories", "d/replay/validation"}));
  // The same from YAML mappings.
  const auto dir = test::scratch_dir("config_sources");
  const std::string yaml = (dir / "run.yaml").string();
  write_file_atomic(yaml,
                    "model: stories260k\ntrain: {steps: 10, global_batch_size: 4, seq_len: 8}\n"
                    "data:\n  sources:\n    - {name: manual, path: d/manual, weight: 0.75}\n"
                    "    - {path: d/replay/train, tokens: 1000000}\n"
                    "  valid:\n    - {path: d/manual/validation}\n    - {name: stories, path: d/replay/validation}\n");
  RunConfig y = load_run_config(yaml, {});
  EXPECT_EQ(y.sources, c.sources);
  EXPECT_EQ(y.valid, c.valid);
  write_file_atomic(yaml, "model: stories260k\ndata:\n  sources:\n    - {name: a, path: x, share: 1}\n");
  try {
    load_run_config(yaml, {"train.steps=1", "train.global_batch_size=1", "train.seq_len=8"});
    ADD_FAILURE() << "an unknown field was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown field 'share' in an entry"), std::string::npos) << e.what();
  }
  args = required();
  args.push_back("data.sources=[a=x@1]");
  try {
    load_run_config("", args);
    ADD_FAILURE() << "data.path and data.sources together were accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'data.path' and 'data.sources' are both set"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace lt
