// Model versions on a running tandem-cloud process: a new version directory
// and SIGHUP load it while an edge keeps offloading, without one cloud
// request failing; a version that does not load leaves the served ones in
// place and is reported by ListModels.
#include <signal.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/subprocess.h"
#include "common/testing/status_matchers.h"
#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"
#include "health.grpc.pb.h"
#include "models/fashion_mnist.h"
#include "tandem/client.h"
#include "tandem/v1/cloud_service.grpc.pb.h"
#include "tests/integration/edge_load.h"

namespace tandem {
namespace {

using ::tandem::testing::Eventually;

namespace fs = std::filesystem;

constexpr char kModel[] = "fmnist_branchy";

std::string Env(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value == nullptr ? fallback : value;
}

TEST(CloudReload, SighupLoadsANewVersionUnderLoadAndKeepsServingOnABadOne) {
  const std::string dir = MakeTempDir("cloud_reload");
  const std::string repository =
      Env("TANDEM_MODEL_REPOSITORY", "model_repository");
  // The cloud's own repository: the trained model, keeping two versions.
  const fs::path package = fs::path(dir) / "models" / kModel;
  fs::create_directories(package.parent_path());
  fs::copy(fs::path(repository) / kModel, package, fs::copy_options::recursive);
  std::ofstream(package / "config.pbtxt", std::ios::app)
      << "\nversion_policy { latest { num_versions: 2 } }\n";

  ASSERT_OK_AND_ASSIGN(
      Subprocess cloud,
      Subprocess::Start({Env("TANDEM_CLOUD_BINARY", "tandem-cloud"),
                         "--listen=127.0.0.1:0",
                         "--model_repository=" + dir + "/models",
                         "--port_file=" + dir + "/cloud.port"}));
  ASSERT_OK_AND_ASSIGN(
      const int cloud_port,
      WaitForPortFile(dir + "/cloud.port", cloud, absl::Seconds(60)));
  const std::string cloud_address = absl::StrCat("127.0.0.1:", cloud_port);
  ASSERT_OK_AND_ASSIGN(
      Subprocess edge,
      Subprocess::Start({Env("TANDEM_EDGE_BINARY", "tandem-edge"),
                         "--listen=unix:" + dir + "/edge.sock,127.0.0.1:0",
                         "--cloud=" + cloud_address,
                         "--model_repository=" + repository,
                         "--port_file=" + dir + "/edge.port"}));
  ASSERT_OK(
      WaitForPortFile(dir + "/edge.port", edge, absl::Seconds(60)).status());

  auto channel =
      grpc::CreateChannel(cloud_address, grpc::InsecureChannelCredentials());
  auto models = [&] {
    auto stub = tandem::v1::CloudService::NewStub(channel);
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    tandem::v1::ListCloudModelsResponse response;
    (void)stub->ListModels(&context, tandem::v1::ListCloudModelsRequest(),
                           &response);
    return response;
  };
  auto serving = [&](const std::string& service) {
    auto stub = grpc::health::v1::Health::NewStub(channel);
    grpc::ClientContext context;
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(service);
    grpc::health::v1::HealthCheckResponse response;
    return stub->Check(&context, request, &response).ok() &&
           response.status() == grpc::health::v1::HealthCheckResponse::SERVING;
  };
  ASSERT_OK_AND_ASSIGN(
      ImageDataset data,
      ReadFashionMnist(kDefaultFashionMnistDir, FashionMnistSplit::kTest, 64));

  // Every request offloaded: the cloud answers each unless a call fails.
  testing::EdgeLoad load("unix:" + dir + "/edge.sock", kModel, /*senders=*/2,
                         &data);
  EXPECT_TRUE(
      Eventually([&] { return load.by_cloud() >= 200; }, absl::Seconds(60)));

  // Version 2 arrives; SIGHUP loads and warms it while traffic continues.
  fs::copy(package / "1", package / "2", fs::copy_options::recursive);
  cloud.Signal(SIGHUP);
  EXPECT_TRUE(Eventually(
      [&] {
        const auto list = models();
        return list.models_size() == 2 && list.models(1).version() == "2" &&
               list.models(1).ready();
      },
      absl::Seconds(60)))
      << models().DebugString();
  EXPECT_TRUE(serving(absl::StrCat("model/", kModel, "/2")));
  EXPECT_TRUE(serving(absl::StrCat("model/", kModel, "/1")));
  const int after_reload = load.by_cloud();
  EXPECT_TRUE(Eventually([&] { return load.by_cloud() >= after_reload + 200; },
                         absl::Seconds(60)));

  // Version 3 is broken: versions 1 and 2 keep serving, and ListModels
  // says why 3 is not there.
  fs::create_directories(package / "3");
  std::ofstream(package / "3" / "model.pt") << "not a TorchScript archive";
  cloud.Signal(SIGHUP);
  EXPECT_TRUE(Eventually(
      [&] {
        const auto list = models();
        return list.models_size() == 2 && !list.models(0).reason().empty();
      },
      absl::Seconds(60)))
      << models().DebugString();
  const int after_bad = load.by_cloud();
  EXPECT_TRUE(Eventually([&] { return load.by_cloud() >= after_bad + 200; },
                         absl::Seconds(60)));

  load.Stop();
  EXPECT_EQ(load.answered(), load.sent());
  EXPECT_EQ(load.by_cloud(), load.answered());
  for (const auto& [reason, count] : load.fallbacks()) {
    ADD_FAILURE() << count << " finished on the edge: " << reason;
  }
  std::cout << "sent " << load.sent() << ", answered by the cloud "
            << load.by_cloud() << " across two reloads\n";
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace tandem
