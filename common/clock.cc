#include "common/clock.h"

#include <time.h>

#include <chrono>

#include "absl/time/clock.h"

namespace tandem {
namespace {

// absl::Now() follows the wall clock, which can step; anchor it once and
// advance it with the steady clock so durations never run backwards.
class SteadyClock : public Clock {
 public:
  SteadyClock()
      : wall_anchor_(absl::Now()),
        steady_anchor_(std::chrono::steady_clock::now()) {}

  absl::Time Now() const override {
    return wall_anchor_ +
           absl::FromChrono(std::chrono::steady_clock::now() - steady_anchor_);
  }
  void SleepFor(absl::Duration d) override { absl::SleepFor(d); }

 private:
  const absl::Time wall_anchor_;
  const std::chrono::steady_clock::time_point steady_anchor_;
};

}  // namespace

Clock* RealClock() {
  static Clock* const clock = new SteadyClock();
  return clock;
}

absl::Duration ThreadCpuTime() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return absl::DurationFromTimespec(t);
}

FakeClock::FakeClock(absl::Time start) : now_(start) {}

absl::Time FakeClock::Now() const {
  absl::MutexLock lock(&mu_);
  return now_;
}

void FakeClock::Advance(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  now_ += d;
}

}  // namespace tandem
