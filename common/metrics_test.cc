#include "common/metrics.h"

#include <httplib.h>

#include <memory>
#include <string>

#include "common/metrics_server.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tandem {
namespace {

using ::tandem::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(MetricsRegistryTest, CounterRendersHelpTypeAndLabelledSamples) {
  MetricsRegistry registry;
  CounterFamily* requests =
      registry.AddCounter("requests_total", "Requests.", {"model", "code"});
  requests->Add({"a", "OK"});
  requests->Add({"a", "OK"}, 2);
  requests->Add({"b", "NOT_FOUND"});
  requests->Add({"b", "NOT_FOUND"}, -5);  // Ignored: counters never go down.

  EXPECT_EQ(requests->Value({"a", "OK"}), 3);
  EXPECT_EQ(registry.Render(),
            "# HELP requests_total Requests.\n"
            "# TYPE requests_total counter\n"
            "requests_total{model=\"a\",code=\"OK\"} 3\n"
            "requests_total{model=\"b\",code=\"NOT_FOUND\"} 1\n");
}

TEST(MetricsRegistryTest, LargeCountersKeepEveryDigit) {
  MetricsRegistry registry;
  CounterFamily* us = registry.AddCounter("queue_us", "Microseconds.");
  us->Add({}, 123456789012);
  EXPECT_THAT(registry.Render(), HasSubstr("\nqueue_us 123456789012\n"));
}

TEST(MetricsRegistryTest, EscapesLabelValuesAndHelp) {
  MetricsRegistry registry;
  GaugeFamily* gauge =
      registry.AddGauge("g", "Line one\nback\\slash.", {"name"});
  gauge->Set({"say \"hi\"\n\\"}, 0.5);
  const std::string text = registry.Render();
  EXPECT_THAT(text, HasSubstr("# HELP g Line one\\nback\\\\slash.\n"));
  EXPECT_THAT(text, HasSubstr("g{name=\"say \\\"hi\\\"\\n\\\\\"} 0.5\n"));
}

TEST(MetricsRegistryTest, GaugeGoesBothWaysAndClears) {
  MetricsRegistry registry;
  GaugeFamily* depth = registry.AddGauge("depth", "Queue depth.", {"q"});
  depth->Add({"x"}, 3);
  depth->Add({"x"}, -1);
  EXPECT_EQ(depth->Value({"x"}), 2);
  depth->Set({"x"}, 7);
  EXPECT_EQ(depth->Value({"x"}), 7);
  depth->Clear();
  EXPECT_THAT(registry.Render(), Not(HasSubstr("depth{")));
}

TEST(MetricsRegistryTest, HistogramBucketsAreCumulative) {
  MetricsRegistry registry;
  HistogramFamily* sizes =
      registry.AddHistogram("batch_size", "Rows per batch.", {"m"}, {1, 2, 4});
  for (double v : {1.0, 2.0, 2.0, 3.0, 9.0}) sizes->Observe({"m1"}, v);
  EXPECT_EQ(sizes->Count({"m1"}), 5);
  EXPECT_THAT(registry.Render(),
              HasSubstr("batch_size_bucket{m=\"m1\",le=\"1\"} 1\n"
                        "batch_size_bucket{m=\"m1\",le=\"2\"} 3\n"
                        "batch_size_bucket{m=\"m1\",le=\"4\"} 4\n"
                        "batch_size_bucket{m=\"m1\",le=\"+Inf\"} 5\n"
                        "batch_size_sum{m=\"m1\"} 17\n"
                        "batch_size_count{m=\"m1\"} 5\n"));
}

TEST(MetricsRegistryTest, CallbackIsReadAtRenderTime) {
  MetricsRegistry registry;
  double level = 1;
  registry.AddCallback(
      "level", "Read when scraped.", MetricFamily::Type::kGauge, {"k"},
      [&level] {
        return std::vector<std::pair<LabelValues, double>>{{{"v"}, level}};
      });
  EXPECT_THAT(registry.Render(), HasSubstr("level{k=\"v\"} 1\n"));
  level = 2.25;
  EXPECT_THAT(registry.Render(), HasSubstr("level{k=\"v\"} 2.25\n"));
}

TEST(MetricsRegistryTest, ProcessMetricsReadThisProcess) {
  MetricsRegistry registry;
  AddProcessMetrics(&registry);
  const std::string text = registry.Render();
  for (const char* name :
       {"process_resident_memory_bytes", "process_virtual_memory_bytes",
        "process_open_fds", "process_threads", "process_cpu_seconds_total",
        "process_start_time_seconds"}) {
    EXPECT_THAT(text, HasSubstr(std::string("\n") + name + " ")) << name;
  }
  // A resident set of at least a page; this test binary has stdin..stderr.
  EXPECT_THAT(text, Not(HasSubstr("\nprocess_resident_memory_bytes 0\n")));
  EXPECT_THAT(text, Not(HasSubstr("\nprocess_open_fds 0\n")));
}

TEST(MetricsServerTest, ServesTheRegistryOnGetMetrics) {
  MetricsRegistry registry;
  CounterFamily* hits = registry.AddCounter("hits", "Hits.");
  hits->Add({}, 41);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<MetricsServer> server,
                       MetricsServer::Start("127.0.0.1:0", &registry));
  ASSERT_GT(server->port(), 0);

  httplib::Client client("127.0.0.1", server->port());
  hits->Add({});
  httplib::Result got = client.Get("/metrics");
  ASSERT_TRUE(got) << httplib::to_string(got.error());
  EXPECT_EQ(got->status, 200);
  EXPECT_EQ(got->get_header_value("Content-Type"),
            "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_THAT(got->body, HasSubstr("\nhits 42\n"));

  httplib::Result other = client.Get("/");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 404);
}

TEST(MetricsServerTest, RefusesLargeBodiesAndKeepsServing) {
  MetricsRegistry registry;
  registry.AddCounter("hits", "Hits.")->Add({}, 1);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<MetricsServer> server,
                       MetricsServer::Start("127.0.0.1:0", &registry));
  httplib::Client client("127.0.0.1", server->port());
  httplib::Result big =
      client.Post("/metrics", std::string(1 << 20, 'x'), "text/plain");
  ASSERT_TRUE(big) << httplib::to_string(big.error());
  EXPECT_EQ(big->status, 413);
  httplib::Result got = client.Get("/metrics");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status, 200);
  EXPECT_THAT(got->body, HasSubstr("\nhits 1\n"));
}

TEST(MetricsServerTest, RefusesBadAndBusyAddresses) {
  MetricsRegistry registry;
  EXPECT_THAT(MetricsServer::Start("no-port", &registry),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(MetricsServer::Start("127.0.0.1:99999", &registry),
              StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<MetricsServer> first,
                       MetricsServer::Start("127.0.0.1:0", &registry));
  EXPECT_THAT(MetricsServer::Start("127.0.0.1:" + std::to_string(first->port()),
                                   &registry),
              StatusIs(absl::StatusCode::kUnavailable));
}

TEST(MetricsServerTest, StopsAtOnceWhenNeverScraped) {
  MetricsRegistry registry;
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<MetricsServer> server,
                         MetricsServer::Start("127.0.0.1:0", &registry));
    EXPECT_GT(server->port(), 0);
  }
}

}  // namespace
}  // namespace tandem
