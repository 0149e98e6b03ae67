#include "tools/infer_report.h"

#include <cmath>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/stats.h"

namespace tandem {
namespace {

// Length of the well-formed UTF-8 sequence at the start of `text`, or 0.
size_t Utf8SequenceLength(absl::string_view text) {
  const auto lead = static_cast<unsigned char>(text[0]);
  size_t length;
  uint32_t code_point;
  if (lead < 0x80) return 1;
  if (lead >= 0xc2 && lead <= 0xdf) {
    length = 2;
    code_point = lead & 0x1f;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3;
    code_point = lead & 0x0f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4;
    code_point = lead & 0x07;
  } else {
    return 0;
  }
  if (text.size() < length) return 0;
  for (size_t i = 1; i < length; ++i) {
    const auto next = static_cast<unsigned char>(text[i]);
    if ((next & 0xc0) != 0x80) return 0;
    code_point = (code_point << 6) | (next & 0x3f);
  }
  const bool overlong = (length == 3 && code_point < 0x800) ||
                        (length == 4 && code_point < 0x10000);
  const bool surrogate = code_point >= 0xd800 && code_point <= 0xdfff;
  if (overlong || surrogate || code_point > 0x10ffff) return 0;
  return length;
}

// A finite number, or null (JSON has no NaN or infinity).
std::string JsonNumber(double value) {
  if (!std::isfinite(value)) return "null";
  return absl::StrFormat("%.6g", value);
}

double Ms(absl::Duration duration) {
  return absl::ToDoubleMilliseconds(duration);
}

// The timing stages, in the order a request meets them.
std::vector<std::pair<const char*, absl::Duration>> Stages(
    const InferResult::Timings& timings) {
  return {{"edge_queue", timings.edge_queue},
          {"edge_compute", timings.edge_compute},
          {"encode", timings.encode},
          {"transfer", timings.transfer},
          {"cloud_queue", timings.cloud_queue},
          {"cloud_compute", timings.cloud_compute},
          {"total", timings.total}};
}

std::string StagesInWords(const InferResult::Timings& timings) {
  std::vector<std::string> parts;
  for (const auto& [name, duration] : Stages(timings)) {
    parts.push_back(absl::StrFormat("%s %.3f", name, Ms(duration)));
  }
  return absl::StrJoin(parts, ", ");
}

}  // namespace

std::string JsonQuote(absl::string_view text) {
  std::string quoted = "\"";
  while (!text.empty()) {
    const char c = text[0];
    const size_t length = Utf8SequenceLength(text);
    if (length == 0) {
      absl::StrAppend(&quoted, "\\ufffd");  // Not UTF-8: the replacement.
      text.remove_prefix(1);
      continue;
    }
    switch (c) {
      case '"':
        quoted += "\\\"";
        break;
      case '\\':
        quoted += "\\\\";
        break;
      case '\n':
        quoted += "\\n";
        break;
      case '\r':
        quoted += "\\r";
        break;
      case '\t':
        quoted += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppendFormat(&quoted, "\\u%04x", static_cast<int>(c));
        } else {
          quoted.append(text.data(), length);
        }
    }
    text.remove_prefix(length);
  }
  quoted += '"';
  return quoted;
}

std::string FormatResult(const InferResult& result) {
  std::string text;
  for (size_t i = 0; i < result.top_k.size(); ++i) {
    const InferResult::ClassScore& score = result.top_k[i];
    absl::StrAppendFormat(&text, "%d. %-20s class %-4d p=%.4f\n",
                          static_cast<int>(i + 1),
                          score.label.empty() ? "(no label)" : score.label,
                          score.index, score.probability);
  }
  absl::StrAppendFormat(
      &text,
      "answered by the exit after block %d on the %s (confidence %.4f), "
      "split point %d\n",
      result.exit_block, SiteName(result.answered_by), result.confidence,
      result.split_point);
  absl::StrAppendFormat(&text, "timings (ms): %s; client latency %.3f\n",
                        StagesInWords(result.timings),
                        Ms(result.client_latency));
  absl::StrAppendFormat(&text, "bytes sent to the cloud: %d\n",
                        result.bytes_sent);
  if (!result.fallback_reason.empty()) {
    absl::StrAppend(&text, "fallback: ", result.fallback_reason, "\n");
  }
  return text;
}

InferReport::InferReport(std::string model, bool keep_top_k)
    : model_(std::move(model)), keep_top_k_(keep_top_k) {}

void InferReport::AddResult(const InferResult& result,
                            std::optional<bool> correct) {
  requests_.push_back({result, correct});
}

InferReport::Summary InferReport::Summarize() const {
  Summary summary;
  if (requests_.empty()) return summary;
  const double n = static_cast<double>(requests_.size());
  std::vector<double> latencies_ms;
  int labelled = 0;
  int correct = 0;
  int on_edge = 0;
  double bytes = 0;
  for (const Request& request : requests_) {
    const InferResult& result = request.result;
    latencies_ms.push_back(Ms(result.client_latency));
    if (request.correct.has_value()) {
      ++labelled;
      correct += *request.correct ? 1 : 0;
    }
    on_edge += result.answered_by == InferResult::Site::kEdge ? 1 : 0;
    bytes += static_cast<double>(result.bytes_sent);
    InferResult::Timings& sum = summary.mean_timings;
    sum.edge_queue += result.timings.edge_queue;
    sum.edge_compute += result.timings.edge_compute;
    sum.encode += result.timings.encode;
    sum.transfer += result.timings.transfer;
    sum.cloud_queue += result.timings.cloud_queue;
    sum.cloud_compute += result.timings.cloud_compute;
    sum.total += result.timings.total;
  }
  if (labelled > 0) summary.accuracy = static_cast<double>(correct) / labelled;
  double latency_sum = 0;
  for (double latency : latencies_ms) latency_sum += latency;
  summary.latency_mean_ms = latency_sum / n;
  summary.latency_p50_ms = Percentile(latencies_ms, 50);
  summary.latency_p95_ms = Percentile(latencies_ms, 95);
  summary.latency_p99_ms = Percentile(latencies_ms, 99);
  summary.bytes_per_request = bytes / n;
  summary.edge_share = on_edge / n;
  InferResult::Timings& mean = summary.mean_timings;
  for (absl::Duration* stage :
       {&mean.edge_queue, &mean.edge_compute, &mean.encode, &mean.transfer,
        &mean.cloud_queue, &mean.cloud_compute, &mean.total}) {
    *stage /= n;
  }
  return summary;
}

std::string InferReport::ToText() const {
  const Summary summary = Summarize();
  std::string text;
  absl::StrAppendFormat(&text, "model          %s\n", model_);
  absl::StrAppendFormat(&text, "requests       %d (%d failed)\n", count(),
                        errors_);
  if (summary.accuracy.has_value()) {
    absl::StrAppendFormat(&text, "accuracy       %.2f%%\n",
                          100 * *summary.accuracy);
  }
  absl::StrAppendFormat(
      &text, "latency (ms)   p50 %.3f  p95 %.3f  p99 %.3f  mean %.3f\n",
      summary.latency_p50_ms, summary.latency_p95_ms, summary.latency_p99_ms,
      summary.latency_mean_ms);
  absl::StrAppendFormat(&text, "bytes/request  %.1f\n",
                        summary.bytes_per_request);
  absl::StrAppendFormat(&text, "on the edge    %.1f%%\n",
                        100 * summary.edge_share);
  absl::StrAppendFormat(&text, "mean (ms)      %s\n",
                        StagesInWords(summary.mean_timings));
  std::map<std::pair<int, std::string>, int> exits;
  std::map<int, int> splits;
  std::map<std::string, int> fallbacks;
  for (const Request& request : requests_) {
    const InferResult& result = request.result;
    ++exits[{result.exit_block, std::string(SiteName(result.answered_by))}];
    ++splits[result.split_point];
    if (!result.fallback_reason.empty()) ++fallbacks[result.fallback_reason];
  }
  std::vector<std::string> parts;
  for (const auto& [exit, n] : exits) {
    parts.push_back(
        absl::StrFormat("block %d on the %s: %d", exit.first, exit.second, n));
  }
  absl::StrAppend(&text, "exits          ", absl::StrJoin(parts, ", "), "\n");
  parts.clear();
  for (const auto& [split, n] : splits) {
    parts.push_back(absl::StrFormat("k=%d: %d", split, n));
  }
  absl::StrAppend(&text, "splits         ", absl::StrJoin(parts, ", "), "\n");
  for (const auto& [reason, n] : fallbacks) {
    absl::StrAppendFormat(&text, "fallback       %d x %s\n", n, reason);
  }
  return text;
}

std::string InferReport::ToJson() const {
  const Summary summary = Summarize();
  std::string json = absl::StrCat(
      "{\"model\":", JsonQuote(model_), ",\"count\":", count(),
      ",\"accuracy\":",
      summary.accuracy.has_value() ? JsonNumber(*summary.accuracy) : "null");
  absl::StrAppend(
      &json, ",\"latency_ms\":{\"p50\":", JsonNumber(summary.latency_p50_ms),
      ",\"p95\":", JsonNumber(summary.latency_p95_ms),
      ",\"p99\":", JsonNumber(summary.latency_p99_ms),
      ",\"mean\":", JsonNumber(summary.latency_mean_ms), "}");
  absl::StrAppend(
      &json, ",\"bytes_per_request\":", JsonNumber(summary.bytes_per_request),
      ",\"edge_share\":", JsonNumber(summary.edge_share),
      ",\"errors\":", errors_, ",\"timings_ms\":{");
  const char* separator = "";
  for (const auto& [name, duration] : Stages(summary.mean_timings)) {
    absl::StrAppend(&json, separator, "\"", name,
                    "\":", JsonNumber(Ms(duration)));
    separator = ",";
  }
  absl::StrAppend(&json, "},\"requests\":[");
  separator = "";
  for (const Request& request : requests_) {
    const InferResult& result = request.result;
    absl::StrAppend(
        &json, separator, "{\"split\":", result.split_point,
        ",\"answered_by\":", JsonQuote(SiteName(result.answered_by)),
        ",\"exit_block\":", result.exit_block,
        ",\"latency_ms\":", JsonNumber(Ms(result.client_latency)),
        ",\"bytes\":", result.bytes_sent, ",\"correct\":",
        request.correct.has_value() ? (*request.correct ? "true" : "false")
                                    : "null",
        ",\"fallback\":", JsonQuote(result.fallback_reason));
    if (keep_top_k_) {
      absl::StrAppend(&json, ",\"top_k\":[");
      const char* score_separator = "";
      for (const InferResult::ClassScore& score : result.top_k) {
        absl::StrAppend(&json, score_separator, "{\"index\":", score.index,
                        ",\"label\":", JsonQuote(score.label),
                        ",\"probability\":", JsonNumber(score.probability),
                        "}");
        score_separator = ",";
      }
      absl::StrAppend(&json, "]");
    }
    absl::StrAppend(&json, "}");
    separator = ",";
  }
  absl::StrAppend(&json, "]}");
  return json;
}

}  // namespace tandem
