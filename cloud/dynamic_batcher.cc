#include "cloud/dynamic_batcher.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/clock.h"

namespace tandem {
namespace {

constexpr int kMaxBatchSize = 64;
constexpr absl::Duration kMaxQueueDelay = absl::Seconds(1);

std::string QueueKey(const tandem::v1::ContinueRequest& request) {
  return absl::StrCat(request.model_name(), "\n", request.model_version(), "\n",
                      request.start_block());
}

}  // namespace

absl::StatusOr<DynamicBatcher::Options> DynamicBatcher::OptionsFrom(
    const tandem::v1::CloudConfig& config) {
  Options options;
  options.instances = std::max(1, config.worker_threads());
  if (config.max_queue_size() > 0)
    options.max_queue_size = static_cast<size_t>(config.max_queue_size());
  if (config.max_batch_size() < 0 || config.max_batch_size() > kMaxBatchSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_batch_size ", config.max_batch_size(),
                     " is outside [0, ", kMaxBatchSize, "]"));
  }
  options.max_batch_size = std::max(1, config.max_batch_size());
  const tandem::v1::DynamicBatching& batching = config.dynamic_batching();
  int previous = 0;
  for (int size : batching.preferred_batch_size()) {
    if (size <= previous || size > options.max_batch_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("dynamic_batching.preferred_batch_size ", size,
                       ": sizes must ascend within [1, max_batch_size = ",
                       options.max_batch_size, "]"));
    }
    options.preferred_batch_sizes.push_back(size);
    previous = size;
  }
  const absl::Duration delay =
      absl::Microseconds(batching.max_queue_delay_microseconds());
  if (delay < absl::ZeroDuration() || delay > kMaxQueueDelay) {
    return absl::InvalidArgumentError(absl::StrCat(
        "dynamic_batching.max_queue_delay_microseconds ",
        batching.max_queue_delay_microseconds(), " is outside [0, 1000000]"));
  }
  options.max_queue_delay = delay;
  return options;
}

DynamicBatcher::DynamicBatcher(Options options, RunBatch run)
    : options_(std::move(options)), run_(std::move(run)) {
  const int instances = std::max(1, options_.instances);
  absl::MutexLock join(&join_mu_);
  threads_.reserve(instances);
  for (int i = 0; i < instances; ++i)
    threads_.emplace_back([this] { WorkerLoop(); });
}

DynamicBatcher::~DynamicBatcher() { Shutdown(); }

absl::Status DynamicBatcher::Submit(
    std::shared_ptr<const tandem::v1::ContinueRequest> request,
    absl::Time deadline, Done done) {
  const std::string key = QueueKey(*request);
  const int model_limit =
      options_.model_max_batch ? options_.model_max_batch(*request) : 0;
  absl::MutexLock lock(&mu_);
  if (stopping_) return absl::UnavailableError("the server is shutting down");
  if (waiting_ >= options_.max_queue_size) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "queue full (", options_.max_queue_size, " requests waiting)"));
  }
  if (limits_.count(key) == 0) {
    limits_[key] = model_limit > 0
                       ? std::min(model_limit, options_.max_batch_size)
                       : options_.max_batch_size;
  }
  queues_[key].push_back(
      Item{std::move(request), RealClock()->Now(), deadline, std::move(done)});
  ++waiting_;
  changed_.SignalAll();
  return absl::OkStatus();
}

void DynamicBatcher::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    changed_.SignalAll();
  }
  // Concurrent callers take turns: the first joins, the others find nothing
  // left to join.
  absl::MutexLock join(&join_mu_);
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
}

size_t DynamicBatcher::queue_depth() const {
  absl::MutexLock lock(&mu_);
  return waiting_;
}

DynamicBatcher::Stats DynamicBatcher::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

int DynamicBatcher::BatchSize(size_t waiting, bool timed_out, int limit) const {
  const int available = static_cast<int>(std::min<size_t>(waiting, limit));
  if (available == 0) return 0;
  if (available == limit || timed_out) return available;
  // The largest preferred size the queue can fill.
  for (auto it = options_.preferred_batch_sizes.rbegin();
       it != options_.preferred_batch_sizes.rend(); ++it) {
    if (*it <= available) return *it;
  }
  return 0;
}

bool DynamicBatcher::Next(std::vector<Item>* batch,
                          std::vector<Item>* expired) {
  while (true) {
    const absl::Time now = RealClock()->Now();
    // Requests whose deadline passed while waiting leave unrun.
    for (auto& [key, queue] : queues_) {
      for (auto it = queue.begin(); it != queue.end();) {
        if (it->deadline <= now) {
          expired->push_back(std::move(*it));
          it = queue.erase(it);
          --waiting_;
        } else {
          ++it;
        }
      }
    }
    // The ready queue whose oldest request is most urgent; meanwhile, when
    // the next queue times out.
    std::deque<Item>* chosen = nullptr;
    int chosen_size = 0;
    absl::Time wake = absl::InfiniteFuture();
    for (auto& [key, queue] : queues_) {
      if (queue.empty()) continue;
      const absl::Time times_out =
          queue.front().queued_at + options_.max_queue_delay;
      const int size =
          BatchSize(queue.size(), stopping_ || now >= times_out, limits_[key]);
      if (size == 0) {
        wake = std::min(wake, times_out);
      } else if (chosen == nullptr ||
                 queue.front().deadline < chosen->front().deadline) {
        chosen = &queue;
        chosen_size = size;
      }
      wake = std::min(wake, queue.front().deadline);
    }
    if (chosen != nullptr) {
      for (int i = 0; i < chosen_size; ++i) {
        batch->push_back(std::move(chosen->front()));
        chosen->pop_front();
      }
      waiting_ -= chosen_size;
      if (chosen->empty()) {
        for (auto it = queues_.begin(); it != queues_.end(); ++it) {
          if (&it->second == chosen) {
            limits_.erase(it->first);  // Re-read: a reload may change it.
            queues_.erase(it);
            break;
          }
        }
      }
      ++stats_.batches;
      stats_.requests += chosen_size;
      ++stats_.sizes[chosen_size];
    }
    stats_.expired += static_cast<int64_t>(expired->size());
    if (!batch->empty() || !expired->empty()) {
      // Other workers may find work in what is left.
      if (waiting_ > 0) changed_.Signal();
      return true;
    }
    if (stopping_ && waiting_ == 0) return false;
    changed_.WaitWithDeadline(&mu_, wake);
  }
}

void DynamicBatcher::WorkerLoop() {
  while (true) {
    std::vector<Item> batch, expired;
    {
      absl::MutexLock lock(&mu_);
      if (!Next(&batch, &expired)) return;
    }
    for (Item& item : expired) {
      item.done(absl::DeadlineExceededError(
          "deadline passed while the request was queued for a batch"));
    }
    if (batch.empty()) continue;
    std::vector<Result> results = run_(batch);
    for (size_t i = 0; i < batch.size(); ++i) {
      batch[i].done(i < results.size()
                        ? std::move(results[i])
                        : absl::InternalError("the batch gave no result"));
    }
  }
}

}  // namespace tandem
