// ModelScaler on a fake clock: which task degrades under a synthetic
// overload, in what order, and how it is restored once the load falls.
#include "edge/model_scaler.h"

#include <algorithm>
#include <string>
#include <vector>

#include "common/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tandem {
namespace {

using ::testing::HasSubstr;

// Levels 0, 1 and 3 with 10, 8 and 2 ms of work per job.
ScalerTask Task(std::string name, int criticality) {
  ScalerTask task;
  task.name = std::move(name);
  task.criticality = criticality;
  task.levels = {0, 1, 3};
  task.work = {absl::Milliseconds(10), absl::Milliseconds(8),
               absl::Milliseconds(2)};
  return task;
}

class ModelScalerTest : public ::testing::Test {
 protected:
  void Make(ModelScaler::Options options = {}) {
    options.window = absl::Milliseconds(100);
    scaler_ = std::make_unique<ModelScaler>(
        std::vector<ScalerTask>{Task("low", 0), Task("high", 2)}, options,
        &clock_);
    scaler_->Tick(busy_);  // Opens the first window.
  }
  // One window: `per_task` releases of each task, the worker `utilization`
  // busy, `misses` of the low task.
  void Window(int per_task, double utilization, int misses = 0) {
    for (int i = 0; i < per_task; ++i) {
      scaler_->OnRelease("low");
      scaler_->OnRelease("high");
    }
    for (int i = 0; i < misses; ++i) scaler_->OnOutcome("low", true);
    scaler_->OnOutcome("high", false);
    clock_.Advance(absl::Milliseconds(100));
    busy_ += absl::Milliseconds(100) * utilization;
    scaler_->Tick(busy_);
  }

  // What `per_task` jobs of each task per window keep the worker busy at
  // the current levels (the demand the workers would measure).
  double Demand(int per_task) {
    const absl::Duration work[] = {absl::Milliseconds(10),
                                   absl::Milliseconds(8), absl::ZeroDuration(),
                                   absl::Milliseconds(2)};
    const absl::Duration busy =
        per_task * (work[scaler_->Level("low")] + work[scaler_->Level("high")]);
    return std::min(1.0, absl::FDivDuration(busy, absl::Milliseconds(100)));
  }

  FakeClock clock_;
  absl::Duration busy_;
  std::unique_ptr<ModelScaler> scaler_;
};

TEST_F(ModelScalerTest, OverloadDegradesTheLeastCriticalTaskFirst) {
  Make();
  // 5 jobs of each task per 100 ms at 10 ms: 100% of the worker.
  Window(5, 1.0);
  EXPECT_GT(scaler_->Level("low"), 0);
  EXPECT_EQ(scaler_->Level("high"), 0);
  // Still overloaded: low goes as far as it can before high moves.
  while (scaler_->Level("low") < 3) Window(5, 1.0);
  EXPECT_EQ(scaler_->Level("high"), 0);
  Window(5, 1.0);
  EXPECT_GT(scaler_->Level("high"), 0);
  const std::vector<ModelScaler::Change> changes = scaler_->Changes();
  ASSERT_FALSE(changes.empty());
  EXPECT_EQ(changes.front().task, "low");
  EXPECT_THAT(changes.front().why, HasSubstr("busy"));
  EXPECT_THAT(scaler_->Describe(), HasSubstr("task 'low'"));
}

TEST_F(ModelScalerTest, AMissDegradesEvenAtModerateLoad) {
  Make();
  Window(1, 0.5, /*misses=*/1);
  EXPECT_GT(scaler_->Level("low"), 0);
  EXPECT_EQ(scaler_->Level("high"), 0);
}

TEST_F(ModelScalerTest, DegradesSeveralStepsWhenThePredictedLoadStaysHigh) {
  Make();
  // 9 jobs per task per 100 ms: 180% at level 0. One step of low (to 1)
  // still predicts 162%: the same window keeps going, to low at 3 and then
  // high, until the prediction fits.
  Window(9, 1.0);
  EXPECT_EQ(scaler_->Level("low"), 3);
  EXPECT_GT(scaler_->Level("high"), 0);
}

TEST_F(ModelScalerTest, RestoresHighestCriticalityFirstWithHysteresis) {
  Make();
  Window(9, 1.0);
  Window(9, 1.0);
  ASSERT_EQ(scaler_->Level("low"), 3);
  ASSERT_EQ(scaler_->Level("high"), 3);
  // The load falls to 1 job per task per 100 ms (4% busy at level 3).
  // Three calm windows are not enough (restore_windows 4).
  for (int i = 0; i < 3; ++i) Window(1, Demand(1));
  EXPECT_EQ(scaler_->Level("high"), 3);
  Window(1, Demand(1));
  EXPECT_EQ(scaler_->Level("high"), 1);  // One step, the critical task first.
  EXPECT_EQ(scaler_->Level("low"), 3);
  for (int i = 0; i < 40; ++i) Window(1, Demand(1));
  // Everything back: 20 ms per 100 ms predicted, below restore_utilization.
  EXPECT_EQ(scaler_->Level("high"), 0);
  EXPECT_EQ(scaler_->Level("low"), 0);
}

TEST_F(ModelScalerTest, DoesNotRestoreIntoThePredictedOverload) {
  Make();
  Window(9, 1.0);
  ASSERT_EQ(scaler_->Level("low"), 3);
  ASSERT_EQ(scaler_->Level("high"), 1);
  // 4 jobs per task per 100 ms: calm. Restoring high to level 0 predicts
  // (4*2 + 4*10) ms = 48% per 100 ms: allowed; restoring low to level 1
  // then predicts (4*8 + 4*10) = 72% >= 60%: refused, for good.
  for (int i = 0; i < 60; ++i) Window(4, Demand(4));
  EXPECT_EQ(scaler_->Level("high"), 0);
  EXPECT_EQ(scaler_->Level("low"), 3);
}

TEST_F(ModelScalerTest, DisabledNeverChangesAndUnknownTasksAreLevelZero) {
  ModelScaler::Options options;
  options.enabled = false;
  Make(options);
  for (int i = 0; i < 10; ++i) Window(9, 1.0, 3);
  EXPECT_EQ(scaler_->Level("low"), 0);
  EXPECT_EQ(scaler_->Level("high"), 0);
  EXPECT_EQ(scaler_->Level("nobody"), 0);
  EXPECT_TRUE(scaler_->Changes().empty());
}

TEST(ScalerLevelsTest, ALevelIsKeptOnlyWhenItSavesWork) {
  const absl::Duration ms = absl::Milliseconds(1);
  // Every level cheaper than the last: all kept.
  ScalerTask task = ScalerLevels("t", 1, 10 * ms, 8 * ms, false, 2 * ms);
  EXPECT_EQ(task.name, "t");
  EXPECT_EQ(task.criticality, 1);
  EXPECT_THAT(task.levels, ::testing::ElementsAre(0, 1, 3));
  EXPECT_THAT(task.work, ::testing::ElementsAre(10 * ms, 8 * ms, 2 * ms));
  // Most jobs leave before the exit a forced job must reach (1.5 ms on
  // average, 2.8 ms forced): no level 3.
  task = ScalerLevels("t", 1, 1.5 * ms, 1.3 * ms, false, 2.8 * ms);
  EXPECT_THAT(task.levels, ::testing::ElementsAre(0, 1));
  // The floor's thresholds cost no less: no level 1, the forced exit stays.
  task = ScalerLevels("t", 1, 10 * ms, 10 * ms, false, 4 * ms);
  EXPECT_THAT(task.levels, ::testing::ElementsAre(0, 3));
  // Offloading replaces the forced exit; absent figures are left out.
  task = ScalerLevels("t", 1, 10 * ms, std::nullopt, true, 4 * ms);
  EXPECT_THAT(task.levels, ::testing::ElementsAre(0, 2));
  EXPECT_THAT(task.work, ::testing::ElementsAre(10 * ms, absl::ZeroDuration()));
  task = ScalerLevels("t", 1, 10 * ms, std::nullopt, false, std::nullopt);
  EXPECT_THAT(task.levels, ::testing::ElementsAre(0));
}

}  // namespace
}  // namespace tandem
