#include "edge/admission.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tandem {
namespace {

using ::testing::HasSubstr;

RtTask Task(std::string name, double period_ms, double deadline_ms,
            int criticality, double cheapest_ms, double full_ms) {
  RtTask t;
  t.name = std::move(name);
  t.period = absl::Milliseconds(period_ms);
  t.deadline = absl::Milliseconds(deadline_ms);
  t.criticality = criticality;
  t.cheapest_work = absl::Milliseconds(cheapest_ms);
  t.full_work = absl::Milliseconds(full_ms);
  return t;
}

TEST(Admission, OneWorkerAdmitsUpToFullDensity) {
  // 10/33 + 2/5 = 0.703 at full accuracy: fits.
  AdmissionResult r = AdmitTasks(
      {Task("camera", 33, 33, 2, 5, 10), Task("fmnist", 5, 5, 1, 1, 2)}, 1);
  ASSERT_TRUE(r.status.ok()) << r.status;
  ASSERT_EQ(r.levels.size(), 2u);
  EXPECT_EQ(r.levels[0].criticality, 2);
  EXPECT_NEAR(r.levels[0].full_density, 10.0 / 33, 1e-9);
  EXPECT_NEAR(r.levels[1].full_density, 10.0 / 33 + 2.0 / 5, 1e-9);
  EXPECT_NEAR(r.levels[1].cheapest_density, 5.0 / 33 + 1.0 / 5, 1e-9);
  EXPECT_DOUBLE_EQ(r.levels[1].bound, 1.0);
  EXPECT_THAT(r.explanation, HasSubstr("fits at full accuracy"));
}

TEST(Admission, FitsOnlyByScalingIsAdmittedAndSaysSo) {
  // Full: 20/33 + 3/5 = 1.21 > 1; cheapest: 8/33 + 1/5 = 0.44.
  AdmissionResult r = AdmitTasks(
      {Task("camera", 33, 33, 2, 8, 20), Task("fmnist", 5, 5, 1, 1, 3)}, 1);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_THAT(r.explanation, HasSubstr("fits only by scaling models down"));
}

TEST(Admission, RefusesNamingTheTaskAndTheFigures) {
  // The critical level fits (0.5); adding fmnist at its cheapest (0.6)
  // does not.
  AdmissionResult r = AdmitTasks(
      {Task("fmnist", 5, 5, 0, 3, 4), Task("camera", 20, 20, 1, 10, 12)}, 1);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(r.status.message(), HasSubstr("task 'fmnist' (criticality 0)"));
  EXPECT_THAT(r.status.message(), HasSubstr("3.00 ms every 5.00 ms"));
  EXPECT_THAT(r.status.message(), HasSubstr("the density is 1.100"));
  ASSERT_EQ(r.levels.size(), 2u);
  EXPECT_LE(r.levels[0].cheapest_density, r.levels[0].bound);
  EXPECT_THAT(r.explanation, HasSubstr("does not fit"));
}

TEST(Admission, ConstrainedDeadlinesCountAgainstTheDeadline) {
  // 4 ms of work every 10 ms but due within 4.5 ms: density 0.89, and a
  // second such task cannot fit although utilization would be 0.8.
  AdmissionResult one = AdmitTasks({Task("a", 10, 4.5, 0, 4, 4)}, 1);
  EXPECT_TRUE(one.status.ok());
  AdmissionResult two =
      AdmitTasks({Task("a", 10, 4.5, 0, 4, 4), Task("b", 10, 4.5, 0, 4, 4)}, 1);
  EXPECT_EQ(two.status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(two.status.message(), HasSubstr("'b'"));
}

TEST(Admission, MoreWorkersRaiseTheBoundByTheDensityRule) {
  // Three tasks of density 0.5 on two workers: 1.5 <= 2 - 0.5 = 1.5.
  const std::vector<RtTask> tasks = {Task("a", 10, 10, 0, 5, 5),
                                     Task("b", 10, 10, 0, 5, 5),
                                     Task("c", 10, 10, 0, 5, 5)};
  EXPECT_TRUE(AdmitTasks(tasks, 2).status.ok());
  EXPECT_FALSE(AdmitTasks(tasks, 1).status.ok());
  // One heavy task (0.9) lowers the two-worker bound to 1.1.
  AdmissionResult heavy = AdmitTasks(
      {Task("big", 10, 10, 0, 9, 9), Task("small", 10, 10, 0, 3, 3)}, 2);
  EXPECT_EQ(heavy.status.code(), absl::StatusCode::kResourceExhausted);
}

TEST(Admission, SporadicTasksUseTheirDeadline) {
  RtTask sporadic = Task("alarm", 1, 50, 3, 10, 10);
  sporadic.period = absl::InfiniteDuration();
  AdmissionResult r = AdmitTasks({sporadic}, 1);
  ASSERT_TRUE(r.status.ok());
  EXPECT_NEAR(r.levels[0].cheapest_density, 0.2, 1e-9);
}

TEST(Admission, RefusesMalformedTasks) {
  EXPECT_EQ(AdmitTasks({Task("x", 10, 0, 0, 1, 1)}, 1).status.code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(AdmitTasks({Task("x", 10, 10, 0, 2, 1)}, 1).status.code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(AdmitTasks({Task("x", 10, 10, 0, 1, 1)}, 0).status.code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tandem
