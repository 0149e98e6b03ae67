// Time as a dependency: code that measures or waits takes a Clock*, so tests
// drive it with FakeClock instead of sleeping.
#ifndef TANDEM_COMMON_CLOCK_H_
#define TANDEM_COMMON_CLOCK_H_

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace tandem {

// Thread-safe. Implementations must be monotonic.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
  virtual void SleepFor(absl::Duration d) = 0;
};

// The process-wide real clock (never deleted).
Clock* RealClock();

// CPU time the calling thread has run (user and system), monotonic per
// thread: the time a step took of its own, whatever else shared the core.
absl::Duration ThreadCpuTime();

// A clock that moves only when told to. SleepFor advances it by the duration
// (a sleeping caller simply finds the time moved). Thread-safe.
class FakeClock : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::UnixEpoch());

  absl::Time Now() const override;
  void SleepFor(absl::Duration d) override { Advance(d); }
  void Advance(absl::Duration d);

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tandem

#endif  // TANDEM_COMMON_CLOCK_H_
