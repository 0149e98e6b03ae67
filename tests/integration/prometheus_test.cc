// Metrics as an operator sees them: a real Prometheus (Debian's `prometheus`)
// scrapes the /metrics endpoints of a real tandem-cloud and tandem-edge, and
// the test reads the values back through Prometheus' HTTP query API after
// sending a known mix of requests through the edge. Skipped (reported as
// skipped) where the prometheus binary is not installed.
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/subprocess.h"
#include "common/testing/status_matchers.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "models/fashion_mnist.h"
#include "tandem/client.h"

namespace tandem {
namespace {

using ::tandem::testing::StatusIs;

constexpr char kModel[] = "fmnist_branchy";
constexpr char kPrometheus[] = "/usr/bin/prometheus";

std::string Env(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value == nullptr ? fallback : value;
}

// A TCP port nothing listens on now (Prometheus cannot report one it chose).
int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof(address);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) == 0) {
    port = ntohs(address.sin_port);
  }
  close(fd);
  return port;
}

// Prometheus' HTTP API, for instant queries that return one number.
class PrometheusApi {
 public:
  explicit PrometheusApi(int port) : http_("127.0.0.1", port) {
    http_.set_read_timeout(5, 0);
  }

  // The query's single value; NaN when it has no (or several) series yet.
  double Query(const std::string& promql) {
    httplib::Result result =
        http_.Get("/api/v1/query", {{"query", promql}}, httplib::Headers{});
    if (!result || result->status != 200) return std::nan("");
    google::protobuf::Struct body;
    if (!google::protobuf::util::JsonStringToMessage(result->body, &body)
             .ok()) {
      return std::nan("");
    }
    const auto& series =
        body.fields().at("data").struct_value().fields().at("result");
    if (series.list_value().values_size() != 1) return std::nan("");
    // {"metric": {...}, "value": [TIME, "VALUE"]}
    const auto& sample =
        series.list_value().values(0).struct_value().fields().at("value");
    return std::stod(sample.list_value().values(1).string_value());
  }

  // Polls until `promql` satisfies `ok` or `timeout` passes; the last value.
  double WaitFor(const std::string& promql, std::function<bool(double)> ok,
                 absl::Duration timeout = absl::Seconds(45)) {
    const absl::Time give_up = absl::Now() + timeout;
    double value = Query(promql);
    while (!ok(value) && absl::Now() < give_up) {
      absl::SleepFor(absl::Milliseconds(250));
      value = Query(promql);
    }
    return value;
  }

 private:
  httplib::Client http_;
};

class PrometheusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access(kPrometheus, X_OK) != 0) {
      GTEST_SKIP() << kPrometheus << " is not installed (Debian: prometheus)";
    }
    dir_ = MakeTempDir("prometheus");
  }
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  std::string dir_;
};

TEST_F(PrometheusTest, ScrapesBothDaemonsAndReadsTheCountsBack) {
  const std::string repository =
      Env("TANDEM_MODEL_REPOSITORY", "model_repository");
  ASSERT_OK_AND_ASSIGN(
      Subprocess cloud,
      Subprocess::Start({Env("TANDEM_CLOUD_BINARY", "tandem-cloud"),
                         "--listen=127.0.0.1:0",
                         "--model_repository=" + repository,
                         "--port_file=" + dir_ + "/cloud.port",
                         "--metrics_listen=127.0.0.1:0",
                         "--metrics_port_file=" + dir_ + "/cloud.mport"}));
  ASSERT_OK_AND_ASSIGN(
      const int cloud_port,
      WaitForPortFile(dir_ + "/cloud.port", cloud, absl::Seconds(60)));
  ASSERT_OK_AND_ASSIGN(
      const int cloud_metrics,
      WaitForPortFile(dir_ + "/cloud.mport", cloud, absl::Seconds(10)));
  ASSERT_OK_AND_ASSIGN(
      Subprocess edge,
      Subprocess::Start({Env("TANDEM_EDGE_BINARY", "tandem-edge"),
                         "--listen=unix:" + dir_ + "/edge.sock",
                         "--cloud=127.0.0.1:" + std::to_string(cloud_port),
                         "--model_repository=" + repository,
                         "--port_file=" + dir_ + "/edge.port",
                         "--metrics_listen=127.0.0.1:0",
                         "--metrics_port_file=" + dir_ + "/edge.mport"}));
  ASSERT_OK_AND_ASSIGN(
      const int edge_metrics,
      WaitForPortFile(dir_ + "/edge.mport", edge, absl::Seconds(60)));

  // A known mix: kOffloaded requests split at block 1 and run to the final
  // exit (the cloud answers each), kLocal edge-only, one unknown model.
  constexpr int kOffloaded = 24;
  constexpr int kLocal = 8;
  ASSERT_OK_AND_ASSIGN(auto client,
                       Client::Connect("unix:" + dir_ + "/edge.sock"));
  ASSERT_OK_AND_ASSIGN(
      ImageDataset data,
      ReadFashionMnist(kDefaultFashionMnistDir, FashionMnistSplit::kTest, 50));
  for (int i = 0; i < kOffloaded + kLocal; ++i) {
    InferOptions options;
    options.split_point = i < kOffloaded ? 1 : 4;
    options.disable_early_exits = true;
    options.deadline = absl::Seconds(20);
    absl::StatusOr<InferResult> result = client->Infer(
        kModel, InputTensor::Pixels({1, 1, 28, 28}, data.image(i)), options);
    ASSERT_OK(result.status());
    ASSERT_EQ(result->answered_by, i < kOffloaded ? InferResult::Site::kCloud
                                                  : InferResult::Site::kEdge);
  }
  InferOptions options;
  options.deadline = absl::Seconds(20);
  EXPECT_THAT(
      client
          ->Infer("no_such_model",
                  InputTensor::Pixels({1, 1, 28, 28}, data.image(0)), options)
          .status(),
      StatusIs(absl::StatusCode::kNotFound));

  const int web_port = FreePort();
  ASSERT_GT(web_port, 0);
  {
    std::ofstream config(dir_ + "/prometheus.yml");
    config << "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
           << "scrape_configs:\n"
           << "  - job_name: tandem-cloud\n    static_configs:\n"
           << "      - targets: ['127.0.0.1:" << cloud_metrics << "']\n"
           << "  - job_name: tandem-edge\n    static_configs:\n"
           << "      - targets: ['127.0.0.1:" << edge_metrics << "']\n";
  }
  ASSERT_OK_AND_ASSIGN(
      Subprocess prometheus,
      Subprocess::Start(
          {kPrometheus, "--config.file=" + dir_ + "/prometheus.yml",
           "--storage.tsdb.path=" + dir_ + "/tsdb",
           absl::StrCat("--web.listen-address=127.0.0.1:", web_port),
           "--log.level=warn"}));
  PrometheusApi api(web_port);
  auto equals = [](double want) {
    return [want](double got) { return got == want; };
  };

  EXPECT_EQ(api.WaitFor("up{job=\"tandem-cloud\"}", equals(1)), 1);
  EXPECT_EQ(api.WaitFor("up{job=\"tandem-edge\"}", equals(1)), 1);
  // The cloud: one success and one row per offloaded request, every batch
  // in the histogram, queue and compute time accumulated.
  EXPECT_EQ(api.WaitFor("sum(tandem_cloud_request_success{model=\"" +
                            std::string(kModel) + "\",start_block=\"1\"})",
                        equals(kOffloaded)),
            kOffloaded);
  EXPECT_EQ(api.Query("sum(tandem_cloud_inference_count)"), kOffloaded);
  EXPECT_EQ(api.Query("sum(tandem_cloud_batch_size_sum)"), kOffloaded);
  EXPECT_EQ(api.Query("sum(tandem_cloud_batch_size_count)"),
            api.Query("sum(tandem_cloud_exec_count)"));
  EXPECT_GT(api.Query("sum(tandem_cloud_compute_infer_duration_us)"), 0);
  EXPECT_GE(api.Query("sum(tandem_cloud_queue_duration_us)"), 0);
  EXPECT_GT(api.Query("process_resident_memory_bytes{job=\"tandem-cloud\"}"),
            1e6);
  // The edge: answers by site, the offload share, the refusal.
  EXPECT_EQ(
      api.WaitFor("tandem_edge_answers{site=\"cloud\"}", equals(kOffloaded)),
      kOffloaded);
  EXPECT_EQ(api.Query("tandem_edge_answers{site=\"edge\"}"), kLocal);
  EXPECT_EQ(api.Query("tandem_edge_offloads"), kOffloaded);
  EXPECT_DOUBLE_EQ(api.Query("tandem_edge_offload_share"),
                   static_cast<double>(kOffloaded) / (kOffloaded + kLocal));
  EXPECT_EQ(api.Query("tandem_edge_request_failure{code=\"NOT_FOUND\"}"), 1);
  EXPECT_EQ(api.Query("sum(tandem_edge_deadline_misses) or vector(0)"), 0);
  EXPECT_GT(api.Query("tandem_edge_link_rtt_ms"), 0);
  EXPECT_GT(api.Query("process_resident_memory_bytes{job=\"tandem-edge\"}"),
            1e6);
}

}  // namespace
}  // namespace tandem
