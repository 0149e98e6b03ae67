// Closed-loop load through a running edge agent, for the tests that change
// the cloud under it (kill, restart, reload): `senders` threads each send
// one request after another, every one split at block 1 and run to the
// final exit, so that the cloud answers it unless a cloud call fails and
// the edge finishes it. Counts every outcome; a failed request is a test
// failure (nothing may be lost).
#ifndef TANDEM_TESTS_INTEGRATION_EDGE_LOAD_H_
#define TANDEM_TESTS_INTEGRATION_EDGE_LOAD_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "models/fashion_mnist.h"
#include "tandem/client.h"

namespace tandem {
namespace testing {

// Polls `condition` every 100 ms until it holds or `timeout` passes.
inline bool Eventually(const std::function<bool()>& condition,
                       absl::Duration timeout) {
  const absl::Time give_up = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() > give_up) return false;
    absl::SleepFor(absl::Milliseconds(100));
  }
  return true;
}

class EdgeLoad {
 public:
  // `data` must outlive this.
  EdgeLoad(const std::string& edge, const std::string& model, int senders,
           const ImageDataset* data) {
    for (int t = 0; t < senders; ++t) {
      threads_.emplace_back([this, edge, model, t, data] {
        absl::StatusOr<std::unique_ptr<Client>> client = Client::Connect(edge);
        if (!client.ok()) {
          ADD_FAILURE() << client.status();
          return;
        }
        for (int r = 0; !stop_.load(); ++r) {
          InferOptions options;
          options.split_point = 1;
          options.disable_early_exits = true;
          options.deadline = absl::Seconds(10);
          ++sent_;
          absl::StatusOr<InferResult> result = (*client)->Infer(
              model,
              InputTensor::Pixels({1, 1, 28, 28},
                                  data->image((t * 31 + r) % data->count)),
              options);
          if (!result.ok()) {
            ADD_FAILURE() << result.status();
            continue;
          }
          ++answered_;
          if (result->answered_by == InferResult::Site::kCloud) ++by_cloud_;
          if (!result->fallback_reason.empty()) {
            absl::MutexLock lock(&mu_);
            ++reasons_[result->fallback_reason];
          }
        }
      });
    }
  }
  ~EdgeLoad() { Stop(); }

  void Stop() {
    stop_ = true;
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
  }

  int sent() const { return sent_.load(); }
  int answered() const { return answered_.load(); }
  int by_cloud() const { return by_cloud_.load(); }
  // Why requests were finished on the edge, with how many each.
  std::map<std::string, int> fallbacks() const {
    absl::MutexLock lock(&mu_);
    return reasons_;
  }
  int finished_on_edge() const {
    int total = 0;
    for (const auto& [reason, count] : fallbacks()) total += count;
    return total;
  }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<int> sent_{0}, answered_{0}, by_cloud_{0};
  mutable absl::Mutex mu_;
  std::map<std::string, int> reasons_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_;
};

}  // namespace testing
}  // namespace tandem

#endif  // TANDEM_TESTS_INTEGRATION_EDGE_LOAD_H_
