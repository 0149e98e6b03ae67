// A fixed pool of worker threads that runs tasks earliest-deadline-first from
// a bounded queue. Both daemons run their LibTorch work here, never on gRPC's
// own threads.
//
// Thread-safe. The destructor calls Shutdown(): queued tasks still run (each
// decides for itself whether its deadline has passed), then the threads join.
//
//   DeadlineExecutor executor({.threads = 2, .max_queue = 256});
//   absl::Status s = executor.Submit(deadline, [=] { Work(); });
//   if (!s.ok()) Reject(s);  // RESOURCE_EXHAUSTED when full.
#ifndef TANDEM_COMMON_DEADLINE_EXECUTOR_H_
#define TANDEM_COMMON_DEADLINE_EXECUTOR_H_

#include <cstdint>
#include <functional>
#include <queue>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace tandem {

class DeadlineExecutor {
 public:
  struct Options {
    int threads = 1;
    // Tasks waiting (not running) before Submit refuses.
    size_t max_queue = 1024;
    // Runs first on every worker thread (for thread-local settings).
    std::function<void()> thread_init;
  };

  explicit DeadlineExecutor(Options options);
  ~DeadlineExecutor();
  DeadlineExecutor(const DeadlineExecutor&) = delete;
  DeadlineExecutor& operator=(const DeadlineExecutor&) = delete;

  // Queues `task`; tasks with earlier deadlines run first, ties in order of
  // submission. RESOURCE_EXHAUSTED when the queue is full, UNAVAILABLE after
  // Shutdown. On error the task is destroyed without running.
  absl::Status Submit(absl::Time deadline, absl::AnyInvocable<void()> task);

  // Stops accepting, runs what is queued, joins the threads. Idempotent.
  void Shutdown();

  size_t queue_depth() const;

 private:
  struct Task {
    absl::Time deadline;
    uint64_t sequence;
    // AnyInvocable is move-only; priority_queue::top is const, hence mutable.
    mutable absl::AnyInvocable<void()> run;
    bool operator<(const Task& other) const {  // Inverted: a min-heap.
      if (deadline != other.deadline) return deadline > other.deadline;
      return sequence > other.sequence;
    }
  };

  void WorkerLoop();

  const Options options_;
  mutable absl::Mutex mu_;
  std::priority_queue<Task> queue_ ABSL_GUARDED_BY(mu_);
  uint64_t next_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace tandem

#endif  // TANDEM_COMMON_DEADLINE_EXECUTOR_H_
