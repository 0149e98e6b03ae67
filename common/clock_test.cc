#include "common/clock.h"

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace tandem {
namespace {

TEST(FakeClock, MovesOnlyWhenAdvanced) {
  FakeClock clock(absl::FromUnixSeconds(100));
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(100));
  clock.Advance(absl::Milliseconds(250));
  EXPECT_EQ(clock.Now(), absl::FromUnixMillis(100250));
  clock.SleepFor(absl::Seconds(1));
  EXPECT_EQ(clock.Now(), absl::FromUnixMillis(101250));
}

TEST(RealClock, IsMonotonic) {
  Clock* clock = RealClock();
  absl::Time previous = clock->Now();
  for (int i = 0; i < 1000; ++i) {
    const absl::Time now = clock->Now();
    ASSERT_GE(now, previous);
    previous = now;
  }
}

TEST(ThreadCpuTime, CountsRunningNotSleeping) {
  // Sleeping 50 ms costs the thread (almost) no CPU time; spinning until
  // 20 ms of CPU time have passed takes at least 20 ms of wall time.
  const absl::Duration before_sleep = ThreadCpuTime();
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_LT(ThreadCpuTime() - before_sleep, absl::Milliseconds(10));
  const absl::Time start = absl::Now();
  const absl::Duration spin_until = ThreadCpuTime() + absl::Milliseconds(20);
  while (ThreadCpuTime() < spin_until) {
  }
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(20));
}

}  // namespace
}  // namespace tandem
