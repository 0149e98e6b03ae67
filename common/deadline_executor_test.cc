#include "common/deadline_executor.h"

#include <atomic>
#include <vector>

#include "absl/synchronization/notification.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace tandem {
namespace {

using ::tandem::testing::IsOk;
using ::tandem::testing::StatusIs;

TEST(DeadlineExecutor, RunsEarliestDeadlineFirst) {
  DeadlineExecutor executor({/*threads=*/1, /*max_queue=*/16, nullptr});
  absl::Notification started, release;
  // Hold the only worker so the rest queue up.
  ASSERT_THAT(executor.Submit(absl::InfinitePast(),
                              [&] {
                                started.Notify();
                                release.WaitForNotification();
                              }),
              IsOk());
  started.WaitForNotification();
  absl::Mutex mu;
  std::vector<int> order;
  const absl::Time base = absl::Now();
  for (int deadline_s : {30, 10, 20, 10}) {
    ASSERT_THAT(executor.Submit(base + absl::Seconds(deadline_s),
                                [&, deadline_s] {
                                  absl::MutexLock lock(&mu);
                                  order.push_back(deadline_s);
                                }),
                IsOk());
  }
  EXPECT_EQ(executor.queue_depth(), 4u);
  release.Notify();
  executor.Shutdown();
  EXPECT_EQ(order, (std::vector<int>{10, 10, 20, 30}));
}

TEST(DeadlineExecutor, RefusesWhenFullAndAfterShutdown) {
  DeadlineExecutor executor({1, 2, nullptr});
  absl::Notification release;
  ASSERT_THAT(
      executor.Submit(absl::Now(), [&] { release.WaitForNotification(); }),
      IsOk());
  // The worker may not have taken the first task yet; fill until refused.
  int accepted = 0;
  absl::Status status;
  while ((status = executor.Submit(absl::Now(), [] {})).ok()) ++accepted;
  EXPECT_LE(accepted, 2);
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kResourceExhausted));
  release.Notify();
  executor.Shutdown();
  EXPECT_THAT(executor.Submit(absl::Now(), [] {}),
              StatusIs(absl::StatusCode::kUnavailable));
}

TEST(DeadlineExecutor, ShutdownRunsQueuedTasksOnAllThreads) {
  std::atomic<int> inits{0}, runs{0};
  {
    DeadlineExecutor executor({3, 1000, [&] { ++inits; }});
    for (int i = 0; i < 500; ++i) {
      ASSERT_THAT(executor.Submit(absl::Now(), [&] { ++runs; }), IsOk());
    }
  }  // Destructor drains.
  EXPECT_EQ(runs.load(), 500);
  EXPECT_EQ(inits.load(), 3);
}

}  // namespace
}  // namespace tandem
