// Scale-out on one machine: three tandem-cloud replicas on loopback, one
// tandem-edge balancing over them with gRPC's round_robin (a static ipv4:
// address list, as a headless Service's DNS name would resolve). Under load
// one replica is SIGKILLed: no request is lost and the traffic moves to the
// other two; restarted on its port, it gets traffic again. Per-replica
// traffic is read from each replica's /metrics.
#include <httplib.h>
#include <signal.h>

#include <array>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/status_macros.h"
#include "common/subprocess.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"
#include "models/fashion_mnist.h"
#include "tandem/client.h"
#include "tests/integration/edge_load.h"

namespace tandem {
namespace {

using ::tandem::testing::Eventually;

constexpr char kModel[] = "fmnist_branchy";
constexpr int kReplicas = 3;

std::string Env(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value == nullptr ? fallback : value;
}

// Continue requests a replica has answered, from its /metrics; -1 when it
// cannot be read.
double Answered(int metrics_port) {
  httplib::Client http("127.0.0.1", metrics_port);
  http.set_connection_timeout(1, 0);
  http.set_read_timeout(2, 0);
  httplib::Result result = http.Get("/metrics");
  if (!result || result->status != 200) return -1;
  double total = 0;
  size_t at = 0;
  const std::string prefix = "\ntandem_cloud_request_success{";
  while ((at = result->body.find(prefix, at)) != std::string::npos) {
    const size_t end = result->body.find('\n', at + 1);
    const std::string line = result->body.substr(at + 1, end - at - 1);
    total += std::stod(line.substr(line.rfind(' ') + 1));
    at = end;
  }
  return total;
}

class Replica {
 public:
  Replica(std::string dir, int index) : dir_(std::move(dir)), index_(index) {}

  // Starts the server (on `port`, or a free one the first time) and waits
  // until it serves.
  absl::Status Start(int port = 0) {
    const std::string tag =
        absl::StrCat(dir_, "/cloud", index_, "_", ++starts_);
    ASSIGN_OR_RETURN(
        Subprocess process,
        Subprocess::Start(
            {Env("TANDEM_CLOUD_BINARY", "tandem-cloud"),
             absl::StrCat("--listen=127.0.0.1:", port),
             "--model_repository=" +
                 Env("TANDEM_MODEL_REPOSITORY", "model_repository"),
             "--port_file=" + tag + ".port", "--metrics_listen=127.0.0.1:0",
             "--metrics_port_file=" + tag + ".mport", "--worker_threads=1"}));
    process_.emplace(std::move(process));
    ASSIGN_OR_RETURN(
        port_, WaitForPortFile(tag + ".port", *process_, absl::Seconds(60)));
    ASSIGN_OR_RETURN(metrics_port_, WaitForPortFile(tag + ".mport", *process_,
                                                    absl::Seconds(10)));
    return absl::OkStatus();
  }
  void Kill() {
    process_->Signal(SIGKILL);
    (void)process_->Wait(absl::Seconds(10));
    process_.reset();
  }
  int port() const { return port_; }
  double answered() const { return Answered(metrics_port_); }

 private:
  const std::string dir_;
  const int index_;
  int starts_ = 0;
  std::optional<Subprocess> process_;
  int port_ = 0;
  int metrics_port_ = 0;
};

TEST(Replicas, AKilledReplicaLosesNoRequestAndGetsTrafficBackAfterRestart) {
  const std::string dir = MakeTempDir("replicas");
  std::vector<std::unique_ptr<Replica>> replicas;
  std::vector<std::string> addresses;
  for (int i = 0; i < kReplicas; ++i) {
    replicas.push_back(std::make_unique<Replica>(dir, i));
    ASSERT_OK(replicas.back()->Start());
    addresses.push_back(absl::StrCat("127.0.0.1:", replicas.back()->port()));
  }
  ASSERT_OK_AND_ASSIGN(
      Subprocess edge,
      Subprocess::Start({Env("TANDEM_EDGE_BINARY", "tandem-edge"),
                         "--listen=unix:" + dir + "/edge.sock,127.0.0.1:0",
                         "--cloud=ipv4:" + absl::StrJoin(addresses, ","),
                         "--model_repository=" +
                             Env("TANDEM_MODEL_REPOSITORY", "model_repository"),
                         "--port_file=" + dir + "/edge.port"}));
  ASSERT_OK(
      WaitForPortFile(dir + "/edge.port", edge, absl::Seconds(60)).status());
  ASSERT_OK_AND_ASSIGN(
      ImageDataset data,
      ReadFashionMnist(kDefaultFashionMnistDir, FashionMnistSplit::kTest, 100));

  // The cloud answers every request, or the edge finishes it when its
  // replica dies mid-call.
  constexpr int kSenders = 4;
  testing::EdgeLoad load("unix:" + dir + "/edge.sock", kModel, kSenders, &data);
  auto counts = [&] {
    std::array<double, kReplicas> out;
    for (int i = 0; i < kReplicas; ++i) out[i] = replicas[i]->answered();
    return out;
  };

  // Phase 1: every replica takes a share.
  EXPECT_TRUE(Eventually(
      [&] {
        const auto c = counts();
        return c[0] >= 20 && c[1] >= 20 && c[2] >= 20;
      },
      absl::Seconds(60)))
      << "not every replica got traffic";

  // Phase 2: one replica dies under load; the other two take everything.
  replicas[0]->Kill();
  const auto at_kill = counts();
  const int cloud_at_kill = load.by_cloud();
  EXPECT_TRUE(Eventually(
      [&] {
        const auto c = counts();
        return c[1] >= at_kill[1] + 100 && c[2] >= at_kill[2] + 100;
      },
      absl::Seconds(60)))
      << "the survivors did not take the traffic";
  EXPECT_GT(load.by_cloud(), cloud_at_kill + 200);

  // Phase 3: restarted on its port, the replica gets traffic again.
  const int old_port = replicas[0]->port();
  ASSERT_OK(replicas[0]->Start(old_port));
  EXPECT_EQ(replicas[0]->port(), old_port);
  const absl::Time restarted = absl::Now();
  EXPECT_TRUE(Eventually([&] { return replicas[0]->answered() >= 20; },
                         absl::Seconds(30)))
      << "no traffic returned to the restarted replica";
  const absl::Duration back_after = absl::Now() - restarted;

  load.Stop();
  const auto final_counts = counts();
  std::cout << "sent " << load.sent() << ", answered " << load.answered()
            << " (cloud " << load.by_cloud() << ", finished on the edge "
            << load.finished_on_edge() << "); replicas " << final_counts[0]
            << " (since restart) / " << final_counts[1] << " / "
            << final_counts[2] << "; traffic back "
            << absl::FormatDuration(back_after) << " after the restart\n";
  for (const auto& [reason, count] : load.fallbacks()) {
    std::cout << "  " << count << " x " << reason << "\n";
  }
  EXPECT_EQ(load.answered(), load.sent());  // No request lost.
  // Only calls in flight on the killed replica fell back to the edge.
  EXPECT_LE(load.finished_on_edge(), kSenders * 2);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace tandem
