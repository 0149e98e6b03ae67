// Dynamic batching of the cloud's Continue work, after Triton's dynamic
// batcher. Requests queue per (model, version, start block); each model
// instance (a worker thread) takes a batch from one queue when
//   - the queue holds max_batch_size requests, or one of the preferred batch
//     sizes (the largest it can fill is taken), or
//   - its oldest request has waited max_queue_delay,
// choosing among ready queues the one whose oldest request has the earliest
// deadline. A request whose deadline passes while it waits is answered
// DEADLINE_EXCEEDED and never run. Batches of requests with different exit
// thresholds are fine: the run function decides exits per row.
//
// Thread-safe. The destructor calls Shutdown().
//
//   DynamicBatcher batcher(options, [&](const std::vector<Item*>& batch) {
//     ... one result per item ...
//   });
//   absl::Status s = batcher.Submit(request, deadline, done);
//   if (!s.ok()) Refuse(s);  // RESOURCE_EXHAUSTED when the queue is full.
#ifndef TANDEM_CLOUD_DYNAMIC_BATCHER_H_
#define TANDEM_CLOUD_DYNAMIC_BATCHER_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "tandem/v1/cloud_service.pb.h"
#include "tandem/v1/daemon_config.pb.h"

namespace tandem {

class DynamicBatcher {
 public:
  struct Options {
    int instances = 1;       // Worker threads; each runs one batch at a time.
    int max_batch_size = 1;  // 1: every request runs alone.
    std::vector<int> preferred_batch_sizes;  // Ascending.
    absl::Duration max_queue_delay = absl::ZeroDuration();
    size_t max_queue_size = 1024;  // Waiting requests, over all queues.
    // The model's own largest batch for a request's queue (0: no limit of
    // its own), read when the queue is first seen: batches of that queue
    // stay within it and within max_batch_size (Triton's per-model
    // max_batch_size). Unset: max_batch_size alone.
    std::function<int(const tandem::v1::ContinueRequest&)> model_max_batch;
  };

  using Result = absl::StatusOr<tandem::v1::ContinueResponse>;
  using Done = std::function<void(Result)>;
  struct Item {
    std::shared_ptr<const tandem::v1::ContinueRequest> request;
    absl::Time queued_at;
    absl::Time deadline;
    Done done;
  };
  // Runs one batch (items of one queue, in arrival order): one result each.
  using RunBatch = std::function<std::vector<Result>(const std::vector<Item>&)>;

  // What has run, for tests and metrics.
  struct Stats {
    int64_t batches = 0;
    int64_t requests = 0;          // Run in a batch.
    int64_t expired = 0;           // Answered DEADLINE_EXCEEDED unrun.
    std::map<int, int64_t> sizes;  // Batches by size.
  };

  // Options from a cloud config (defaults filled); INVALID_ARGUMENT naming
  // the field for a batch size above 64, preferred sizes that are not
  // ascending within [1, max_batch_size], or a delay outside [0, 1 s].
  static absl::StatusOr<Options> OptionsFrom(
      const tandem::v1::CloudConfig& config);

  DynamicBatcher(Options options, RunBatch run);
  ~DynamicBatcher();
  DynamicBatcher(const DynamicBatcher&) = delete;
  DynamicBatcher& operator=(const DynamicBatcher&) = delete;

  // Queues `request`; `done` is called once, from a worker thread, with the
  // result. RESOURCE_EXHAUSTED when the queue is full and UNAVAILABLE after
  // Shutdown (then `done` is not called).
  absl::Status Submit(
      std::shared_ptr<const tandem::v1::ContinueRequest> request,
      absl::Time deadline, Done done) ABSL_LOCKS_EXCLUDED(mu_);

  // Stops accepting, runs what is queued, joins the workers. Idempotent, and
  // safe to call from several threads at once.
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);

  size_t queue_depth() const ABSL_LOCKS_EXCLUDED(mu_);
  Stats stats() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void WorkerLoop();
  // Takes the next batch, and the requests that expired while waiting, or
  // waits for them; false once stopping with nothing left.
  bool Next(std::vector<Item>* batch, std::vector<Item>* expired)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // How many of `waiting` requests a batch takes now; 0: not ready.
  int BatchSize(size_t waiting, bool timed_out, int limit) const;

  const Options options_;
  const RunBatch run_;
  mutable absl::Mutex mu_;
  absl::CondVar changed_;
  std::map<std::string, std::deque<Item>> queues_ ABSL_GUARDED_BY(mu_);
  // Largest batch per queue key (the model's limit within max_batch_size).
  std::map<std::string, int> limits_ ABSL_GUARDED_BY(mu_);
  size_t waiting_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  Stats stats_ ABSL_GUARDED_BY(mu_);
  absl::Mutex join_mu_;  // Serializes Shutdown's joins.
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(join_mu_);
};

}  // namespace tandem

#endif  // TANDEM_CLOUD_DYNAMIC_BATCHER_H_
