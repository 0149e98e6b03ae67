// Fault tests with real processes: the cloud server is a separate
// tandem-cloud process killed with SIGKILL while requests are in flight.
#include <signal.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "common/subprocess.h"
#include "common/testing/status_matchers.h"
#include "edge/edge_server.h"
#include "gtest/gtest.h"
#include "models/fashion_mnist.h"
#include "tandem/client.h"

namespace tandem {
namespace {

constexpr char kModel[] = "fmnist_branchy";

std::string Env(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value == nullptr ? fallback : value;
}

TEST(CloudFailure, EveryRequestIsAnsweredWhenTheCloudDies) {
  const std::string repository =
      Env("TANDEM_MODEL_REPOSITORY", "model_repository");
  const std::string dir = MakeTempDir("cloud_failure");
  ASSERT_OK_AND_ASSIGN(
      Subprocess cloud,
      Subprocess::Start({Env("TANDEM_CLOUD_BINARY", "tandem-cloud"),
                         "--listen=127.0.0.1:0",
                         "--model_repository=" + repository,
                         "--port_file=" + dir + "/cloud.port"}));
  ASSERT_OK_AND_ASSIGN(
      int cloud_port,
      WaitForPortFile(dir + "/cloud.port", cloud, absl::Seconds(60)));

  tandem::v1::EdgeConfig config;
  config.add_listen("unix:" + dir + "/edge.sock");
  config.set_cloud("127.0.0.1:" + std::to_string(cloud_port));
  config.set_model_repository(repository);
  config.set_cloud_timeout_ms(2000);
  ASSERT_OK_AND_ASSIGN(auto edge, EdgeServer::Start(config));
  ASSERT_OK_AND_ASSIGN(auto client,
                       Client::Connect("unix:" + dir + "/edge.sock"));
  ASSERT_OK_AND_ASSIGN(
      ImageDataset data,
      ReadFashionMnist(kDefaultFashionMnistDir, FashionMnistSplit::kTest, 100));

  constexpr int kThreads = 4;
  constexpr int kPerThread = 15;
  constexpr int kKillAfter = 20;
  std::atomic<int> answered{0}, by_cloud{0}, finished_on_edge{0}, failed{0};
  absl::Notification kill_now;
  std::vector<std::thread> senders;
  for (int t = 0; t < kThreads; ++t) {
    senders.emplace_back([&, t] {
      for (int r = 0; r < kPerThread; ++r) {
        const int image = (t * kPerThread + r) % data.count;
        InferOptions options;
        options.split_point = 1;
        options.disable_early_exits = true;
        options.deadline = absl::Seconds(20);
        absl::StatusOr<InferResult> result = client->Infer(
            kModel, InputTensor::Pixels({1, 1, 28, 28}, data.image(image)),
            options);
        if (!result.ok()) {
          ADD_FAILURE() << result.status();
          ++failed;
          continue;
        }
        if (result->answered_by == InferResult::Site::kCloud) ++by_cloud;
        if (!result->fallback_reason.empty()) ++finished_on_edge;
        if (++answered == kKillAfter) kill_now.Notify();
      }
    });
  }
  // Bounded: if the edge or the cloud never answers, fail with a reason
  // instead of waiting for ctest's timeout.
  const bool reached =
      kill_now.WaitForNotificationWithTimeout(absl::Seconds(90));
  EXPECT_TRUE(reached) << "only " << answered.load() << " of " << kKillAfter
                       << " requests were answered before the kill";
  cloud.Signal(SIGKILL);
  for (std::thread& s : senders) s.join();

  EXPECT_EQ(answered.load(),
            kThreads * kPerThread);  // Answered count equals sent count.
  EXPECT_EQ(failed.load(), 0);
  EXPECT_GE(by_cloud.load(), kKillAfter - kThreads);
  EXPECT_GE(finished_on_edge.load(),
            kThreads * kPerThread - kKillAfter - kThreads);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace tandem
