#include "tools/infer_report.h"

#include <string>

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tandem {
namespace {

using ::testing::AllOf;
using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

InferResult Result(InferResult::Site site, absl::Duration latency,
                   int64_t bytes) {
  InferResult result;
  result.top_k = {{9, "Ankle boot", 0.75f}};
  result.exit_block = site == InferResult::Site::kEdge ? 0 : 2;
  result.answered_by = site;
  result.split_point = 1;
  result.timings.edge_compute = absl::Milliseconds(2);
  result.timings.total = absl::Milliseconds(4);
  result.bytes_sent = bytes;
  result.confidence = 0.75f;
  result.client_latency = latency;
  return result;
}

TEST(JsonQuoteTest, EscapesWhatJsonRequires) {
  EXPECT_EQ(JsonQuote("plain"), "\"plain\"");
  EXPECT_EQ(JsonQuote("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(JsonQuote("line\nnext\ttab\r"), "\"line\\nnext\\ttab\\r\"");
  EXPECT_EQ(JsonQuote(std::string("\x01\x1f", 2)), "\"\\u0001\\u001f\"");
  EXPECT_EQ(JsonQuote(std::string("nul\0", 4)), "\"nul\\u0000\"");
}

TEST(JsonQuoteTest, KeepsUtf8AndReplacesInvalidBytes) {
  EXPECT_EQ(JsonQuote("T-shirt/top \xc3\xa9 \xe2\x82\xac \xf0\x9f\x91\x9f"),
            "\"T-shirt/top \xc3\xa9 \xe2\x82\xac \xf0\x9f\x91\x9f\"");
  EXPECT_EQ(JsonQuote("a\xff"
                      "b"),
            "\"a\\ufffdb\"");
  EXPECT_EQ(JsonQuote("\xc3"), "\"\\ufffd\"");             // Truncated.
  EXPECT_EQ(JsonQuote("\xc0\xaf"), "\"\\ufffd\\ufffd\"");  // Overlong.
  EXPECT_EQ(JsonQuote("\xed\xa0\x80"),                     // Surrogate.
            "\"\\ufffd\\ufffd\\ufffd\"");
}

TEST(InferReportTest, JsonSummarizesRequests) {
  InferReport report("fmnist_branchy");
  report.AddResult(Result(InferResult::Site::kEdge, absl::Milliseconds(1), 0),
                   true);
  InferResult cloud =
      Result(InferResult::Site::kCloud, absl::Milliseconds(3), 100);
  cloud.fallback_reason = "said \"no\"";
  report.AddResult(cloud, false);
  report.AddError();
  EXPECT_EQ(report.count(), 3);
  EXPECT_EQ(report.errors(), 1);

  const std::string json = report.ToJson();
  EXPECT_THAT(json, AllOf(StartsWith("{\"model\":\"fmnist_branchy\""),
                          EndsWith("}"), Not(HasSubstr("\n"))));
  EXPECT_THAT(json, HasSubstr("\"count\":3,\"accuracy\":0.5,"));
  EXPECT_THAT(json, HasSubstr("\"latency_ms\":{\"p50\":2,\"p95\":2.9,"
                              "\"p99\":2.98,\"mean\":2}"));
  EXPECT_THAT(json, HasSubstr("\"bytes_per_request\":50,\"edge_share\":0.5,"
                              "\"errors\":1,"));
  EXPECT_THAT(json, HasSubstr("\"timings_ms\":{\"edge_queue\":0,"
                              "\"edge_compute\":2,\"encode\":0,"
                              "\"transfer\":0,\"cloud_queue\":0,"
                              "\"cloud_compute\":0,\"total\":4}"));
  EXPECT_THAT(json, HasSubstr("\"requests\":[{\"split\":1,\"answered_by\":"
                              "\"edge\",\"exit_block\":0,\"latency_ms\":1,"
                              "\"bytes\":0,\"correct\":true,\"fallback\":\"\"}"
                              ",{\"split\":1,\"answered_by\":\"cloud\","
                              "\"exit_block\":2,\"latency_ms\":3,"
                              "\"bytes\":100,\"correct\":false,"
                              "\"fallback\":\"said \\\"no\\\"\"}]}"));
  EXPECT_THAT(json, Not(HasSubstr("top_k")));
}

TEST(InferReportTest, JsonOfOneImageKeepsTopKAndUnknownCorrectness) {
  InferReport report("fmnist_branchy", /*keep_top_k=*/true);
  report.AddResult(Result(InferResult::Site::kEdge, absl::Milliseconds(1), 0),
                   std::nullopt);
  const std::string json = report.ToJson();
  EXPECT_THAT(json, HasSubstr("\"accuracy\":null"));
  EXPECT_THAT(json, HasSubstr("\"correct\":null"));
  EXPECT_THAT(json, HasSubstr("\"top_k\":[{\"index\":9,\"label\":"
                              "\"Ankle boot\",\"probability\":0.75}]"));
}

TEST(InferReportTest, EmptyReportHasNoNans) {
  InferReport report("m");
  report.AddError();
  const std::string json = report.ToJson();
  EXPECT_THAT(json, Not(HasSubstr("nan")));
  EXPECT_THAT(json, HasSubstr("\"count\":1,\"accuracy\":null"));
  EXPECT_THAT(json, HasSubstr("\"requests\":[]"));
}

TEST(InferReportTest, TextSummary) {
  InferReport report("fmnist_branchy");
  report.AddResult(Result(InferResult::Site::kEdge, absl::Milliseconds(1), 0),
                   true);
  report.AddResult(
      Result(InferResult::Site::kCloud, absl::Milliseconds(3), 100), true);
  const std::string text = report.ToText();
  EXPECT_THAT(text, HasSubstr("accuracy       100.00%"));
  EXPECT_THAT(text, HasSubstr("p50 2.000"));
  EXPECT_THAT(text, HasSubstr("on the edge    50.0%"));
  EXPECT_THAT(text, HasSubstr("block 0 on the edge: 1"));
  EXPECT_THAT(text, HasSubstr("block 2 on the cloud: 1"));
  EXPECT_THAT(text, HasSubstr("k=1: 2"));
}

TEST(FormatResultTest, SaysWhatAnsweredWhere) {
  InferResult result =
      Result(InferResult::Site::kCloud, absl::Milliseconds(3), 100);
  result.fallback_reason = "cloud timed out";
  const std::string text = FormatResult(result);
  EXPECT_THAT(text, HasSubstr("1. Ankle boot"));
  EXPECT_THAT(text, HasSubstr("class 9"));
  EXPECT_THAT(text, HasSubstr("exit after block 2 on the cloud"));
  EXPECT_THAT(text, HasSubstr("split point 1"));
  EXPECT_THAT(text, HasSubstr("edge_compute 2.000"));
  EXPECT_THAT(text, HasSubstr("bytes sent to the cloud: 100"));
  EXPECT_THAT(text, HasSubstr("fallback: cloud timed out"));
}

}  // namespace
}  // namespace tandem
