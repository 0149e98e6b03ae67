#include "tools/bench_command.h"

#include <signal.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/stats.h"
#include "common/status_macros.h"
#include "common/subprocess.h"
#include "common/text_proto.h"
#include "tools/bench_daemons.h"
#include "tools/connection_flags.h"
#include "tools/mixed_bench.h"
#include "tools/mixed_runner.h"
#include "tools/trace_bench.h"

ABSL_FLAG(
    std::string, scenario, "trace",
    "bench: the scenario (trace; zoo: the trace at 1.1, 5.85, 18.88 "
    "and 100 Mbit/s for every --zoo_models x --zoo_slowdowns; mixed: "
    "real-time tasks under every --mixed_policies at every --mixed_loads; "
    "load: the cloud alone under a closed-loop concurrency sweep, dynamic "
    "batching off and on, against its offline ceiling)");
ABSL_FLAG(
    std::string, trace, "",
    "bench: CSV 'seconds,rate_mbit' (default 50,18.9,5.85,1.1,0.13,18.9)");
ABSL_FLAG(double, step_s, 10,
          "bench: step length of the default trace, seconds");
// Shared with `infer` (defined in infer_command.cc): the requests' SLA.
ABSL_DECLARE_FLAG(int64_t, deadline_ms);
ABSL_DECLARE_FLAG(float, min_accuracy);
ABSL_FLAG(std::string, bench_objective, "latency",
          "bench: the adaptive policy's objective");
ABSL_FLAG(double, edge_slowdown, 4,
          "bench: emulate an edge device this many times slower than the "
          "cloud (1: as fast)");
ABSL_FLAG(
    bool, split_candidates, true,
    "bench: also run every fixed split (INT8, FP16) as an oracle candidate");
ABSL_FLAG(bool, fp16_candidates, true,
          "bench: with --split_candidates, FP16 splits too (else INT8 only)");
ABSL_FLAG(std::vector<std::string>, zoo_models,
          std::vector<std::string>({"alexnet", "vgg16"}),
          "bench --scenario=zoo: the models (from <build>/zoo_repository)");
ABSL_FLAG(std::vector<std::string>, zoo_slowdowns,
          std::vector<std::string>({"1", "4"}),
          "bench --scenario=zoo: the edge slowdowns");
ABSL_FLAG(std::vector<std::string>, mixed_loads,
          std::vector<std::string>({"0.6", "0.95", "1.4"}),
          "bench --scenario=mixed: the loads (edge utilization of the task "
          "set in its default setting, measured before the runs)");
ABSL_FLAG(std::vector<std::string>, mixed_policies, tandem::MixedPolicyNames(),
          "bench --scenario=mixed: the agent's scheduling policies to compare");
ABSL_FLAG(std::vector<std::string>, mixed_clouds,
          std::vector<std::string>({"with", "without"}),
          "bench --scenario=mixed: run with the cloud, without it, or both");
ABSL_FLAG(double, mixed_rate_mbit, 18.88,
          "bench --scenario=mixed: the shaped uplink, Mbit/s");
ABSL_FLAG(uint64_t, mixed_seed, 1,
          "bench --scenario=mixed: seed of the release schedules");
ABSL_FLAG(int32_t, mixed_workers, 2,
          "bench --scenario=mixed: edge worker threads (every policy gets "
          "the same; they share the edge's one core)");
ABSL_FLAG(double, mixed_duration_s, 10,
          "bench --scenario=mixed: seconds of releases per load");
ABSL_FLAG(std::string, out_dir, "bench_out",
          "bench: where the CSV and the PNG plot go");
ABSL_FLAG(std::string, model_repository, "",
          "bench: default <build>/model_repository");
ABSL_FLAG(std::string, link_type, "wifi",
          "bench: radio power model for energy (wifi, lte, 3g)");
ABSL_FLAG(std::string, device_power, "jetson_nano_10w",
          "bench: edge power preset for energy");

namespace tandem {
namespace {

namespace fs = std::filesystem;

// Σ edge block latency / Σ cloud block latency, from the agent's profile.
double ProfileSlowdown(const tandem::v1::SavedProfile& saved) {
  double edge = 0, cloud = 0;
  for (const auto& b : saved.edge().blocks())
    edge += b.latency_us() + b.exit_latency_us();
  for (const auto& b : saved.cloud().blocks())
    cloud += b.latency_us() + b.exit_latency_us();
  return cloud > 0 ? edge / cloud : 0;
}

// One trace run: a model, a repository, an emulated slowdown, the steps.
struct TraceRun {
  std::string model_name;
  std::string repository;
  double slowdown = 4;
  std::vector<TraceStep> steps;
  double last_step_s = 10;  // The last step's length.
  int64_t deadline_ms = 1000;
  bool split_candidates = true;
  bool fp16_candidates = true;
  fs::path out_dir;
};

// What a trace run found, beyond its JSON.
struct TraceResult {
  std::string json;
  double measured_slowdown = 0;  // MeasureEmulation's.
};

// The emulated slowdown measured on its own: the same edge_only requests,
// interleaved, on `edge` (dilated) and on an undilated agent started beside
// it on the same core, with the same config. Unlike the ratio to the cloud,
// no second core's speed enters it: on this shared machine the two cores'
// speeds drift apart by tens of percent from one minute to the next.
// Median edge compute over median edge compute; up to 200 pairs or 20 s.
absl::StatusOr<double> MeasureEmulation(const std::string& linkemu,
                                        const std::string& repository,
                                        const std::string& config_path,
                                        const fs::path& work, Client& edge,
                                        const std::string& model,
                                        const InferOptions& edge_only,
                                        const Inputs& inputs) {
  ASSIGN_OR_RETURN(Subprocess reference,
                   StartEdge(linkemu, repository, config_path, /*slowdown=*/1,
                             /*with_cloud=*/false, work, 1, "reference"));
  absl::Cleanup stop = [&] {
    reference.Signal(SIGTERM);
    (void)reference.Wait(absl::Seconds(30));
  };
  ClientOptions options;
  options.connect_timeout = absl::Seconds(30);
  ASSIGN_OR_RETURN(
      std::unique_ptr<Client> undilated,
      Client::Connect("unix:" + (work / "reference.sock").string(), options));
  std::vector<double> slow, fast;
  const absl::Time until = absl::Now() + absl::Seconds(20);
  for (size_t i = 0; i < 200 && (i < 10 || absl::Now() < until); ++i) {
    const InputTensor input = InputTensor::Pixels(
        inputs.shape, inputs.images[i % inputs.images.size()].data());
    // Alternate which goes first, so neither always follows the other.
    for (int k = 0; k < 2; ++k) {
      const bool dilated = (i + k) % 2 == 0;
      absl::StatusOr<InferResult> result =
          (dilated ? edge : *undilated).Infer(model, input, edge_only);
      if (!result.ok()) return result.status();
      (dilated ? slow : fast)
          .push_back(absl::ToDoubleMilliseconds(result->timings.edge_compute));
    }
  }
  const double reference_ms = Percentile(fast, 50);
  return reference_ms > 0 ? Percentile(slow, 50) / reference_ms : 0;
}

constexpr int kSkip = 3;         // Reaction window left out of step figures.
constexpr int kMinSettled = 20;  // Settled requests per policy and step.
constexpr int kDoomedAfter = 5;  // Failures in a row that doom a fixed plan.
constexpr double kStepCap = 6;   // A step lasts at most this many lengths.
// A fixed plan this many times slower than the step's best, both over at
// least kRankedAfter settled requests, is out of contention (a margin wide
// enough that no plan within 10% of the best is ruled out on a few noisy
// requests; see OutOfContention).
constexpr double kContentionFactor = 4;
constexpr int kRankedAfter = 5;
// The time plans out of contention took is given back to the others up to
// this many lengths of a step.
constexpr double kGiveBackCap = 3;

absl::StatusOr<TraceResult> RunTrace(const TraceRun& run,
                                     const std::string& linkemu) {
  const std::vector<TraceStep>& steps = run.steps;
  fs::create_directories(run.out_dir);
  const fs::path work = WorkDir();
  absl::Cleanup teardown = [&] { LinkDown(linkemu, work); };
  RETURN_IF_ERROR(LinkUp(linkemu, work));

  std::cerr << "bench: " << run.model_name
            << ": tandem-cloud on CPU 1, tandem-edge on CPU 0 emulated "
            << run.slowdown << "x slower\n";
  ASSIGN_OR_RETURN(Subprocess cloud, StartCloud(linkemu, run.repository, work));

  const std::string config_path = (work / "edge.pbtxt").string();
  std::ofstream(config_path) << absl::StrFormat(
      "models { model_name: \"%s\" adaptive: true objective: \"%s\" }\n"
      "energy { device: \"%s\" link_type: \"%s\" }\n"
      "adaptation { probe_interval_ms: 1000 replan_interval_ms: 2000 "
      "profile_runs: 10 }\n",
      run.model_name, absl::GetFlag(FLAGS_bench_objective),
      absl::GetFlag(FLAGS_device_power), absl::GetFlag(FLAGS_link_type));
  const std::string socket = (work / "edge.sock").string();
  ASSIGN_OR_RETURN(Subprocess edge,
                   StartEdge(linkemu, run.repository, config_path, run.slowdown,
                             /*with_cloud=*/true, work));
  absl::Cleanup stop_daemons = [&] {
    edge.Signal(SIGTERM);
    cloud.Signal(SIGTERM);
    (void)edge.Wait(absl::Seconds(30));
    (void)cloud.Wait(absl::Seconds(30));
  };

  ClientOptions client_options;
  client_options.connect_timeout = absl::Seconds(30);
  ASSIGN_OR_RETURN(std::unique_ptr<Client> client,
                   Client::Connect("unix:" + socket, client_options));
  ASSIGN_OR_RETURN(std::vector<ModelInfo> models, client->ListModels());
  const ModelInfo* model = nullptr;
  for (const ModelInfo& m : models) {
    if (m.name == run.model_name) model = &m;
  }
  if (model == nullptr)
    return absl::NotFoundError("the agent has no model " + run.model_name);
  ASSIGN_OR_RETURN(Inputs inputs, MakeInputs(*model));

  const absl::Duration deadline = absl::Milliseconds(run.deadline_ms);
  std::vector<BenchPolicy> policies =
      TracePolicies(model->num_blocks, deadline);
  policies.erase(
      std::remove_if(policies.begin(), policies.end(),
                     [&](const BenchPolicy& p) {
                       if (p.reported) return false;
                       return !run.split_candidates ||
                              (!run.fp16_candidates &&
                               p.options.encoding == tandem::v1::ENCODING_FP16);
                     }),
      policies.end());
  for (BenchPolicy& p : policies)
    p.options.min_accuracy = absl::GetFlag(FLAGS_min_accuracy);
  size_t next_image = 0;
  bool energy_measured = false;
  // Every policy of a round classifies the same image, so accuracies compare.
  auto send = [&](const BenchPolicy& policy, size_t image,
                  BenchRecord* record) {
    const size_t i = image % inputs.images.size();
    absl::StatusOr<InferResult> result = client->Infer(
        run.model_name,
        InputTensor::Pixels(inputs.shape, inputs.images[i].data()),
        policy.options);
    record->ok = result.ok();
    if (!result.ok()) return;
    record->latency_ms = absl::ToDoubleMilliseconds(result->client_latency);
    record->split = result->split_point;
    record->energy_mj = result->energy_mj;
    energy_measured |= result->energy_measured;
    record->bytes = result->bytes_sent;
    record->edge_compute_ms =
        absl::ToDoubleMilliseconds(result->timings.edge_compute);
    record->cloud_compute_ms =
        absl::ToDoubleMilliseconds(result->timings.cloud_compute);
    record->edge_queue_ms =
        absl::ToDoubleMilliseconds(result->timings.edge_queue);
    record->cloud_queue_ms =
        absl::ToDoubleMilliseconds(result->timings.cloud_queue);
    record->transfer_ms = absl::ToDoubleMilliseconds(result->timings.transfer);
    record->agent_ms = absl::ToDoubleMilliseconds(result->timings.total);
    record->has_label = !inputs.labels.empty();
    record->correct = record->has_label && !result->top_k.empty() &&
                      result->top_k[0].index == inputs.labels[i];
  };

  // Warm up at the first rate so the agent has measured the link, then take
  // the static plan (Neurosurgeon-style: planned once, at the start).
  RETURN_IF_ERROR(RunChecked(RateArgs(linkemu, steps[0].rate_mbit)));
  const BenchPolicy& adaptive = policies[3];
  const absl::Time warm_until = absl::Now() + absl::Seconds(3);
  while (absl::Now() < warm_until) {
    BenchRecord ignored;
    send(adaptive, next_image++, &ignored);
  }
  ASSIGN_OR_RETURN(tandem::v1::Plan first_plan,
                   client->GetPlan(run.model_name));
  BenchPolicy static_split;
  static_split.name = "static_split";
  static_split.options = adaptive.options;
  static_split.options.split_point = first_plan.split_point();
  static_split.options.encoding = first_plan.encoding();
  policies.insert(policies.begin() + 3, static_split);
  ASSIGN_OR_RETURN(tandem::v1::SavedProfile profile,
                   client->GetProfile(run.model_name));
  TraceResult result;
  const double profile_slowdown = ProfileSlowdown(profile);
  // After a failure the agent may still be running the request's current
  // block: let it finish before the next policy's request.
  double longest_block_us = 0;
  for (const auto& b : profile.edge().blocks())
    longest_block_us = std::max<double>(longest_block_us,
                                        b.latency_us() + b.exit_latency_us());
  std::cerr << "bench: edge/cloud speed ratio in the agent's profiles "
            << profile_slowdown << " (configured " << run.slowdown
            << "); static plan: split " << first_plan.split_point() << "\n";

  // How the report will rank policies, which the bench uses to stop
  // re-measuring those out of contention.
  TraceReportOptions ranking;
  ranking.skip = kSkip;
  ranking.min_settled = kMinSettled;
  ranking.deadline_ms = static_cast<double>(run.deadline_ms);
  const size_t adaptive_index = static_cast<size_t>(
      std::find_if(policies.begin(), policies.end(),
                   [](const BenchPolicy& p) { return !p.fixed; }) -
      policies.begin());
  std::vector<BenchRecord> records;
  // How long a round of every policy took in the first step: rounds in time
  // given back keep at least this pace (below).
  absl::Duration first_round = absl::ZeroDuration();
  const absl::Time start = absl::Now();
  for (size_t s = 0; s < steps.size(); ++s) {
    const double length = s + 1 < steps.size()
                              ? steps[s + 1].start_s - steps[s].start_s
                              : run.last_step_s;
    RETURN_IF_ERROR(RunChecked(RateArgs(linkemu, steps[s].rate_mbit)));
    std::vector<int> count(policies.size(), 0),
        failures_in_a_row(policies.size(), 0);
    // Plans out of contention are no longer sent: their figures stand, and
    // the time they took is given back to the plans still in contention
    // (the 0.13 Mbit/s step of the Fashion-MNIST trace spends most of its
    // length on three plans 15-100x slower than the edge, which left the two
    // that matter, adaptive and edge-only, 20 settled requests each).
    std::vector<bool> out_of_contention(policies.size(), false);
    std::vector<double> seconds_on(policies.size(), 0);
    double given_back_s = 0;
    // A fresh order every round: what ran just before a request (warm or
    // cold caches, a drained token bucket) must not favour one policy.
    std::vector<size_t> order(policies.size());
    std::iota(order.begin(), order.end(), 0);
    std::mt19937 shuffle_rng(static_cast<unsigned>(s));
    std::cerr << absl::StrFormat("bench: step %d/%d at %g Mbit/s", s + 1,
                                 steps.size(), steps[s].rate_mbit);
    const absl::Time step_start = absl::Now();
    // A step lasts its length, not counting time given back, and until every
    // policy has its settled samples (bounded: a step cut short fails its
    // target in the report).
    while (true) {
      const double elapsed = absl::ToDoubleSeconds(absl::Now() - step_start);
      int fewest = std::numeric_limits<int>::max();
      for (size_t p = 0; p < policies.size(); ++p) {
        if (!out_of_contention[p]) fewest = std::min(fewest, count[p]);
      }
      const bool enough = fewest >= kSkip + kMinSettled;
      const bool over =
          elapsed - given_back_s >= length || elapsed >= kGiveBackCap * length;
      if ((over && enough) || elapsed >= kStepCap * length) break;
      std::shuffle(order.begin(), order.end(), shuffle_rng);
      ++next_image;
      const absl::Time round_start = absl::Now();
      for (size_t p : order) {
        if (out_of_contention[p]) continue;
        const absl::Time sent = absl::Now();
        BenchRecord record;
        record.step = static_cast<int>(s);
        record.policy = static_cast<int>(p);
        record.index_in_step = count[p]++;
        record.t_s = absl::ToDoubleSeconds(sent - start);
        if (policies[p].fixed && failures_in_a_row[p] >= kDoomedAfter) {
          // A fixed plan at a constant rate that failed its last requests
          // fails again: counted at the deadline, not re-measured.
          record.projected = true;
        } else {
          send(policies[p], next_image, &record);
          if (!record.ok) {
            absl::SleepFor(absl::Microseconds(longest_block_us));
          }
          if (!record.ok || record.bytes > 0) {
            // What a cut-off transfer (or the agent's probe) left in the
            // socket and the shaper must not delay the next policy's
            // request. Not when that takes longer than a deadline: the
            // camera-sized pixels the agent cut off at 0.13 Mbit/s need 10 s
            // and more each, and waiting them out left that step 6 rounds in
            // its cap instead of 23 (17 waiting one deadline, which spared
            // nothing); the next request pays for such a drain.
            (void)WaitForQuietLink(edge.pid(), steps[s].rate_mbit,
                                   absl::Milliseconds(run.deadline_ms));
            absl::SleepFor(RefillTime(steps[s].rate_mbit));
          }
        }
        seconds_on[p] += absl::ToDoubleSeconds(absl::Now() - sent);
        failures_in_a_row[p] = record.ok ? 0 : failures_in_a_row[p] + 1;
        records.push_back(record);
      }
      const std::vector<bool> now_out =
          OutOfContention(policies, records, static_cast<int>(s), ranking,
                          kContentionFactor, kRankedAfter);
      for (size_t p = 0; p < policies.size(); ++p) {
        if (!now_out[p] || out_of_contention[p]) continue;
        out_of_contention[p] = true;
        given_back_s += seconds_on[p];
      }
      // Once plans are out, a round is only the contenders' requests. Run
      // back to back, they would put the edge in a regime the trace has
      // nowhere else (its worker never idle, its caches never cold: the
      // Fashion-MNIST edge plan computed 3x faster so) and teach the agent
      // figures for it; a round keeps the first step's pace instead.
      if (std::find(out_of_contention.begin(), out_of_contention.end(), true) !=
          out_of_contention.end()) {
        absl::SleepFor(first_round - (absl::Now() - round_start));
      }
    }
    if (s == 0 && count[adaptive_index] > 0)
      first_round = (absl::Now() - step_start) / count[adaptive_index];
    std::cerr << absl::StrFormat(
        ": %d rounds in %.1f s\n", count[adaptive_index],
        absl::ToDoubleSeconds(absl::Now() - step_start));
  }

  std::cerr << "bench: measuring the emulated slowdown against an undilated "
               "agent on the same core\n";
  ASSIGN_OR_RETURN(
      result.measured_slowdown,
      MeasureEmulation(linkemu, run.repository, config_path, work, *client,
                       run.model_name, policies[0].options, inputs));
  const std::string header = absl::StrFormat(
      "\"model\": \"%s\", \"deadline_ms\": %d, \"edge_slowdown\": "
      "{\"configured\": %g, \"measured\": %.2f, \"edge_vs_cloud\": %.2f, "
      "\"in_profiles\": %.2f, \"emulation\": \"dilation: each step of the "
      "edge's scheduler keeps its worker busy for (s - 1) x its CPU time\", "
      "\"measured_as\": \"median edge compute of edge_only requests on this "
      "agent over the same requests, interleaved, on an undilated agent on "
      "the same core\", \"edge_vs_cloud_as\": \"median edge compute of "
      "edge_only over median cloud compute of cloud_only in the trace (another "
      "core: the two drift apart on a shared machine)\"}, \"energy\": "
      "\"%s\", \"requests\": %d,\n ",
      run.model_name, run.deadline_ms, run.slowdown, result.measured_slowdown,
      MeasuredSlowdown(policies, records), profile_slowdown,
      energy_measured
          ? std::string("measured by the agent's power meter")
          : absl::StrCat("modelled (", absl::GetFlag(FLAGS_device_power), ", ",
                         absl::GetFlag(FLAGS_link_type), " radio)"),
      records.size());
  result.json = TraceReportJson(policies, steps, records, ranking, header);
  std::ofstream(run.out_dir / "trace_bench.json") << result.json;
  {
    std::ofstream csv(run.out_dir / "trace_requests.csv");
    csv << "t_s,step,rate_mbit,policy,ok,latency_ms,split,bytes,"
           "agent_ms,edge_queue_ms,edge_compute_ms,transfer_ms,"
           "cloud_queue_ms,cloud_compute_ms\n";
    for (const BenchRecord& r : records) {
      csv << absl::StrFormat(
          "%.4f,%d,%g,%s,%d,%.4f,%d,%d,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f\n", r.t_s,
          r.step, steps[r.step].rate_mbit, policies[r.policy].name, r.ok,
          r.ok ? r.latency_ms : static_cast<double>(run.deadline_ms), r.split,
          r.bytes, r.agent_ms, r.edge_queue_ms, r.edge_compute_ms,
          r.transfer_ms, r.cloud_queue_ms, r.cloud_compute_ms);
    }
  }
  const std::string png = (run.out_dir / "trace_bench.png").string();
  ASSIGN_OR_RETURN(
      int plotted,
      RunToCompletion({"/usr/bin/python3",
                       (SourceDir() / "tools/plot_trace.py").string(),
                       (run.out_dir / "trace_requests.csv").string(), png,
                       absl::StrFormat("%s, edge %gx slower", run.model_name,
                                       run.slowdown)}));
  std::cerr << (plotted == 0 ? "bench: plot in " + png
                             : "bench: plotting failed (matplotlib?)")
            << "\n";
  return result;
}

// A number from the report's JSON text: the value after `"key": ` at or
// after `from` (the report is ours, flat enough for this); -1 for null or
// absent.
double JsonNumber(const std::string& json, const std::string& key,
                  size_t from = 0) {
  const std::string needle = "\"" + key + "\": ";
  const size_t at = json.find(needle, from);
  if (at == std::string::npos ||
      json.compare(at + needle.size(), 4, "null") == 0) {
    return -1;
  }
  return std::atof(json.c_str() + at + needle.size());
}

// The zoo: every model x slowdown over the four rates; a table and a JSON of
// adaptive over the per-step oracle in every cell.
absl::Status RunZoo(TraceRun base, const std::string& linkemu) {
  const fs::path zoo = BuildDir() / "zoo_repository";
  const double rates[] = {1.1, 5.85, 18.88, 100};
  base.steps.clear();
  for (int i = 0; i < 4; ++i)
    base.steps.push_back({i * base.last_step_s, rates[i]});
  std::vector<std::string> cells;
  std::string table =
      "| model | edge slowdown (measured) | 1.1 Mbit/s | 5.85 | 18.88 | 100 "
      "| whole trace |\n|---|---|---|---|---|---|---|\n";
  const fs::path out = base.out_dir;
  for (const std::string& model : absl::GetFlag(FLAGS_zoo_models)) {
    if (!fs::exists(zoo / model / "config.pbtxt")) {
      return absl::NotFoundError(
          absl::StrCat((zoo / model).string(),
                       " is missing: cmake --build build --target zoo_models"));
    }
    // A repository holding this model alone: daemons load what they serve.
    const fs::path repository = out / ("repo_" + model);
    fs::create_directories(repository);
    std::error_code ignored;
    fs::create_directory_symlink(zoo / model, repository / model, ignored);
    for (const std::string& slowdown_text :
         absl::GetFlag(FLAGS_zoo_slowdowns)) {
      TraceRun run = base;
      run.model_name = model;
      run.repository = repository.string();
      run.slowdown = std::atof(slowdown_text.c_str());
      run.out_dir = out / absl::StrCat(model, "_x", slowdown_text);
      ASSIGN_OR_RETURN(TraceResult result, RunTrace(run, linkemu));
      std::string row = absl::StrFormat("| %s | %g (%.2f) |", model,
                                        run.slowdown, result.measured_slowdown);
      std::vector<std::string> per_step;
      size_t from = result.json.find("\"steps\"");
      for (int i = 0; i < 4; ++i) {
        from = result.json.find("\"adaptive_vs_oracle\"", from);
        const double r = JsonNumber(result.json, "adaptive_vs_oracle", from);
        from += 1;
        per_step.push_back(r < 0 ? "null" : absl::StrFormat("%.4f", r));
        absl::StrAppend(
            &row, " ",
            r < 0 ? std::string("no oracle") : absl::StrFormat("%.3f", r),
            " |");
      }
      const size_t targets = result.json.find("\"targets\"");
      const double whole =
          JsonNumber(result.json, "adaptive_vs_oracle", targets);
      absl::StrAppend(
          &row, " ",
          whole < 0 ? std::string("no oracle") : absl::StrFormat("%.3f", whole),
          " |\n");
      table += row;
      cells.push_back(absl::StrFormat(
          "{\"model\": \"%s\", \"slowdown\": %g, \"measured_slowdown\": %.2f, "
          "\"adaptive_vs_oracle_by_rate\": [%s], \"report\": \"%s\"}",
          model, run.slowdown, result.measured_slowdown,
          absl::StrJoin(per_step, ", "),
          (run.out_dir / "trace_bench.json").string()));
    }
  }
  const std::string json =
      absl::StrCat("{\"rates_mbit\": [1.1, 5.85, 18.88, 100], \"cells\": [\n  ",
                   absl::StrJoin(cells, ",\n  "), "]}\n");
  std::ofstream(out / "zoo_bench.json") << json;
  std::ofstream(out / "zoo_table.md") << table;
  std::cerr << table;
  std::cout << json;
  return absl::OkStatus();
}

// --scenario=mixed's flags, checked before anything starts.
absl::StatusOr<MixedRun> MixedRunFromFlags(const std::string& repository) {
  MixedRun mixed;
  mixed.repository = repository;
  mixed.slowdown = std::max(1.0, absl::GetFlag(FLAGS_edge_slowdown));
  mixed.rate_mbit = absl::GetFlag(FLAGS_mixed_rate_mbit);
  ASSIGN_OR_RETURN(mixed.loads, ParseLoads(absl::GetFlag(FLAGS_mixed_loads)));
  mixed.policies = absl::GetFlag(FLAGS_mixed_policies);
  RETURN_IF_ERROR(CheckPolicies(mixed.policies));
  for (const std::string& cloud : absl::GetFlag(FLAGS_mixed_clouds)) {
    if (cloud != "with" && cloud != "without") {
      return absl::InvalidArgumentError(
          "--mixed_clouds takes with and/or without");
    }
    mixed.clouds.push_back(cloud == "with");
  }
  mixed.seed = absl::GetFlag(FLAGS_mixed_seed);
  mixed.duration_s = absl::GetFlag(FLAGS_mixed_duration_s);
  mixed.workers = absl::GetFlag(FLAGS_mixed_workers);
  if (mixed.workers < 1)
    return absl::InvalidArgumentError("--mixed_workers must be >= 1");
  if (mixed.clouds.empty() || !(mixed.rate_mbit > 0) ||
      !(mixed.duration_s > 0)) {
    return absl::InvalidArgumentError(
        "--mixed_clouds, --mixed_rate_mbit and --mixed_duration_s must be "
        "set and positive");
  }
  mixed.out_dir = absl::GetFlag(FLAGS_out_dir);
  return mixed;
}

}  // namespace

absl::Status RunBenchCommandFromFlags() {
  const std::string scenario = absl::GetFlag(FLAGS_scenario);
  if (scenario != "trace" && scenario != "zoo" && scenario != "mixed" &&
      scenario != "load") {
    return absl::InvalidArgumentError(
        "--scenario is trace, zoo, mixed or load");
  }
  const std::string repository =
      absl::GetFlag(FLAGS_model_repository).empty()
          ? (BuildDir() / "model_repository").string()
          : absl::GetFlag(FLAGS_model_repository);
  if (scenario == "load") {
    // The cloud alone, on loopback: bench/load_bench (it runs the models
    // offline for the ceiling, which this torch-free tool cannot).
    std::vector<std::string> argv = {
        (BuildDir() / "bench/load_bench").string(),
        "--model_repository=" + repository,
        "--out_dir=" + absl::GetFlag(FLAGS_out_dir)};
    if (!absl::GetFlag(FLAGS_model).empty())
      argv.push_back("--models=" + absl::GetFlag(FLAGS_model));
    ASSIGN_OR_RETURN(int exit, RunToCompletion(argv, absl::Hours(2)));
    if (exit != 0)
      return absl::InternalError(absl::StrCat("load_bench exited ", exit));
    return absl::OkStatus();
  }
  std::optional<MixedRun> mixed;
  if (scenario == "mixed") {
    ASSIGN_OR_RETURN(mixed, MixedRunFromFlags(repository));
  }
  const std::string linkemu =
      (SourceDir() / "tools/linkemu/linkemu.sh").string();
  TearDownOnSignal(linkemu);
  ASSIGN_OR_RETURN(int check, RunToCompletion({"bash", linkemu, "check"}));
  if (check != 0) {
    return absl::FailedPreconditionError(
        "link emulation is unavailable here (needs root, network namespaces, "
        "tc tbf)");
  }
  if (scenario == "mixed") return RunMixed(*mixed, linkemu);
  TraceRun run;
  run.model_name = absl::GetFlag(FLAGS_model).empty()
                       ? "fmnist_branchy"
                       : absl::GetFlag(FLAGS_model);
  run.repository = repository;
  run.slowdown = std::max(1.0, absl::GetFlag(FLAGS_edge_slowdown));
  run.last_step_s = absl::GetFlag(FLAGS_step_s);
  run.steps = DefaultTrace(run.last_step_s);
  if (!absl::GetFlag(FLAGS_trace).empty()) {
    std::string csv;
    RETURN_IF_ERROR(ReadFile(absl::GetFlag(FLAGS_trace), &csv, 1 << 20));
    ASSIGN_OR_RETURN(run.steps, ParseTrace(csv));
  }
  // Without a deadline of their own, bench requests get 1 s.
  run.deadline_ms = absl::GetFlag(FLAGS_deadline_ms) > 0
                        ? absl::GetFlag(FLAGS_deadline_ms)
                        : 1000;
  run.split_candidates = absl::GetFlag(FLAGS_split_candidates);
  run.fp16_candidates = absl::GetFlag(FLAGS_fp16_candidates);
  run.out_dir = absl::GetFlag(FLAGS_out_dir);
  if (scenario == "zoo") return RunZoo(run, linkemu);
  ASSIGN_OR_RETURN(TraceResult result, RunTrace(run, linkemu));
  std::cout << result.json;  // The report is JSON either way; --json is
                             // accepted for scripts.
  return absl::OkStatus();
}

}  // namespace tandem
