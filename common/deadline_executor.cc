#include "common/deadline_executor.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace tandem {

DeadlineExecutor::DeadlineExecutor(Options options)
    : options_(std::move(options)) {
  const int threads = options_.threads < 1 ? 1 : options_.threads;
  threads_.reserve(threads);
  for (int i = 0; i < threads; ++i)
    threads_.emplace_back([this] { WorkerLoop(); });
}

DeadlineExecutor::~DeadlineExecutor() { Shutdown(); }

absl::Status DeadlineExecutor::Submit(absl::Time deadline,
                                      absl::AnyInvocable<void()> task) {
  absl::MutexLock lock(&mu_);
  if (stopping_) return absl::UnavailableError("executor is shutting down");
  if (queue_.size() >= options_.max_queue) {
    return absl::ResourceExhaustedError(
        absl::StrCat("queue full (", options_.max_queue, " requests waiting)"));
  }
  queue_.push(Task{deadline, next_sequence_++, std::move(task)});
  return absl::OkStatus();
}

void DeadlineExecutor::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ && threads_.empty()) return;
    stopping_ = true;
  }
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

size_t DeadlineExecutor::queue_depth() const {
  absl::MutexLock lock(&mu_);
  return queue_.size();
}

void DeadlineExecutor::WorkerLoop() {
  if (options_.thread_init) options_.thread_init();
  while (true) {
    absl::AnyInvocable<void()> run;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
        return stopping_ || !queue_.empty();
      };
      mu_.Await(absl::Condition(&ready));
      if (queue_.empty()) return;  // Stopping and drained.
      run = std::move(queue_.top().run);
      queue_.pop();
    }
    run();
  }
}

}  // namespace tandem
