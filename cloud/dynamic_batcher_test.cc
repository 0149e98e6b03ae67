// DynamicBatcher with a recording run function (the model runs in
// continue_runner_test and cloud_server_test): which requests share a batch,
// when a batch starts, and that every request is answered or refused.
#include "cloud/dynamic_batcher.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace tandem {
namespace {

using ::tandem::testing::IsOk;
using ::tandem::testing::StatusIs;
using tandem::v1::ContinueRequest;
using tandem::v1::ContinueResponse;

std::shared_ptr<const ContinueRequest> Request(const std::string& id,
                                               const std::string& model = "m",
                                               int block = 1) {
  auto request = std::make_shared<ContinueRequest>();
  request->set_id(id);
  request->set_model_name(model);
  request->set_start_block(block);
  return request;
}

// Runs batches by answering each item with its id; records the batches.
class Recorder {
 public:
  DynamicBatcher::RunBatch Fn() {
    return [this](const std::vector<DynamicBatcher::Item>& batch) {
      if (hold_ != nullptr) hold_->WaitForNotification();
      std::vector<DynamicBatcher::Result> results;
      std::vector<std::string> ids;
      for (const DynamicBatcher::Item& item : batch) {
        ContinueResponse response;
        response.set_id(item.request->id());
        response.set_batch_size(static_cast<int>(batch.size()));
        results.push_back(response);
        ids.push_back(item.request->id());
      }
      absl::MutexLock lock(&mu_);
      batches_.push_back(ids);
      return results;
    };
  }
  // Every batch run waits for `hold` (null: none).
  void Hold(absl::Notification* hold) { hold_ = hold; }
  std::vector<std::vector<std::string>> batches() {
    absl::MutexLock lock(&mu_);
    return batches_;
  }

 private:
  absl::Notification* hold_ = nullptr;
  absl::Mutex mu_;
  std::vector<std::vector<std::string>> batches_ ABSL_GUARDED_BY(mu_);
};

// Collects results by id.
class Answers {
 public:
  DynamicBatcher::Done For(const std::string& id) {
    return [this, id](DynamicBatcher::Result result) {
      absl::MutexLock lock(&mu_);
      results_.emplace(id, result.status());
    };
  }
  void WaitFor(size_t n) {
    absl::MutexLock lock(&mu_);
    auto enough = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return results_.size() >= n;
    };
    mu_.Await(absl::Condition(&enough));
  }
  absl::Status Of(const std::string& id) {
    absl::MutexLock lock(&mu_);
    auto it = results_.find(id);
    return it == results_.end() ? absl::NotFoundError("no answer") : it->second;
  }
  size_t size() {
    absl::MutexLock lock(&mu_);
    return results_.size();
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, absl::Status> results_ ABSL_GUARDED_BY(mu_);
};

DynamicBatcher::Options Batching(int max, absl::Duration delay,
                                 std::vector<int> preferred = {}) {
  DynamicBatcher::Options options;
  options.max_batch_size = max;
  options.max_queue_delay = delay;
  options.preferred_batch_sizes = std::move(preferred);
  return options;
}

TEST(DynamicBatcher, RequestsWithinTheQueueDelayShareABatch) {
  Recorder recorder;
  Answers answers;
  DynamicBatcher batcher(Batching(8, absl::Milliseconds(300)), recorder.Fn());
  for (const char* id : {"a", "b", "c", "d"})
    ASSERT_THAT(
        batcher.Submit(Request(id), absl::InfiniteFuture(), answers.For(id)),
        IsOk());
  answers.WaitFor(4);
  EXPECT_EQ(recorder.batches(),
            (std::vector<std::vector<std::string>>{{"a", "b", "c", "d"}}));
  EXPECT_EQ(batcher.stats().sizes.at(4), 1);
}

TEST(DynamicBatcher, AModelsOwnMaxBatchSizeCapsItsQueuesOnly) {
  Recorder recorder;
  Answers answers;
  DynamicBatcher::Options options = Batching(8, absl::Milliseconds(300));
  // Model "small" runs at most 3 rows a batch; "big" has no limit of its own.
  options.model_max_batch = [](const ContinueRequest& request) {
    return request.model_name() == "small" ? 3 : 0;
  };
  DynamicBatcher batcher(options, recorder.Fn());
  for (int i = 0; i < 6; ++i) {
    for (const char* model : {"small", "big"}) {
      const std::string id = model + std::to_string(i);
      ASSERT_THAT(batcher.Submit(Request(id, model), absl::InfiniteFuture(),
                                 answers.For(id)),
                  IsOk());
    }
  }
  answers.WaitFor(12);
  std::map<char, std::vector<size_t>> sizes;  // By model's first letter.
  for (const auto& batch : recorder.batches()) {
    sizes[batch.front()[0]].push_back(batch.size());
  }
  // "small" filled two batches of 3, each run as soon as it was full;
  // "big" waited out the delay and ran its 6 together.
  EXPECT_EQ(sizes['s'], (std::vector<size_t>{3, 3}));
  EXPECT_EQ(sizes['b'], (std::vector<size_t>{6}));
}

TEST(DynamicBatcher, MaxBatchSizeCapsABatch) {
  Recorder recorder;
  Answers answers;
  absl::Notification hold;
  recorder.Hold(&hold);
  DynamicBatcher batcher(Batching(4, absl::Milliseconds(100)), recorder.Fn());
  for (int i = 0; i < 10; ++i) {
    const std::string id = std::to_string(i);
    ASSERT_THAT(
        batcher.Submit(Request(id), absl::InfiniteFuture(), answers.For(id)),
        IsOk());
  }
  hold.Notify();
  answers.WaitFor(10);
  std::vector<size_t> sizes;
  for (const auto& batch : recorder.batches()) sizes.push_back(batch.size());
  // The first batch may have left before the rest were queued, but none is
  // over 4, and arrival order holds.
  size_t total = 0;
  for (size_t size : sizes) {
    EXPECT_LE(size, 4u);
    total += size;
  }
  EXPECT_EQ(total, 10u);
  EXPECT_EQ(recorder.batches().back().back(), "9");
}

TEST(DynamicBatcher, APreferredSizeRunsWithoutWaitingOutTheDelay) {
  Recorder recorder;
  Answers answers;
  DynamicBatcher batcher(Batching(8, absl::Seconds(1), {2}), recorder.Fn());
  const absl::Time start = absl::Now();
  ASSERT_THAT(
      batcher.Submit(Request("a"), absl::InfiniteFuture(), answers.For("a")),
      IsOk());
  ASSERT_THAT(
      batcher.Submit(Request("b"), absl::InfiniteFuture(), answers.For("b")),
      IsOk());
  answers.WaitFor(2);
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(900));
  EXPECT_EQ(recorder.batches(),
            (std::vector<std::vector<std::string>>{{"a", "b"}}));
}

TEST(DynamicBatcher, ALoneRequestRunsOnceTheDelayIsOver) {
  Recorder recorder;
  Answers answers;
  DynamicBatcher batcher(Batching(8, absl::Milliseconds(50)), recorder.Fn());
  const absl::Time start = absl::Now();
  ASSERT_THAT(
      batcher.Submit(Request("a"), absl::InfiniteFuture(), answers.For("a")),
      IsOk());
  answers.WaitFor(1);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(50));
  EXPECT_THAT(answers.Of("a"), IsOk());
}

TEST(DynamicBatcher, QueuesOfOtherModelsOrBlocksNeverShareABatch) {
  Recorder recorder;
  Answers answers;
  DynamicBatcher batcher(Batching(8, absl::Milliseconds(200)), recorder.Fn());
  ASSERT_THAT(batcher.Submit(Request("m1", "m", 1), absl::InfiniteFuture(),
                             answers.For("m1")),
              IsOk());
  ASSERT_THAT(batcher.Submit(Request("m2", "m", 2), absl::InfiniteFuture(),
                             answers.For("m2")),
              IsOk());
  ASSERT_THAT(batcher.Submit(Request("n1", "n", 1), absl::InfiniteFuture(),
                             answers.For("n1")),
              IsOk());
  ASSERT_THAT(batcher.Submit(Request("m1b", "m", 1), absl::InfiniteFuture(),
                             answers.For("m1b")),
              IsOk());
  answers.WaitFor(4);
  auto batches = recorder.batches();
  std::sort(batches.begin(), batches.end());
  EXPECT_EQ(batches, (std::vector<std::vector<std::string>>{
                         {"m1", "m1b"}, {"m2"}, {"n1"}}));
}

TEST(DynamicBatcher, ARequestThatExpiresInTheQueueIsNeverRun) {
  Recorder recorder;
  Answers answers;
  DynamicBatcher batcher(Batching(8, absl::Milliseconds(200)), recorder.Fn());
  ASSERT_THAT(
      batcher.Submit(Request("late"), absl::Now() + absl::Milliseconds(20),
                     answers.For("late")),
      IsOk());
  ASSERT_THAT(
      batcher.Submit(Request("ok"), absl::InfiniteFuture(), answers.For("ok")),
      IsOk());
  answers.WaitFor(2);
  EXPECT_THAT(answers.Of("late"),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_THAT(answers.Of("ok"), IsOk());
  EXPECT_EQ(recorder.batches(),
            (std::vector<std::vector<std::string>>{{"ok"}}));
  EXPECT_EQ(batcher.stats().expired, 1);
}

TEST(DynamicBatcher, AFullQueueRefusesAndLosesNothingAccepted) {
  Recorder recorder;
  Answers answers;
  absl::Notification hold;
  recorder.Hold(&hold);
  DynamicBatcher::Options options = Batching(1, absl::ZeroDuration());
  options.max_queue_size = 3;
  DynamicBatcher batcher(options, recorder.Fn());
  int accepted = 0;
  absl::Status refused;
  for (int i = 0; i < 10; ++i) {
    const std::string id = std::to_string(i);
    absl::Status status =
        batcher.Submit(Request(id), absl::InfiniteFuture(), answers.For(id));
    if (status.ok()) {
      ++accepted;
    } else {
      refused = status;
    }
  }
  // One may be running (held), three waiting.
  EXPECT_LE(accepted, 4);
  EXPECT_THAT(refused, StatusIs(absl::StatusCode::kResourceExhausted));
  hold.Notify();
  answers.WaitFor(accepted);
  batcher.Shutdown();
  EXPECT_EQ(answers.size(), static_cast<size_t>(accepted));
}

TEST(DynamicBatcher, ShutdownRunsWhatIsQueuedThenRefuses) {
  Recorder recorder;
  Answers answers;
  DynamicBatcher batcher(Batching(8, absl::Seconds(1)), recorder.Fn());
  ASSERT_THAT(
      batcher.Submit(Request("a"), absl::InfiniteFuture(), answers.For("a")),
      IsOk());
  // Shutdown does not wait out the delay: the queued request runs now.
  const absl::Time start = absl::Now();
  std::thread other([&] { batcher.Shutdown(); });
  batcher.Shutdown();  // Concurrent calls are safe.
  other.join();
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(900));
  EXPECT_THAT(answers.Of("a"), IsOk());
  EXPECT_THAT(
      batcher.Submit(Request("b"), absl::InfiniteFuture(), answers.For("b")),
      StatusIs(absl::StatusCode::kUnavailable));
}

TEST(DynamicBatcher, OptionsFromConfigRefuseNonsense) {
  tandem::v1::CloudConfig config;
  config.set_max_batch_size(65);
  EXPECT_THAT(DynamicBatcher::OptionsFrom(config).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  config.set_max_batch_size(8);
  config.mutable_dynamic_batching()->add_preferred_batch_size(4);
  config.mutable_dynamic_batching()->add_preferred_batch_size(2);
  EXPECT_THAT(DynamicBatcher::OptionsFrom(config).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  config.mutable_dynamic_batching()->clear_preferred_batch_size();
  config.mutable_dynamic_batching()->add_preferred_batch_size(16);
  EXPECT_THAT(DynamicBatcher::OptionsFrom(config).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  config.mutable_dynamic_batching()->clear_preferred_batch_size();
  config.mutable_dynamic_batching()->set_max_queue_delay_microseconds(-1);
  EXPECT_THAT(DynamicBatcher::OptionsFrom(config).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  config.mutable_dynamic_batching()->set_max_queue_delay_microseconds(500);
  config.mutable_dynamic_batching()->add_preferred_batch_size(4);
  config.mutable_dynamic_batching()->add_preferred_batch_size(8);
  ASSERT_OK_AND_ASSIGN(DynamicBatcher::Options options,
                       DynamicBatcher::OptionsFrom(config));
  EXPECT_EQ(options.max_batch_size, 8);
  EXPECT_EQ(options.preferred_batch_sizes, (std::vector<int>{4, 8}));
  EXPECT_EQ(options.max_queue_delay, absl::Microseconds(500));
}

}  // namespace
}  // namespace tandem
