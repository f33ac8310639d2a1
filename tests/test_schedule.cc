// Learning-rate schedules: values at the boundaries of every phase, warm-up,
// and the option errors.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <string>
#include <vector>

#include "sparsetrain/error.h"
#include "sparsetrain/schedule.h"

namespace sparsetrain {
namespace {

// 10 steps per epoch, 10 epochs: 100 steps.
LrScheduleOptions options(const std::string& kind) {
  LrScheduleOptions o;
  o.kind = kind;
  o.base_lr = 1.0f;
  o.steps_per_epoch = 10;
  o.total_epochs = 10;
  return o;
}

void expect_error(const LrScheduleOptions& o, const std::string& piece) {
  try {
    make_lr_schedule(o);
    ADD_FAILURE() << "expected an error containing '" << piece << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(piece), std::string::npos) << e.what();
  }
}

TEST(LrSchedule, Constant) {
  LrScheduleOptions o = options("constant");
  o.base_lr = 0.1f;
  auto s = make_lr_schedule(o);
  EXPECT_EQ(s->lr(0), 0.1f);
  EXPECT_EQ(s->lr(99), 0.1f);
  EXPECT_EQ(s->lr(100000), 0.1f);
  EXPECT_EQ(s->lr(-5), 0.1f);
  EXPECT_NE(s->describe().find("constant"), std::string::npos);
}

TEST(LrSchedule, MultistepDropsAtMilestoneEpochs) {
  LrScheduleOptions o = options("multistep");
  o.milestones = {3, 6};
  o.gamma = 0.5f;
  auto s = make_lr_schedule(o);
  EXPECT_EQ(s->lr(0), 1.0f);
  EXPECT_EQ(s->lr(29), 1.0f);  // last step of epoch 2
  EXPECT_EQ(s->lr(30), 0.5f);  // first step of epoch 3
  EXPECT_EQ(s->lr(59), 0.5f);
  EXPECT_EQ(s->lr(60), 0.25f);
  EXPECT_EQ(s->lr(99), 0.25f);
  EXPECT_EQ(s->lr(500), 0.25f);
}

TEST(LrSchedule, CosineFromBaseToMin) {
  LrScheduleOptions o = options("cosine");
  auto s = make_lr_schedule(o);
  EXPECT_FLOAT_EQ(s->lr(0), 1.0f);
  EXPECT_FLOAT_EQ(s->lr(25), static_cast<float>((1.0 + std::cos(std::numbers::pi / 4)) / 2));
  EXPECT_FLOAT_EQ(s->lr(50), 0.5f);
  EXPECT_NEAR(s->lr(100), 0.0f, 1e-7f);
  EXPECT_EQ(s->lr(1000), 0.0f);
  o.min_lr = 0.1f;
  s = make_lr_schedule(o);
  EXPECT_FLOAT_EQ(s->lr(50), 0.55f);
  EXPECT_FLOAT_EQ(s->lr(100), 0.1f);
  EXPECT_FLOAT_EQ(s->lr(12345), 0.1f);
  // Monotone non-increasing.
  for (int64_t t = 1; t <= 100; ++t) EXPECT_LE(s->lr(t), s->lr(t - 1)) << t;
}

TEST(LrSchedule, CosineStartsAfterWarmup) {
  LrScheduleOptions o = options("cosine");
  o.warmup_epochs = 2;  // 20 steps; the cosine spans the remaining 80
  auto s = make_lr_schedule(o);
  EXPECT_FLOAT_EQ(s->lr(0), 1.0f / 20);
  EXPECT_FLOAT_EQ(s->lr(9), 10.0f / 20);
  EXPECT_FLOAT_EQ(s->lr(19), 1.0f);
  EXPECT_FLOAT_EQ(s->lr(20), 1.0f);
  EXPECT_FLOAT_EQ(s->lr(60), 0.5f);
  EXPECT_NEAR(s->lr(100), 0.0f, 1e-7f);
}

TEST(LrSchedule, WarmupStartFactorAndComposition) {
  LrScheduleOptions o = options("constant");
  o.warmup_epochs = 2;
  o.warmup_start_factor = 0.5f;
  auto s = make_lr_schedule(o);
  EXPECT_FLOAT_EQ(s->lr(0), 0.5f + 0.5f / 20);
  EXPECT_FLOAT_EQ(s->lr(19), 1.0f);
  EXPECT_FLOAT_EQ(s->lr(20), 1.0f);

  // Multistep milestones stay absolute epochs under warm-up.
  o = options("multistep");
  o.warmup_epochs = 1;
  o.milestones = {1, 5};
  o.gamma = 0.1f;
  s = make_lr_schedule(o);
  EXPECT_FLOAT_EQ(s->lr(0), 0.1f);
  EXPECT_FLOAT_EQ(s->lr(9), 1.0f);
  EXPECT_FLOAT_EQ(s->lr(10), 0.1f);
  EXPECT_FLOAT_EQ(s->lr(50), 0.01f);
}

TEST(LrSchedule, OneCycleMatchesTorchBoundaries) {
  LrScheduleOptions o = options("onecycle");
  o.onecycle_pct_start = 0.3f;
  o.onecycle_div_factor = 25.0f;
  o.onecycle_final_div = 1e4f;
  auto s = make_lr_schedule(o);
  const double initial = 1.0 / 25, final_lr = initial / 1e4;
  // Phase 1 ends at step 0.3 * 100 - 1 = 29, phase 2 at step 99.
  EXPECT_FLOAT_EQ(s->lr(0), static_cast<float>(initial));
  EXPECT_FLOAT_EQ(s->lr(29), 1.0f);
  EXPECT_FLOAT_EQ(s->lr(64), static_cast<float>(final_lr + (1.0 - final_lr) / 2));
  EXPECT_FLOAT_EQ(s->lr(99), static_cast<float>(final_lr));
  EXPECT_FLOAT_EQ(s->lr(1000), static_cast<float>(final_lr));
  for (int64_t t = 1; t <= 29; ++t) EXPECT_GT(s->lr(t), s->lr(t - 1)) << t;
  for (int64_t t = 30; t <= 99; ++t) EXPECT_LT(s->lr(t), s->lr(t - 1)) << t;
}

TEST(LrSchedule, RejectsBadOptions) {
  LrScheduleOptions o = options("foo");
  expect_error(o,
               "--lr-schedule: unknown schedule 'foo' (expected constant, multistep, cosine, "
               "onecycle)");
  o = options("constant");
  o.base_lr = 0.0f;
  expect_error(o, "--lr");
  o.base_lr = std::nanf("");
  expect_error(o, "--lr");
  o = options("constant");
  o.total_epochs = 0;
  expect_error(o, "--epochs");
  o = options("constant");
  o.steps_per_epoch = 0;
  expect_error(o, "steps per epoch");
  o = options("cosine");
  o.warmup_epochs = 10;
  expect_error(o, "--warmup-epochs");
  o.warmup_epochs = -1;
  expect_error(o, "--warmup-epochs");
  o = options("constant");
  o.warmup_epochs = 1;
  o.warmup_start_factor = 1.5f;
  expect_error(o, "--warmup-start-factor");

  o = options("multistep");
  expect_error(o, "--lr-milestones");  // none given
  o.milestones = {5, 3};
  expect_error(o, "--lr-milestones: milestones must be strictly increasing");
  o.milestones = {0};
  expect_error(o, "--lr-milestones: milestone 0");
  o.milestones = {11};
  expect_error(o, "--lr-milestones: milestone 11");
  o.milestones = {5};
  o.gamma = 0.0f;
  expect_error(o, "--lr-gamma");

  o = options("cosine");
  o.min_lr = 2.0f;
  expect_error(o, "--min-lr");
  o.min_lr = -1.0f;
  expect_error(o, "--min-lr");

  o = options("onecycle");
  o.onecycle_pct_start = 1.0f;
  expect_error(o, "--lr-schedule onecycle");
  o.onecycle_pct_start = 0.3f;
  o.onecycle_div_factor = 0.0f;
  expect_error(o, "onecycle_div_factor");
  o.onecycle_div_factor = 25.0f;
  o.onecycle_final_div = -1.0f;
  expect_error(o, "onecycle_final_div");
  o.onecycle_final_div = 1e4f;
  o.steps_per_epoch = 1;
  o.total_epochs = 3;  // 0.3 * 3 steps: no rising phase
  expect_error(o, "--lr-schedule onecycle");
}

}  // namespace
}  // namespace sparsetrain
