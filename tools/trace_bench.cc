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
  int count = 0, failed = 0, projected = 0, missed = 0, labelled = 0,
      correct = 0;
  // Latency counts a failed request at the deadline; energy and bytes are
  // over answered requests.
  double mean_ms = 0, p95_ms = 0, energy_mj = 0, bytes = 0;
};

Figures Summarize(const std::vector<const BenchRecord*>& records,
                  double deadline_ms) {
  Figures f;
  std::vector<double> latencies;
  int answered = 0;
  for (const BenchRecord* r : records) {
    ++f.count;
    const double ms = r->ok ? r->latency_ms : deadline_ms;
    latencies.push_back(ms);
    f.mean_ms += ms;
    if (!r->ok || r->latency_ms > deadline_ms) ++f.missed;
    if (!r->ok) {
      ++f.failed;
      f.projected += r->projected;
      continue;
    }
    ++answered;
    f.energy_mj += r->energy_mj;
    f.bytes += static_cast<double>(r->bytes);
    if (r->has_label) {
      ++f.labelled;
      f.correct += r->correct;
    }
  }
  if (f.count > 0) {
    f.mean_ms /= f.count;
    f.p95_ms = Percentile(latencies, 95);
  }
  if (answered > 0) {
    f.energy_mj /= answered;
    f.bytes /= answered;
  }
  return f;
}

std::string FiguresJson(const Figures& f) {
  return absl::StrFormat(
      "{\"mean_ms\": %.4f, \"p95_ms\": %.4f, \"accuracy\": %s, \"energy_mj\": "
      "%.4f, \"bytes_per_request\": %.1f, \"requests\": %d, \"failed\": %d, "
      "\"projected\": %d, \"missed\": %d}",
      f.mean_ms, f.p95_ms,
      f.labelled > 0
          ? absl::StrFormat("%.4f", static_cast<double>(f.correct) / f.labelled)
          : std::string("null"),
      f.energy_mj, f.bytes, f.count, f.failed, f.projected, f.missed);
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

double MeasuredSlowdown(const std::vector<BenchPolicy>& policies,
                        const std::vector<BenchRecord>& records) {
  std::vector<double> edge, cloud;
  for (const BenchRecord& r : records) {
    if (!r.ok) continue;
    const std::string& name = policies[r.policy].name;
    if (name == "edge_only") edge.push_back(r.edge_compute_ms);
    if (name == "cloud_only") cloud.push_back(r.cloud_compute_ms);
  }
  if (edge.empty() || cloud.empty()) return 0;
  const double cloud_median = Percentile(cloud, 50);
  return cloud_median > 0 ? Percentile(edge, 50) / cloud_median : 0;
}

std::vector<bool> OutOfContention(const std::vector<BenchPolicy>& policies,
                                  const std::vector<BenchRecord>& records,
                                  int step, const TraceReportOptions& options,
                                  double factor, int min_ranked) {
  std::vector<std::vector<const BenchRecord*>> settled(policies.size());
  for (const BenchRecord& r : records) {
    if (r.step == step && r.index_in_step >= options.skip)
      settled[r.policy].push_back(&r);
  }
  std::vector<double> mean(policies.size(), -1);  // -1: not ranked.
  double best = -1;
  for (size_t p = 0; p < policies.size(); ++p) {
    if (!policies[p].fixed ||
        static_cast<int>(settled[p].size()) < min_ranked) {
      continue;
    }
    mean[p] = Summarize(settled[p], options.deadline_ms).mean_ms;
    if (best < 0 || mean[p] < best) best = mean[p];
  }
  std::vector<bool> out(policies.size(), false);
  for (size_t p = 0; p < policies.size(); ++p) {
    const bool figures_complete =
        !policies[p].reported ||
        static_cast<int>(settled[p].size()) >= options.min_settled;
    out[p] = mean[p] >= 0 && mean[p] > factor * best && figures_complete;
  }
  return out;
}

std::string TraceReportJson(const std::vector<BenchPolicy>& policies,
                            const std::vector<TraceStep>& steps,
                            const std::vector<BenchRecord>& records,
                            const TraceReportOptions& options,
                            const std::string& header_fields) {
  const int num_policies = static_cast<int>(policies.size());
  const int num_steps = static_cast<int>(steps.size());
  const double deadline = options.deadline_ms;
  // [step][policy] -> records, all and after the first `skip`.
  std::vector<std::vector<std::vector<const BenchRecord*>>> all(
      num_steps, std::vector<std::vector<const BenchRecord*>>(num_policies)),
      settled = all;
  for (const BenchRecord& r : records) {
    all[r.step][r.policy].push_back(&r);
    if (r.index_in_step >= options.skip)
      settled[r.step][r.policy].push_back(&r);
  }
  int adaptive = -1;
  std::vector<int> single_site;  // edge_only and the cloud-only policies.
  for (int p = 0; p < num_policies; ++p) {
    if (policies[p].name == "adaptive") adaptive = p;
    if (policies[p].name == "edge_only" || policies[p].name == "cloud_only" ||
        policies[p].name == "cloud_only_uint8") {
      single_site.push_back(p);
    }
  }

  std::vector<int> oracle_choice(num_steps, -1);
  std::vector<std::string> step_json;
  double worst_vs_oracle = 0, worst_vs_site = 0;
  int max_reaction = 0, steps_without_oracle = 0, steps_short = 0,
      steps_met = 0;
  for (int s = 0; s < num_steps; ++s) {
    std::vector<Figures> per_policy(num_policies);
    bool short_of_samples = false;
    for (int p = 0; p < num_policies; ++p) {
      per_policy[p] = Summarize(settled[s][p], deadline);
      if (policies[p].reported && per_policy[p].count < options.min_settled)
        short_of_samples = true;
      if (policies[p].fixed && per_policy[p].count >= options.min_settled &&
          (oracle_choice[s] < 0 ||
           per_policy[p].mean_ms < per_policy[oracle_choice[s]].mean_ms)) {
        oracle_choice[s] = p;
      }
    }
    const int oracle = oracle_choice[s];
    steps_without_oracle += oracle < 0;
    steps_short += short_of_samples;
    const double oracle_ms = oracle >= 0 ? per_policy[oracle].mean_ms : 0;
    // Splits whose fixed policy is within the margin of the oracle.
    std::vector<int> good_splits;
    for (int p = 0; p < num_policies && oracle >= 0; ++p) {
      if (policies[p].fixed && policies[p].options.split_point.has_value() &&
          per_policy[p].count >= options.min_settled &&
          per_policy[p].mean_ms <= options.oracle_margin * oracle_ms) {
        good_splits.push_back(*policies[p].options.split_point);
      }
    }
    // Adaptive's own requests judge its plans too: it runs a split with exits
    // and an encoding of its own choosing, so a split where it answered at
    // least min_settled settled requests within the margin of the oracle's
    // requests of the same rounds is a good one even when the fixed policies
    // at that split (other exits) are slower. The same rounds, not the whole
    // step: a plan taken late in a step must not be judged against rounds
    // the machine ran faster or slower. A plan that settled wrong still
    // counts every request.
    if (adaptive >= 0 && oracle >= 0) {
      std::map<int, const BenchRecord*> oracle_round;  // By index_in_step.
      for (const BenchRecord* r : settled[s][oracle])
        oracle_round[r->index_in_step] = r;
      std::map<int, std::vector<const BenchRecord*>> by_split, theirs;
      for (const BenchRecord* r : settled[s][adaptive]) {
        const auto round = oracle_round.find(r->index_in_step);
        if (!r->ok || round == oracle_round.end()) continue;
        by_split[r->split].push_back(r);
        theirs[r->split].push_back(round->second);
      }
      for (const auto& [split, mine] : by_split) {
        const Figures f = Summarize(mine, deadline);
        const Figures same_rounds = Summarize(theirs[split], deadline);
        if (f.count >= options.min_settled &&
            f.mean_ms <= options.oracle_margin * same_rounds.mean_ms) {
          good_splits.push_back(split);
        }
      }
    }
    int reaction = 0;
    double vs_oracle = 0, vs_site = 0;
    if (adaptive >= 0) {
      const auto& run = all[s][adaptive];
      reaction = static_cast<int>(run.size());
      auto good = [&](const BenchRecord* r) {
        return r->ok && std::find(good_splits.begin(), good_splits.end(),
                                  r->split) != good_splits.end();
      };
      while (reaction > 0 && good(run[reaction - 1])) --reaction;
      max_reaction = std::max(max_reaction, reaction);
      const double mine = per_policy[adaptive].mean_ms;
      if (oracle_ms > 0) vs_oracle = mine / oracle_ms;
      double site = 0;
      for (int p : single_site) {
        if (site == 0 || per_policy[p].mean_ms < site)
          site = per_policy[p].mean_ms;
      }
      if (site > 0) vs_site = mine / site;
      worst_vs_oracle = std::max(worst_vs_oracle, vs_oracle);
      worst_vs_site = std::max(worst_vs_site, vs_site);
    }
    const bool met = oracle >= 0 && !short_of_samples &&
                     vs_oracle <= options.oracle_margin &&
                     vs_site <= options.site_margin &&
                     reaction <= options.max_reaction;
    steps_met += met;
    std::map<std::string, std::string> figures;
    for (int p = 0; p < num_policies; ++p) {
      if (policies[p].reported)
        figures[policies[p].name] = FiguresJson(per_policy[p]);
    }
    if (oracle >= 0) figures["oracle"] = FiguresJson(per_policy[oracle]);
    std::vector<std::string> entries;
    for (const auto& [name, json] : figures)
      entries.push_back(absl::StrCat("\"", name, "\": ", json));
    step_json.push_back(absl::StrFormat(
        "{\"rate_mbit\": %g, \"start_s\": %g, \"reaction_requests\": %d, "
        "\"oracle_plan\": %s, \"adaptive_vs_oracle\": %s, "
        "\"adaptive_vs_best_single_site\": %s, \"enough_samples\": %s, "
        "\"target_met\": %s, \"policies\": {%s}}",
        steps[s].rate_mbit, steps[s].start_s, reaction,
        oracle >= 0 ? absl::StrCat("\"", policies[oracle].name, "\"")
                    : std::string("null"),
        oracle >= 0 ? absl::StrFormat("%.4f", vs_oracle) : std::string("null"),
        vs_site > 0 ? absl::StrFormat("%.4f", vs_site) : std::string("null"),
        short_of_samples ? "false" : "true", met ? "true" : "false",
        absl::StrJoin(entries, ", ")));
  }

  // Whole trace: every request, failures at the deadline.
  std::vector<std::string> overall;
  std::vector<const BenchRecord*> oracle_records;
  double adaptive_mean = 0;
  for (int p = 0; p < num_policies; ++p) {
    std::vector<const BenchRecord*> mine;
    for (int s = 0; s < num_steps; ++s) {
      mine.insert(mine.end(), all[s][p].begin(), all[s][p].end());
      if (oracle_choice[s] == p)
        oracle_records.insert(oracle_records.end(), all[s][p].begin(),
                              all[s][p].end());
    }
    const Figures f = Summarize(mine, deadline);
    if (p == adaptive) adaptive_mean = f.mean_ms;
    if (policies[p].reported)
      overall.push_back(
          absl::StrCat("\"", policies[p].name, "\": ", FiguresJson(f)));
  }
  const Figures oracle = Summarize(oracle_records, deadline);
  overall.push_back(absl::StrCat("\"oracle\": ", FiguresJson(oracle)));
  // Without an oracle in every step there is no whole-trace oracle to match.
  const bool whole_oracle = steps_without_oracle == 0 && oracle.mean_ms > 0;
  const double whole_ratio = whole_oracle ? adaptive_mean / oracle.mean_ms : 0;
  const bool met = whole_oracle && whole_ratio <= options.oracle_margin &&
                   steps_met == num_steps;
  return absl::StrFormat(
      "{%s\"policies\": {%s},\n \"steps\": [\n  %s],\n \"targets\": "
      "{\"adaptive_vs_oracle\": %s, \"worst_step_adaptive_vs_oracle\": %.4f, "
      "\"worst_step_adaptive_vs_best_single_site\": %.4f, "
      "\"max_reaction_requests\": %d, \"steps_without_oracle\": %d, "
      "\"steps_short_of_samples\": %d, \"steps_meeting_targets\": %d, "
      "\"all_met\": %s}}\n",
      header_fields, absl::StrJoin(overall, ", "),
      absl::StrJoin(step_json, ",\n  "),
      whole_oracle ? absl::StrFormat("%.4f", whole_ratio) : std::string("null"),
      worst_vs_oracle, worst_vs_site, max_reaction, steps_without_oracle,
      steps_short, steps_met, met ? "true" : "false");
}

}  // namespace tandem
