// Closed-loop load through a running edge agent, for the tests that change
// the cloud under it (kill, restart, reload): `senders` threads each send
// one request after another, every one split at block 1 and run to the
// final exit, so that the cloud answers it unless a cloud call fails and
// the edge finishes it. Counts and records every outcome; a failed request
// is a test failure (nothing may be lost) unless refusals are expected.
#ifndef TANDEM_TESTS_INTEGRATION_EDGE_LOAD_H_
#define TANDEM_TESTS_INTEGRATION_EDGE_LOAD_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
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

// One request's fate, for the fault tests' timelines.
struct Outcome {
  absl::Time sent;
  absl::Time returned;
  absl::StatusCode code = absl::StatusCode::kOk;  // kOk: answered.
  InferResult::Site site = InferResult::Site::kUnknown;
};

class EdgeLoad {
 public:
  struct Options {
    int senders = 2;
    absl::Duration deadline = absl::Seconds(10);
    // When false a failed request is a test failure (nothing may be lost).
    // When true (the agent itself goes away) a failure is a refusal: it is
    // counted, and the sender pauses 10 ms, as an application would.
    bool refusals_expected = false;
    ClientOptions client;
  };

  // `data` must outlive this.
  EdgeLoad(const std::string& edge, const std::string& model, int senders,
           const ImageDataset* data)
      : EdgeLoad(edge, model, data, WithSenders(senders)) {}
  EdgeLoad(const std::string& edge, const std::string& model,
           const ImageDataset* data, const Options& options) {
    for (int t = 0; t < options.senders; ++t) {
      threads_.emplace_back([this, edge, model, t, data, options] {
        absl::StatusOr<std::unique_ptr<Client>> client =
            Client::Connect(edge, options.client);
        if (!client.ok()) {
          ADD_FAILURE() << client.status();
          return;
        }
        for (int r = 0; !stop_.load(); ++r) {
          InferOptions infer;
          infer.split_point = 1;
          infer.disable_early_exits = true;
          infer.deadline = options.deadline;
          ++sent_;
          Outcome outcome;
          outcome.sent = absl::Now();
          absl::StatusOr<InferResult> result = (*client)->Infer(
              model,
              InputTensor::Pixels({1, 1, 28, 28},
                                  data->image((t * 31 + r) % data->count)),
              infer);
          outcome.returned = absl::Now();
          outcome.code = result.status().code();
          if (result.ok()) outcome.site = result->answered_by;
          {
            absl::MutexLock lock(&mu_);
            outcomes_.push_back(outcome);
            if (result.ok() && !result->fallback_reason.empty())
              ++reasons_[result->fallback_reason];
            if (!result.ok()) ++refusals_[result.status().ToString()];
          }
          if (!result.ok()) {
            if (!options.refusals_expected) ADD_FAILURE() << result.status();
            ++refused_;
            absl::SleepFor(absl::Milliseconds(10));
            continue;
          }
          ++answered_;
          if (result->answered_by == InferResult::Site::kCloud) ++by_cloud_;
        }
      });
    }
  }
  ~EdgeLoad() { Stop(); }

  static Options WithSenders(int senders) {
    Options options;
    options.senders = senders;
    return options;
  }

  void Stop() {
    stop_ = true;
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
  }

  int sent() const { return sent_.load(); }
  int answered() const { return answered_.load(); }
  int refused() const { return refused_.load(); }
  int by_cloud() const { return by_cloud_.load(); }
  // Why requests were finished on the edge, with how many each.
  std::map<std::string, int> fallbacks() const {
    absl::MutexLock lock(&mu_);
    return reasons_;
  }
  // The errors of refused requests, with how many each.
  std::map<std::string, int> refusals() const {
    absl::MutexLock lock(&mu_);
    return refusals_;
  }
  int finished_on_edge() const {
    int total = 0;
    for (const auto& [reason, count] : fallbacks()) total += count;
    return total;
  }
  // Every request that has returned, in the order they returned.
  std::vector<Outcome> outcomes() const {
    absl::MutexLock lock(&mu_);
    return outcomes_;
  }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<int> sent_{0}, answered_{0}, refused_{0}, by_cloud_{0};
  mutable absl::Mutex mu_;
  std::map<std::string, int> reasons_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> refusals_ ABSL_GUARDED_BY(mu_);
  std::vector<Outcome> outcomes_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_;
};

}  // namespace testing
}  // namespace tandem

#endif  // TANDEM_TESTS_INTEGRATION_EDGE_LOAD_H_
