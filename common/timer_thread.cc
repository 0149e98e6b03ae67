#include "common/timer_thread.h"

#include <utility>

#include "absl/time/clock.h"

namespace tandem {

TimerThread::TimerThread() : thread_([this] { Loop(); }) {}

TimerThread::~TimerThread() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    changed_.Signal();
  }
  thread_.join();
}

void TimerThread::At(absl::Time when, absl::AnyInvocable<void() &&> callback) {
  absl::MutexLock lock(&mu_);
  const bool earliest = timers_.empty() || when < timers_.begin()->first.first;
  timers_.emplace(std::make_pair(when, next_sequence_++), std::move(callback));
  if (earliest) changed_.Signal();
}

size_t TimerThread::pending() const {
  absl::MutexLock lock(&mu_);
  return timers_.size();
}

void TimerThread::Loop() {
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    if (timers_.empty()) {
      changed_.Wait(&mu_);
      continue;
    }
    auto first = timers_.begin();
    if (first->first.first > absl::Now()) {
      changed_.WaitWithDeadline(&mu_, first->first.first);
      continue;
    }
    absl::AnyInvocable<void()&&> callback = std::move(first->second);
    timers_.erase(first);
    mu_.Unlock();
    std::move(callback)();
    mu_.Lock();
  }
}

}  // namespace tandem
