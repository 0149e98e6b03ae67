#include "tools/trace_bench.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/stats.h"

namespace tandem {
namespace {

struct Figures {
  int count = 0, failed = 0, labelled = 0, correct = 0;
  double mean_ms = 0, p95_ms = 0, energy_mj = 0, bytes = 0;
};

Figures Summarize(const std::vector<const BenchRecord*>& records) {
  Figures f;
  std::vector<double> latencies;
  for (const BenchRecord* r : records) {
    ++f.count;
    if (!r->ok) {
      ++f.failed;
      continue;
    }
    latencies.push_back(r->latency_ms);
    f.mean_ms += r->latency_ms;
    f.energy_mj += r->energy_mj;
    f.bytes += static_cast<double>(r->bytes);
    if (r->has_label) {
      ++f.labelled;
      f.correct += r->correct;
    }
  }
  const double ok = static_cast<double>(latencies.size());
  if (ok > 0) {
    f.mean_ms /= ok;
    f.energy_mj /= ok;
    f.bytes /= ok;
    f.p95_ms = Percentile(latencies, 95);
  }
  return f;
}

std::string FiguresJson(const Figures& f) {
  return absl::StrFormat(
      "{\"mean_ms\": %.4f, \"p95_ms\": %.4f, \"accuracy\": %s, \"energy_mj\": "
      "%.4f, "
      "\"bytes_per_request\": %.1f, \"requests\": %d, \"failed\": %d}",
      f.mean_ms, f.p95_ms,
      f.labelled > 0
          ? absl::StrFormat("%.4f", static_cast<double>(f.correct) / f.labelled)
          : std::string("null"),
      f.energy_mj, f.bytes, f.count, f.failed);
}

}  // namespace

std::vector<BenchPolicy> TracePolicies(int n, absl::Duration deadline) {
  std::vector<BenchPolicy> policies;
  auto add = [&](std::string name, std::optional<int> split,
                 std::optional<tandem::v1::Encoding> encoding, bool reported) {
    BenchPolicy p;
    p.name = std::move(name);
    p.options.split_point = split;
    p.options.encoding = encoding;
    p.options.deadline = deadline;
    p.fixed = split.has_value();
    p.reported = reported;
    policies.push_back(std::move(p));
  };
  add("edge_only", n, std::nullopt, true);
  add("cloud_only", 0, tandem::v1::ENCODING_RAW, true);
  add("cloud_only_uint8", 0, std::nullopt, true);  // Pixels forwarded as sent.
  add("adaptive", std::nullopt, std::nullopt, true);
  for (int k = 1; k < n; ++k) {
    add(absl::StrCat("split", k, "_int8"), k, tandem::v1::ENCODING_AFFINE_UINT8,
        false);
    add(absl::StrCat("split", k, "_fp16"), k, tandem::v1::ENCODING_FP16, false);
  }
  return policies;
}

absl::StatusOr<std::vector<TraceStep>> ParseTrace(const std::string& csv) {
  std::vector<TraceStep> steps;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(csv, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line.substr(0, line.find('#')));
    if (line.empty()) continue;
    std::vector<absl::string_view> columns = absl::StrSplit(line, ',');
    TraceStep step;
    if (columns.size() < 2 ||
        !absl::SimpleAtod(absl::StripAsciiWhitespace(columns[0]),
                          &step.start_s) ||
        !absl::SimpleAtod(absl::StripAsciiWhitespace(columns[1]),
                          &step.rate_mbit) ||
        step.rate_mbit <= 0 ||
        (!steps.empty() && step.start_s <= steps.back().start_s)) {
      return absl::InvalidArgumentError(
          absl::StrCat("trace line ", line_number,
                       ": want 'seconds,rate_mbit' with increasing "
                       "seconds and a positive rate"));
    }
    steps.push_back(step);
  }
  if (steps.empty()) return absl::InvalidArgumentError("trace has no steps");
  return steps;
}

std::vector<TraceStep> DefaultTrace(double step_s) {
  std::vector<TraceStep> steps;
  const double rates[] = {50, 18.9, 5.85, 1.1, 0.13, 18.9};
  for (int i = 0; i < 6; ++i) steps.push_back({i * step_s, rates[i]});
  return steps;
}

std::string TraceReportJson(const std::vector<BenchPolicy>& policies,
                            const std::vector<TraceStep>& steps,
                            const std::vector<BenchRecord>& records, int skip,
                            const std::string& header_fields) {
  const int num_policies = static_cast<int>(policies.size());
  const int num_steps = static_cast<int>(steps.size());
  // [step][policy] -> records, all and after the first `skip`.
  std::vector<std::vector<std::vector<const BenchRecord*>>> all(
      num_steps, std::vector<std::vector<const BenchRecord*>>(num_policies)),
      settled = all;
  for (const BenchRecord& r : records) {
    all[r.step][r.policy].push_back(&r);
    if (r.index_in_step >= skip) settled[r.step][r.policy].push_back(&r);
  }
  int adaptive = -1, edge_only = -1, cloud_only = -1;
  for (int p = 0; p < num_policies; ++p) {
    if (policies[p].name == "adaptive") adaptive = p;
    if (policies[p].name == "edge_only") edge_only = p;
    if (policies[p].name == "cloud_only") cloud_only = p;
  }

  std::vector<int> oracle_choice(num_steps, -1);
  std::vector<std::string> step_json;
  double worst_vs_baseline = 0;
  int max_reaction = 0;
  for (int s = 0; s < num_steps; ++s) {
    double best = std::numeric_limits<double>::infinity();
    std::map<std::string, std::string> figures;
    std::vector<Figures> per_policy(num_policies);
    for (int p = 0; p < num_policies; ++p) {
      per_policy[p] = Summarize(settled[s][p]);
      const Figures& f = per_policy[p];
      if (policies[p].fixed && f.count > 0 && f.failed == 0 &&
          f.mean_ms < best) {
        best = f.mean_ms;
        oracle_choice[s] = p;
      }
      if (policies[p].reported) figures[policies[p].name] = FiguresJson(f);
    }
    if (oracle_choice[s] >= 0) {
      figures["oracle"] = FiguresJson(per_policy[oracle_choice[s]]);
    }
    // Reaction: adaptive requests of the step before the split it then kept.
    int reaction = 0;
    if (adaptive >= 0 && !all[s][adaptive].empty()) {
      const auto& run = all[s][adaptive];
      const int final_split = run.back()->split;
      reaction = static_cast<int>(run.size());
      while (reaction > 0 && run[reaction - 1]->split == final_split)
        --reaction;
      max_reaction = std::max(max_reaction, reaction);
      if (edge_only >= 0 && cloud_only >= 0) {
        const double baseline = std::min(per_policy[edge_only].mean_ms,
                                         per_policy[cloud_only].mean_ms);
        if (baseline > 0) {
          worst_vs_baseline = std::max(worst_vs_baseline,
                                       per_policy[adaptive].mean_ms / baseline);
        }
      }
    }
    std::vector<std::string> entries;
    for (const auto& [name, json] : figures)
      entries.push_back(absl::StrCat("\"", name, "\": ", json));
    step_json.push_back(absl::StrFormat(
        "{\"rate_mbit\": %g, \"start_s\": %g, \"reaction_requests\": %d, "
        "\"oracle_plan\": \"%s\", "
        "\"policies\": {%s}}",
        steps[s].rate_mbit, steps[s].start_s, reaction,
        oracle_choice[s] >= 0 ? policies[oracle_choice[s]].name : "",
        absl::StrJoin(entries, ", ")));
  }

  // Whole trace: every request.
  std::vector<std::string> overall;
  std::vector<const BenchRecord*> oracle_records;
  double adaptive_mean = 0, oracle_mean = 0;
  for (int p = 0; p < num_policies; ++p) {
    std::vector<const BenchRecord*> mine;
    for (int s = 0; s < num_steps; ++s) {
      mine.insert(mine.end(), all[s][p].begin(), all[s][p].end());
      if (oracle_choice[s] == p)
        oracle_records.insert(oracle_records.end(), all[s][p].begin(),
                              all[s][p].end());
    }
    const Figures f = Summarize(mine);
    if (p == adaptive) adaptive_mean = f.mean_ms;
    if (policies[p].reported)
      overall.push_back(
          absl::StrCat("\"", policies[p].name, "\": ", FiguresJson(f)));
  }
  const Figures oracle = Summarize(oracle_records);
  oracle_mean = oracle.mean_ms;
  overall.push_back(absl::StrCat("\"oracle\": ", FiguresJson(oracle)));
  return absl::StrFormat(
      "{%s\"policies\": {%s},\n \"steps\": [\n  %s],\n \"targets\": "
      "{\"adaptive_vs_oracle\": %.4f, "
      "\"worst_step_adaptive_vs_best_of_edge_cloud\": %.4f, "
      "\"max_reaction_requests\": %d}}\n",
      header_fields, absl::StrJoin(overall, ", "),
      absl::StrJoin(step_json, ",\n  "),
      oracle_mean > 0 ? adaptive_mean / oracle_mean : 0.0, worst_vs_baseline,
      max_reaction);
}

}  // namespace tandem
