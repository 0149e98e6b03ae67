#include "common/timer_thread.h"

#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace tandem {
namespace {

TEST(TimerThread, RunsCallbacksInTimeOrderNotInTheOrderAdded) {
  TimerThread timers;
  absl::Mutex mu;
  std::vector<int> order;
  absl::Notification done;
  const absl::Time now = absl::Now();
  auto record = [&](int i) {
    return [&, i] {
      absl::MutexLock lock(&mu);
      order.push_back(i);
    };
  };
  // The first callback holds the timer thread until every timer is in, so a
  // test thread descheduled between two At calls (as under TSan on a busy
  // machine) cannot let an early timer run before a later one is added.
  absl::Notification all_added;
  timers.At(now, [&] { all_added.WaitForNotification(); });
  timers.At(now + absl::Milliseconds(60), record(3));
  timers.At(now + absl::Milliseconds(20), record(1));
  timers.At(now + absl::Milliseconds(40), record(2));
  timers.At(now + absl::Milliseconds(40), record(22));  // Tie: added later.
  timers.At(now + absl::Milliseconds(80), [&] { done.Notify(); });
  all_added.Notify();
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  absl::MutexLock lock(&mu);
  EXPECT_EQ(order, (std::vector<int>{1, 2, 22, 3}));
}

TEST(TimerThread, DoesNotRunACallbackBeforeItsTime) {
  TimerThread timers;
  absl::Notification fired;
  absl::Time ran;
  const absl::Time when = absl::Now() + absl::Milliseconds(50);
  timers.At(when, [&] {
    ran = absl::Now();
    fired.Notify();
  });
  ASSERT_TRUE(fired.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_GE(ran, when);
}

TEST(TimerThread, APassedTimeRunsAtOnce) {
  TimerThread timers;
  absl::Notification fired;
  timers.At(absl::Now() - absl::Seconds(1), [&] { fired.Notify(); });
  EXPECT_TRUE(fired.WaitForNotificationWithTimeout(absl::Seconds(10)));
}

TEST(TimerThread, AnEarlierTimerAddedWhileWaitingOnALaterOneIsNotDelayed) {
  TimerThread timers;
  timers.At(absl::Now() + absl::Hours(1), [] {});
  absl::Notification fired;
  timers.At(absl::Now(), [&] { fired.Notify(); });
  EXPECT_TRUE(fired.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(timers.pending(), 1u);
}

TEST(TimerThread, DestructionDropsTimersNotYetDue) {
  bool ran = false;
  {
    TimerThread timers;
    timers.At(absl::Now() + absl::Hours(1), [&] { ran = true; });
  }
  EXPECT_FALSE(ran);
}

}  // namespace
}  // namespace tandem
