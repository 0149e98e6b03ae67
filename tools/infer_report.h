// What `tandem infer` prints: one result in detail, or the summary of many
// (accuracy, client latency percentiles, bytes, edge share, mean timings) as
// text or as one JSON object. Not thread-safe: one report per run.
//
//   InferReport report("fmnist_branchy");
//   report.AddResult(result, /*correct=*/true);
//   report.AddError();
//   std::cout << report.ToJson();
#ifndef TANDEM_TOOLS_INFER_REPORT_H_
#define TANDEM_TOOLS_INFER_REPORT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "tandem/client.h"

namespace tandem {

// `text` as a JSON string literal, quotes included.
std::string JsonQuote(absl::string_view text);

// One result in words: top-k with labels, which exit answered and where, the
// split, the timing breakdown and the bytes sent.
std::string FormatResult(const InferResult& result);

class InferReport {
 public:
  // `keep_top_k`: also list each request's top-k in the JSON (for a single
  // image; a dataset run leaves it out to keep the output small).
  explicit InferReport(std::string model, bool keep_top_k = false);

  // A successful request; `correct` is empty when the label is unknown.
  void AddResult(const InferResult& result, std::optional<bool> correct);
  void AddError() { ++errors_; }

  int count() const { return static_cast<int>(requests_.size()) + errors_; }
  int errors() const { return errors_; }

  // The summary in words, several lines.
  std::string ToText() const;
  // One JSON object (no trailing newline):
  // {"model", "count", "accuracy", "latency_ms": {p50, p95, p99, mean},
  //  "bytes_per_request", "edge_share", "errors", "timings_ms": {...},
  //  "requests": [{"split", "answered_by", "exit_block", "latency_ms",
  //                "bytes", "correct", "fallback"[, "top_k"]}, ...]}.
  // Means and shares are over the successful requests; accuracy over those
  // with a known label (null when none has one).
  std::string ToJson() const;

 private:
  struct Request {
    InferResult result;
    std::optional<bool> correct;
  };

  struct Summary {
    std::optional<double> accuracy;
    double latency_p50_ms = 0;
    double latency_p95_ms = 0;
    double latency_p99_ms = 0;
    double latency_mean_ms = 0;
    double bytes_per_request = 0;
    double edge_share = 0;
    InferResult::Timings mean_timings;
  };

  Summary Summarize() const;

  std::string model_;
  bool keep_top_k_;
  std::vector<Request> requests_;
  int errors_ = 0;
};

}  // namespace tandem

#endif  // TANDEM_TOOLS_INFER_REPORT_H_
