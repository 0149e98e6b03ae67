#include "tools/mixed_bench.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <random>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "common/stats.h"

namespace tandem {
namespace {

// Draws from std::mt19937_64 turned into numbers by hand: the standard's
// distributions differ between library implementations, the engine and
// std::seed_seq do not.
class Draws {
 public:
  Draws(uint64_t seed, int stream, int task) {
    std::seed_seq seq{
        static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32),
        static_cast<uint32_t>(stream), static_cast<uint32_t>(task)};
    engine_.seed(seq);
  }
  // Uniform in [0, 1).
  double Unit() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }
  double Exponential(double mean) { return -mean * std::log1p(-Unit()); }
  // Uniform in [1, n].
  int OneTo(int n) { return 1 + static_cast<int>(Unit() * n); }
  uint32_t Image() { return static_cast<uint32_t>(engine_() >> 32); }

 private:
  std::mt19937_64 engine_;
};

std::string Num(double value) { return absl::StrFormat("%.4f", value); }
std::string NumOrNull(bool known, double value) {
  return known ? Num(value) : std::string("null");
}
const char* Bool(bool value) { return value ? "true" : "false"; }

struct Figures {
  int released = 0, missed = 0, in_time = 0, answered = 0, labelled = 0,
      labelled_in_time = 0, correct = 0, batched = 0, cut_short = 0,
      scaling_changes = 0, max_scaling_level = 0;
  double p99_ms = 0;

  double miss_rate() const {
    return released > 0 ? static_cast<double>(missed) / released : 0;
  }
  bool has_accuracy() const { return labelled_in_time > 0; }
  double accuracy() const {
    return has_accuracy() ? static_cast<double>(correct) / labelled_in_time : 0;
  }
};

// `records` in release order.
Figures Summarize(const std::vector<const MixedRecord*>& records) {
  Figures f;
  std::vector<double> latencies;
  std::map<int, int> last_level;  // Per task, of its answered requests.
  for (const MixedRecord* r : records) {
    ++f.released;
    f.labelled += r->has_label;
    const bool missed = Missed(*r);
    f.missed += missed;
    // A failure counts at its deadline, a late answer at its latency (past
    // the deadline): no miss counts below its deadline.
    latencies.push_back(r->ok ? std::max(r->latency_ms, 0.0) : r->deadline_ms);
    if (!r->ok) continue;
    ++f.answered;
    f.batched += r->batch_size > 1;
    f.cut_short += r->cut_short;
    f.max_scaling_level = std::max(f.max_scaling_level, r->scaling_level);
    auto [last, first] = last_level.try_emplace(r->task, r->scaling_level);
    if (!first && last->second != r->scaling_level) {
      ++f.scaling_changes;
      last->second = r->scaling_level;
    }
    if (missed) continue;
    ++f.in_time;
    if (r->has_label) {
      ++f.labelled_in_time;
      f.correct += r->correct;
    }
  }
  f.p99_ms = Percentile(latencies, 99);
  return f;
}

std::string PolicyJson(const Figures& f,
                       const std::vector<std::string>& task_entries,
                       double duration_s) {
  return absl::StrFormat(
      "{\"miss_rate\": %s, \"accuracy\": %s, \"accuracy_all\": %s, "
      "\"throughput_rps\": %s, \"released\": %d, \"missed\": %d, "
      "\"scaling_changes\": %d, \"max_scaling_level\": %d, "
      "\"batched_share\": %s, \"cut_short\": %d, \"tasks\": {%s}}",
      NumOrNull(f.released > 0, f.miss_rate()),
      NumOrNull(f.has_accuracy(), f.accuracy()),
      NumOrNull(f.labelled > 0,
                static_cast<double>(f.correct) / std::max(f.labelled, 1)),
      Num(duration_s > 0 ? f.in_time / duration_s : 0), f.released, f.missed,
      f.scaling_changes, f.max_scaling_level,
      NumOrNull(f.answered > 0,
                static_cast<double>(f.batched) / std::max(f.answered, 1)),
      f.cut_short, absl::StrJoin(task_entries, ", "));
}

// The targets of options.subject in one (load, cloud) cell. `per_policy`
// and `critical` (the subject's figures over the most critical tasks) are
// the cell's.
std::string TargetsJson(const std::vector<Figures>& per_policy,
                        const Figures& critical,
                        const std::vector<std::string>& critical_tasks,
                        double load, bool cloud,
                        const MixedReportOptions& options) {
  const auto& names = options.policies;
  const int subject = static_cast<int>(
      std::find(names.begin(), names.end(), options.subject) - names.begin());
  int best = -1, best_throughput = -1;
  for (int p = 0; p < static_cast<int>(names.size()); ++p) {
    if (p == subject || per_policy[p].released == 0) continue;
    const Figures& f = per_policy[p];
    // Fewest misses; among equals the more accurate.
    if (best < 0 || f.miss_rate() < per_policy[best].miss_rate() ||
        (f.miss_rate() == per_policy[best].miss_rate() &&
         f.accuracy() > per_policy[best].accuracy())) {
      best = p;
    }
    if (best_throughput < 0 || f.in_time > per_policy[best_throughput].in_time)
      best_throughput = p;
  }
  if (subject == static_cast<int>(names.size()) ||
      per_policy[subject].released == 0 || best < 0) {
    return "null";
  }
  const Figures& mine = per_policy[subject];
  const Figures& other = per_policy[best];
  // Against a baseline that never missed, only never missing will do.
  const bool ratio_known = other.miss_rate() > 0;
  const double ratio = ratio_known ? mine.miss_rate() / other.miss_rate() : 0;
  const bool ratio_met =
      ratio_known ? ratio <= options.max_miss_ratio : mine.miss_rate() == 0;
  const bool gap_known = mine.has_accuracy() && other.has_accuracy();
  const double gap = 100 * (other.accuracy() - mine.accuracy());
  const bool gap_met = gap_known && gap <= options.max_accuracy_gap_points;
  const bool nominal = load <= options.nominal_load + 1e-9;
  const bool critical_met =
      nominal ? critical.missed == 0
              : critical.miss_rate() < options.max_critical_miss_rate;
  std::vector<std::string> quoted;
  for (const std::string& t : critical_tasks)
    quoted.push_back(absl::StrCat("\"", t, "\""));
  std::string json = absl::StrFormat(
      "{\"best_other\": \"%s\", \"miss_ratio_vs_best_other\": {\"value\": %s, "
      "\"best_other_miss_rate\": %s, \"max\": %g, \"met\": %s}, "
      "\"accuracy_gap_points\": {\"value\": %s, \"max\": %g, \"met\": %s}, "
      "\"critical_miss_rate\": {\"tasks\": [%s], \"value\": %s, \"rule\": "
      "\"%s\", \"met\": %s}",
      names[best], NumOrNull(ratio_known, ratio), Num(other.miss_rate()),
      options.max_miss_ratio, Bool(ratio_met), NumOrNull(gap_known, gap),
      options.max_accuracy_gap_points, Bool(gap_met),
      absl::StrJoin(quoted, ", "), Num(critical.miss_rate()),
      nominal ? std::string("== 0")
              : absl::StrFormat("< %g", options.max_critical_miss_rate),
      Bool(critical_met));
  bool all_met = ratio_met && gap_met && critical_met;
  if (cloud && load >= options.overload_load - 1e-9) {
    const int baseline = per_policy[best_throughput].in_time;
    // A baseline that answered nothing in time is matched by anything.
    const double value =
        baseline > 0 ? static_cast<double>(mine.in_time) / baseline : 0;
    const bool met = baseline == 0 || value >= options.min_throughput_ratio;
    all_met = all_met && met;
    absl::StrAppendFormat(
        &json,
        ", \"throughput_vs_best_baseline\": {\"best_baseline\": \"%s\", "
        "\"value\": %s, \"min\": %g, \"met\": %s}",
        names[best_throughput], NumOrNull(baseline > 0, value),
        options.min_throughput_ratio, Bool(met));
  }
  absl::StrAppendFormat(&json, ", \"all_met\": %s}", Bool(all_met));
  return json;
}

// The requests of one load in flight, and what came back.
struct InFlight {
  absl::Mutex mu;
  int count ABSL_GUARDED_BY(mu) = 0;
  std::vector<MixedRecord> records ABSL_GUARDED_BY(mu);
};

bool NoneLeft(int* count) { return *count == 0; }

}  // namespace

std::vector<MixedTask> DefaultMixedTasks() {
  std::vector<MixedTask> tasks(4);
  tasks[0].name = "obstacle";
  tasks[0].model = "fmnist_branchy";
  tasks[0].criticality = 2;
  tasks[0].share = 0.3;
  tasks[1].name = "camera";
  tasks[1].model = "camera_branchy";
  tasks[1].criticality = 1;
  tasks[1].share = 0.4;
  tasks[2].name = "audit";
  tasks[2].model = "fmnist_branchy";
  tasks[2].criticality = 0;
  tasks[2].share = 0.15;
  tasks[2].deadline_periods = 4;
  tasks[3].name = "burst";
  tasks[3].model = "fmnist_branchy";
  tasks[3].criticality = 1;
  tasks[3].share = 0.15;
  tasks[3].sporadic = true;
  tasks[3].deadline_periods = 3;
  tasks[3].deadline_of = "obstacle";
  for (MixedTask& t : tasks) {
    t.input = t.model == "camera_branchy" ? "noise" : "fashion_mnist";
    // The trained model's tasks may be scaled down to 90% accuracy (its
    // cascade reaches about 92%); the camera model is untrained (no floor).
    if (t.model == "fmnist_branchy") t.min_accuracy = 0.9f;
  }
  return tasks;
}

absl::StatusOr<std::vector<TaskTiming>> TimingsAtLoad(
    const std::vector<MixedTask>& tasks, double load) {
  if (!(load > 0)) return absl::InvalidArgumentError("load must be positive");
  std::vector<TaskTiming> timings(tasks.size());
  for (size_t i = 0; i < tasks.size(); ++i) {
    if (!(tasks[i].share > 0) || !(tasks[i].cost_ms > 0)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "task ", tasks[i].name, ": share and cost must be positive"));
    }
    timings[i].period_ms = tasks[i].cost_ms / (tasks[i].share * load);
  }
  for (size_t i = 0; i < tasks.size(); ++i) {
    size_t of = i;
    if (!tasks[i].deadline_of.empty()) {
      of = std::find_if(tasks.begin(), tasks.end(),
                        [&](const MixedTask& t) {
                          return t.name == tasks[i].deadline_of;
                        }) -
           tasks.begin();
      if (of == tasks.size()) {
        return absl::InvalidArgumentError(
            absl::StrCat("task ", tasks[i].name, ": deadline_of names no task ",
                         tasks[i].deadline_of));
      }
    }
    timings[i].deadline_ms = tasks[i].deadline_periods * timings[of].period_ms;
  }
  return timings;
}

std::vector<Release> MakeReleaseSchedule(const std::vector<MixedTask>& tasks,
                                         const std::vector<TaskTiming>& timings,
                                         double duration_ms, uint64_t seed,
                                         int stream) {
  std::vector<Release> releases;
  for (size_t i = 0; i < tasks.size() && i < timings.size(); ++i) {
    const double period = timings[i].period_ms;
    if (!(period > 0)) continue;
    Draws draws(seed, stream, static_cast<int>(i));
    const int task = static_cast<int>(i);
    if (!tasks[i].sporadic) {
      const double phase = draws.Unit() * period;
      for (int64_t k = 0; phase + k * period < duration_ms; ++k)
        releases.push_back({phase + k * period, task, draws.Image()});
      continue;
    }
    // Bursts start as a Poisson process whose mean gap keeps the mean gap
    // between requests at `period`.
    const double mean_burst_gap = period * kMeanBurstSize;
    for (double t = draws.Exponential(mean_burst_gap); t < duration_ms;
         t += draws.Exponential(mean_burst_gap)) {
      const int size = draws.OneTo(kMaxBurst);
      for (int k = 0; k < size; ++k) {
        const double at = t + k * kBurstSpacingMs;
        if (at < duration_ms) releases.push_back({at, task, draws.Image()});
      }
    }
  }
  std::stable_sort(
      releases.begin(), releases.end(),
      [](const Release& a, const Release& b) { return a.t_ms < b.t_ms; });
  return releases;
}

double CostFromExitSamples(std::map<int, std::vector<double>> ms_by_exit) {
  size_t samples = 0;
  for (const auto& [exit, times] : ms_by_exit) samples += times.size();
  double cost_ms = 0;
  for (auto& [exit, times] : ms_by_exit) {
    if (times.empty()) continue;
    cost_ms += Percentile(times, 50) * times.size() / samples;
  }
  return cost_ms;
}

std::vector<std::string> MixedPolicyNames() {
  return {"fifo",        "edf_request",   "fixed_priority", "edf_early_drop",
          "least_slack", "imprecise_edf", "tandem_rt"};
}

absl::StatusOr<std::vector<double>> ParseLoads(
    const std::vector<std::string>& texts) {
  std::vector<double> loads;
  for (const std::string& text : texts) {
    double load = 0;
    if (!absl::SimpleAtod(absl::StripAsciiWhitespace(text), &load) ||
        !(load > 0) || !std::isfinite(load)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--mixed_loads: '", text, "' is not a positive number"));
    }
    loads.push_back(load);
  }
  if (loads.empty())
    return absl::InvalidArgumentError("--mixed_loads names no load");
  return loads;
}

absl::Status CheckPolicies(const std::vector<std::string>& policies) {
  const std::vector<std::string> known = MixedPolicyNames();
  if (policies.empty())
    return absl::InvalidArgumentError("--mixed_policies names no policy");
  for (size_t i = 0; i < policies.size(); ++i) {
    if (std::find(known.begin(), known.end(), policies[i]) == known.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--mixed_policies: unknown policy '", policies[i], "' (",
                       absl::StrJoin(known, ", "), ")"));
    }
    if (std::find(policies.begin(), policies.begin() + i, policies[i]) !=
        policies.begin() + i) {
      return absl::InvalidArgumentError(
          absl::StrCat("--mixed_policies: '", policies[i], "' twice"));
    }
  }
  return absl::OkStatus();
}

std::string MixedEdgeConfig(const std::vector<MixedTask>& tasks,
                            const std::vector<TaskTiming>& timings,
                            const std::string& policy, bool with_cloud) {
  std::string config = absl::StrFormat(
      "scheduling_policy: \"%s\"\nadmission: \"log\"\ndevice: \"cpu\"\n"
      "adaptation { probe_interval_ms: 1000 replan_interval_ms: 2000 "
      "profile_runs: 10 }\n",
      policy);
  std::vector<std::string> models;
  for (const MixedTask& t : tasks) {
    if (std::find(models.begin(), models.end(), t.model) == models.end())
      models.push_back(t.model);
  }
  for (const std::string& model : models) {
    if (with_cloud) {
      absl::StrAppendFormat(
          &config, "models { model_name: \"%s\" adaptive: true }\n", model);
    }
  }
  for (size_t i = 0; i < tasks.size() && i < timings.size(); ++i) {
    const MixedTask& t = tasks[i];
    absl::StrAppendFormat(
        &config,
        "tasks { name: \"%s\" model: \"%s\" period_ms: %.4f sporadic: %s "
        "deadline_ms: %.4f criticality: %d min_accuracy: %g input: \"%s\" }\n",
        t.name, t.model, timings[i].period_ms, Bool(t.sporadic),
        timings[i].deadline_ms, t.criticality, t.min_accuracy, t.input);
  }
  return config;
}

InferOptions MixedTaskOptions(const MixedTask& task, double deadline_ms) {
  InferOptions options;
  options.task = task.name;
  options.deadline = absl::Microseconds(deadline_ms * 1000);
  options.min_accuracy = task.min_accuracy;
  return options;
}

SentLoad SendReleases(Client& client, const std::vector<MixedTask>& tasks,
                      const std::vector<TaskTiming>& timings,
                      const std::vector<Release>& releases,
                      const std::map<std::string, ModelInputs>& inputs,
                      absl::Duration drain_timeout) {
  // Shared with the callbacks: one may still come after the wait gives up.
  auto in_flight = std::make_shared<InFlight>();
  {
    absl::MutexLock lock(&in_flight->mu);
    for (const Release& release : releases) {
      MixedRecord r;
      r.task = release.task;
      r.release_ms = release.t_ms;
      r.deadline_ms = timings[release.task].deadline_ms;
      r.has_label = !inputs.at(tasks[release.task].model).labels.empty();
      in_flight->records.push_back(r);
    }
  }
  SentLoad sent;
  const absl::Time start = absl::Now() + absl::Milliseconds(20);
  for (size_t i = 0; i < releases.size(); ++i) {
    const Release& release = releases[i];
    const absl::Time at = start + absl::Microseconds(release.t_ms * 1000);
    absl::SleepFor(at - absl::Now());
    const MixedTask& task = tasks[release.task];
    const ModelInputs& model_inputs = inputs.at(task.model);
    const size_t image = release.image % model_inputs.tensors.size();
    const int label =
        model_inputs.labels.empty() ? -1 : model_inputs.labels[image];
    {
      absl::MutexLock lock(&in_flight->mu);
      ++in_flight->count;
    }
    const absl::Time sent_at = absl::Now();
    sent.worst_lag_ms =
        std::max(sent.worst_lag_ms, absl::ToDoubleMilliseconds(sent_at - at));
    client.InferAsync(
        task.model, model_inputs.tensors[image],
        MixedTaskOptions(task, timings[release.task].deadline_ms),
        [in_flight, i, label, sent_at](absl::StatusOr<InferResult> result) {
          const absl::Duration waited = absl::Now() - sent_at;
          absl::MutexLock lock(&in_flight->mu);
          MixedRecord& r = in_flight->records[i];
          r.ok = result.ok();
          r.status_code = static_cast<int>(result.status().code());
          r.latency_ms = absl::ToDoubleMilliseconds(
              result.ok() ? result->client_latency : waited);
          --in_flight->count;
          if (!result.ok()) {
            r.error = std::string(result.status().message());
            return;
          }
          r.correct = label >= 0 && !result->top_k.empty() &&
                      result->top_k[0].index == label;
          r.scaling_level = result->scaling_level;
          r.batch_size = result->batch_size;
          r.cut_short = result->cut_short;
          r.answered_by = std::string(SiteName(result->answered_by));
          r.edge_queue_ms =
              absl::ToDoubleMilliseconds(result->timings.edge_queue);
          r.edge_compute_ms =
              absl::ToDoubleMilliseconds(result->timings.edge_compute);
        });
  }
  absl::MutexLock lock(&in_flight->mu);
  in_flight->mu.AwaitWithTimeout(absl::Condition(&NoneLeft, &in_flight->count),
                                 drain_timeout);
  sent.unanswered = in_flight->count;
  sent.records = in_flight->records;
  return sent;
}

bool Missed(const MixedRecord& record) {
  return !record.ok || record.latency_ms > record.deadline_ms;
}

double MissRate(const std::vector<const MixedRecord*>& records) {
  if (records.empty()) return 0;
  int missed = 0;
  for (const MixedRecord* r : records) missed += Missed(*r);
  return static_cast<double>(missed) / records.size();
}

std::string MixedReportJson(const std::vector<MixedTask>& tasks,
                            const std::vector<MixedRecord>& records,
                            const MixedReportOptions& options) {
  const int num_tasks = static_cast<int>(tasks.size());
  const int num_policies = static_cast<int>(options.policies.size());
  int top_criticality = 0;
  for (const MixedTask& t : tasks)
    top_criticality = std::max(top_criticality, t.criticality);
  std::vector<std::string> critical_tasks;
  for (const MixedTask& t : tasks) {
    if (t.criticality == top_criticality) critical_tasks.push_back(t.name);
  }

  absl::StatusOr<std::vector<TaskTiming>> at_one = TimingsAtLoad(tasks, 1);
  std::vector<std::string> task_set;
  for (int i = 0; i < num_tasks; ++i) {
    const MixedTask& t = tasks[i];
    task_set.push_back(absl::StrFormat(
        "{\"name\": \"%s\", \"model\": \"%s\", \"period_ms\": %s, "
        "\"deadline_ms\": %s, \"criticality\": %d, \"share\": %g, "
        "\"sporadic\": %s, \"cost_ms\": %s}",
        t.name, t.model,
        NumOrNull(at_one.ok(), at_one.ok() ? (*at_one)[i].period_ms : 0),
        NumOrNull(at_one.ok(), at_one.ok() ? (*at_one)[i].deadline_ms : 0),
        t.criticality, t.share, Bool(t.sporadic), Num(t.cost_ms)));
  }

  // Cells by load, with a cloud first.
  std::vector<std::string> cells;
  for (int l = 0; l < static_cast<int>(options.loads.size()); ++l) {
    for (bool cloud : {true, false}) {
      if (std::find(options.clouds.begin(), options.clouds.end(), cloud) ==
          options.clouds.end()) {
        continue;
      }
      // [policy] and [policy][task] -> records in release order.
      std::vector<std::vector<const MixedRecord*>> by_policy(num_policies);
      std::vector<std::vector<std::vector<const MixedRecord*>>> by_task(
          num_policies,
          std::vector<std::vector<const MixedRecord*>>(num_tasks));
      for (const MixedRecord& r : records) {
        if (r.load != l || r.cloud != cloud || r.policy < 0 ||
            r.policy >= num_policies || r.task < 0 || r.task >= num_tasks) {
          continue;
        }
        by_policy[r.policy].push_back(&r);
      }
      std::vector<Figures> per_policy(num_policies);
      std::vector<std::string> policy_entries;
      Figures critical;
      for (int p = 0; p < num_policies; ++p) {
        std::stable_sort(by_policy[p].begin(), by_policy[p].end(),
                         [](const MixedRecord* a, const MixedRecord* b) {
                           return a->release_ms < b->release_ms;
                         });
        std::vector<const MixedRecord*> top;
        for (const MixedRecord* r : by_policy[p]) {
          by_task[p][r->task].push_back(r);
          if (tasks[r->task].criticality == top_criticality) top.push_back(r);
        }
        if (options.policies[p] == options.subject) critical = Summarize(top);
        per_policy[p] = Summarize(by_policy[p]);
        std::vector<std::string> task_entries;
        for (int t = 0; t < num_tasks; ++t) {
          const Figures f = Summarize(by_task[p][t]);
          task_entries.push_back(absl::StrFormat(
              "\"%s\": {\"criticality\": %d, \"miss_rate\": %s, \"accuracy\": "
              "%s, \"p99_ms\": %s, \"released\": %d}",
              tasks[t].name, tasks[t].criticality,
              NumOrNull(f.released > 0, f.miss_rate()),
              NumOrNull(f.has_accuracy(), f.accuracy()),
              NumOrNull(f.released > 0, f.p99_ms), f.released));
        }
        policy_entries.push_back(absl::StrCat(
            "\"", options.policies[p], "\": ",
            PolicyJson(per_policy[p], task_entries, options.duration_s)));
      }
      const double load = options.loads[l];
      absl::StatusOr<std::vector<TaskTiming>> timings =
          TimingsAtLoad(tasks, load);
      std::vector<std::string> schedule;
      for (int t = 0; t < num_tasks && timings.ok(); ++t) {
        schedule.push_back(absl::StrFormat(
            "\"%s\": {\"period_ms\": %s, \"deadline_ms\": %s}", tasks[t].name,
            Num((*timings)[t].period_ms), Num((*timings)[t].deadline_ms)));
      }
      cells.push_back(absl::StrFormat(
          "{\"load\": %g, \"cloud\": %s, \"schedule\": {%s},\n   "
          "\"policies\": {\n    %s},\n   \"targets\": %s}",
          load, Bool(cloud), absl::StrJoin(schedule, ", "),
          absl::StrJoin(policy_entries, ",\n    "),
          TargetsJson(per_policy, critical, critical_tasks, load, cloud,
                      options)));
    }
  }
  return absl::StrFormat(
      "{%s\"edge_slowdown\": %g, \"duration_s\": %g,\n \"task_set\": [\n  "
      "%s],\n \"loads\": [\n  %s]}\n",
      options.header_fields, options.edge_slowdown, options.duration_s,
      absl::StrJoin(task_set, ",\n  "), absl::StrJoin(cells, ",\n  "));
}

std::string MixedRequestsCsv(const std::vector<MixedTask>& tasks,
                             const std::vector<MixedRecord>& records,
                             const MixedReportOptions& options) {
  std::string csv =
      "load,cloud,policy,task,release_ms,deadline_ms,ok,status,latency_ms,"
      "missed,has_label,correct,scaling_level,batch_size,cut_short,"
      "answered_by,edge_queue_ms,edge_compute_ms,error\n";
  for (const MixedRecord& r : records) {
    if (r.load < 0 || r.load >= static_cast<int>(options.loads.size()) ||
        r.policy < 0 || r.policy >= static_cast<int>(options.policies.size()) ||
        r.task < 0 || r.task >= static_cast<int>(tasks.size())) {
      continue;
    }
    absl::StrAppendFormat(
        &csv,
        "%g,%d,%s,%s,%.3f,%.3f,%d,%d,%.3f,%d,%d,%d,%d,%d,%d,%s,%.3f,%.3f,"
        "\"%s\"\n",
        options.loads[r.load], int{r.cloud}, options.policies[r.policy],
        tasks[r.task].name, r.release_ms, r.deadline_ms, int{r.ok},
        r.status_code, r.latency_ms, int{Missed(r)}, int{r.has_label},
        int{r.correct}, r.scaling_level, r.batch_size, int{r.cut_short},
        r.answered_by, r.edge_queue_ms, r.edge_compute_ms,
        absl::StrReplaceAll(r.error, {{"\"", "\"\""}, {"\n", " "}}));
  }
  return csv;
}

}  // namespace tandem
