// Runs callbacks at given times on one thread of its own: deadline guards
// that must fire even when the thing they guard is stuck (a gRPC call whose
// transport holds it past its deadline, say).
//
//   TimerThread timers;
//   timers.At(deadline, [weak] { if (auto call = weak.lock()) call->Fail(); });
//
// Callbacks run one at a time, in time order, and should be short: they
// delay each other. Entries cannot be cancelled; a callback that may outlive
// what it guards holds a weak_ptr. Thread-safe.
#ifndef TANDEM_COMMON_TIMER_THREAD_H_
#define TANDEM_COMMON_TIMER_THREAD_H_

#include <cstdint>
#include <map>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace tandem {

class TimerThread {
 public:
  TimerThread();
  // Runs no more callbacks; those not yet due are dropped, unrun.
  ~TimerThread();
  TimerThread(const TimerThread&) = delete;
  TimerThread& operator=(const TimerThread&) = delete;

  // Runs `callback` at `when` (at once if it has passed) on the timer's
  // thread. Callbacks due at the same time run in the order they were added.
  void At(absl::Time when, absl::AnyInvocable<void() &&> callback)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Callbacks added and not yet run.
  size_t pending() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Loop() ABSL_LOCKS_EXCLUDED(mu_);

  mutable absl::Mutex mu_;
  absl::CondVar changed_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t next_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  // Keyed by (time, sequence): due order, ties in the order added.
  std::map<std::pair<absl::Time, uint64_t>, absl::AnyInvocable<void() &&>>
      timers_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;  // Last: starts after the members it uses.
};

}  // namespace tandem

#endif  // TANDEM_COMMON_TIMER_THREAD_H_
