// Learning-rate schedules (train/schedule.h) against PyTorch's own schedulers, phase by phase
// (tests/fixtures/lr_schedules.json, made by tools/make_lr_fixture.py): cosine, linear,
// constant and wsd with linear, cosine and 1-sqrt decays, a cooldown of a given length and a
// re-warm from a previous run's final learning rate; the plan line; and a changed schedule on
// resume is named.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/file.h"
#include "test_util.h"
#include "train/schedule.h"

namespace lt {
namespace {

LrSchedule from_fixture(const nlohmann::json& c) {
  LrSchedule s;
  s.kind = *parse_enum<ScheduleKind>(c["kind"].get<std::string>());
  s.lr = c["lr"];
  s.min_lr = c["min_lr"];
  s.warmup = c["warmup"];
  s.decay = c["decay"];
  s.warmup_lr = c.value("warmup_lr", 0.0);
  if (s.kind == ScheduleKind::wsd) {
    s.shape = *parse_enum<DecayShape>(c["shape"].get<std::string>());
    s.decay_fraction = c["decay_fraction"];
    s.cooldown = c["cooldown"];
  }
  return s;
}

TEST(LrSchedule, EqualsPyTorchSchedulers) {
  const auto fx = nlohmann::json::parse(read_file(test::source_path("tests/fixtures/lr_schedules.json")));
  ASSERT_EQ(fx["schedules"].size(), 7u);
  for (const auto& e : fx["schedules"]) {
    const LrSchedule s = from_fixture(e["config"]);
    const auto& lrs = e["lrs"];
    ASSERT_EQ(int64_t(lrs.size()), e["config"]["steps"].get<int64_t>());
    for (size_t i = 0; i < lrs.size(); ++i) {
      const double want = lrs[i];
      EXPECT_NEAR(s.at(int64_t(i)), want, 1e-12 * std::max(1e-3, want)) << e["config"].dump() << " update " << i;
    }
  }
}

TEST(LrSchedule, WsdPhasesAndPlanLine) {
  LrSchedule s{ScheduleKind::wsd, 3e-3, 3e-4, 10, 120};  // decay_fraction 0.2, 1-sqrt
  EXPECT_EQ(s.decay_start(), 96);
  EXPECT_EQ(s.at(95), 3e-3);  // the last stable update
  EXPECT_LT(s.at(96) - 3e-3, 1e-18);
  EXPECT_LT(s.at(97), 3e-3);
  EXPECT_EQ(s.describe(120),
            "wsd (1-sqrt decay), warm-up 10 steps 0 -> 0.003, stable 0.003 to step 96, decay from step 97 to 120 "
            "(0.003 -> 0.0003); first 0.0003 (step 1), peak 0.003 (step 10), last 0.0003568 (step 120)");
  s.cooldown = 30;  // a cooldown of a given length replaces the fraction
  EXPECT_EQ(s.decay_start(), 90);
  // A run that stops in the stable phase says so.
  EXPECT_NE(s.describe(60).find("the run ends before the decay starts"), std::string::npos) << s.describe(60);
}

TEST(LrSchedule, ChangedScheduleOnResumeIsNamed) {
  LrSchedule a{ScheduleKind::wsd, 3e-3, 3e-4, 10, 1000};
  nlohmann::json saved = a.to_json();
  saved["step"] = 500;
  EXPECT_EQ(schedule_change(saved, a, 500), "");
  EXPECT_EQ(LrSchedule::from_json(saved).to_json(), a.to_json());
  // A cooldown from step 500 of that run: the same lr at 500, decaying to 600.
  LrSchedule b = a;
  b.decay = 600;
  b.cooldown = 100;
  const std::string note = schedule_change(saved, b, 500);
  EXPECT_NE(note.find("At step 501 the lr is 0.003 (it was going to be 0.003)"), std::string::npos) << note;
  // Older checkpoints' scheduler records (no wsd fields) still parse.
  EXPECT_NO_THROW(LrSchedule::from_json(
      {{"kind", "cosine"}, {"lr", 1e-3}, {"min_lr", 1e-4}, {"warmup", 2}, {"decay", 12}, {"step", 3}}));
}

}  // namespace
}  // namespace lt
