#include "common/clock.h"

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

}  // namespace
}  // namespace tandem
