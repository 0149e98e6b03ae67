#include "tools/mixed_runner.h"

#include <signal.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/stats.h"
#include "common/status_macros.h"
#include "common/subprocess.h"
#include "tools/bench_daemons.h"
#include "tools/mixed_bench.h"

namespace tandem {
namespace {

namespace fs = std::filesystem;

struct MixedPlan {
  std::vector<MixedTask> tasks;                  // Costs measured.
  std::vector<std::vector<TaskTiming>> timings;  // Per load.
  std::vector<std::vector<Release>> schedules;   // Per load.
  std::map<std::string, ModelInputs> inputs;     // By model.
};

constexpr int kCostWarmup = 5;
constexpr int kCostSamples = 100;
constexpr absl::Duration kCostBudget = absl::Seconds(20);

// C_i of a task on the emulated edge: what one of its jobs costs there in
// the setting it runs at by default (edge only, its exits and floor), so
// that load 1 keeps the device exactly busy and load 1.4 overloads it. Up
// to kCostSamples requests (kCostBudget), one at a time; per exit taken,
// the median edge compute time of the requests that took it, weighted by
// how often it was taken: robust to a stalled request, and the same from
// run to run as the inputs are. The agent's start-up profile alone put the
// Fashion-MNIST model at 3.3, 7.2 and 8.1 ms in three runs in a row, and
// at full setting (every block and head) it overstated the work of a model
// whose requests mostly exit early, so "1.4" did not overload the device.
absl::StatusOr<double> MeasureCost(Client& client, const MixedTask& task,
                                   const ModelInputs& inputs) {
  ASSIGN_OR_RETURN(tandem::v1::SavedProfile profile,
                   client.GetProfile(task.model));
  InferOptions options = MixedTaskOptions(task, 30'000);
  options.task.clear();  // The first daemon declares no tasks.
  options.split_point = profile.edge().blocks_size();  // Edge only.
  std::map<int, std::vector<double>> by_exit;  // Edge compute ms by exit.
  const absl::Time until = absl::Now() + kCostBudget;
  for (int i = 0; i < kCostWarmup + kCostSamples && absl::Now() < until; ++i) {
    ASSIGN_OR_RETURN(
        InferResult result,
        client.Infer(task.model, inputs.tensors[i % inputs.tensors.size()],
                     options));
    if (i < kCostWarmup) continue;
    by_exit[result.exit_block].push_back(
        absl::ToDoubleMilliseconds(result.timings.edge_compute));
  }
  std::string exits;
  for (auto& [exit, times] : by_exit) {
    absl::StrAppendFormat(&exits, "%sexit %d: %d × %.3f ms",
                          exits.empty() ? "" : ", ", exit, times.size(),
                          Percentile(times, 50));
  }
  const double cost_ms = CostFromExitSamples(by_exit);
  std::cerr << absl::StrFormat(
      "bench: %s at floor %.2f (task %s): C = %.3f ms (%s)\n", task.model,
      task.min_accuracy, task.name, cost_ms, exits);
  if (!(cost_ms > 0)) {
    return absl::InternalError(
        absl::StrCat("no cost measured for task ", task.name));
  }
  return cost_ms;
}

// A first daemon without tasks, and without the cloud (no link prober beside
// the measured jobs): C_i of every task (MeasureCost), and the inputs.
absl::StatusOr<MixedPlan> PlanMixed(const MixedRun& run,
                                    const std::string& linkemu,
                                    const fs::path& work) {
  MixedPlan plan;
  plan.tasks = DefaultMixedTasks();
  const std::string config_path = (work / "edge.pbtxt").string();
  std::ofstream(config_path)
      << MixedEdgeConfig(plan.tasks, {}, "tandem_rt", /*with_cloud=*/false);
  ASSIGN_OR_RETURN(Subprocess edge,
                   StartEdge(linkemu, run.repository, config_path, run.slowdown,
                             /*with_cloud=*/false, work));
  absl::Cleanup stop = [&] {
    edge.Signal(SIGTERM);
    (void)edge.Wait(absl::Seconds(30));
  };
  ASSIGN_OR_RETURN(std::unique_ptr<Client> client, ConnectEdge(work));
  ASSIGN_OR_RETURN(std::vector<ModelInfo> models, client->ListModels());
  std::map<std::pair<std::string, float>, double> costs;
  for (MixedTask& task : plan.tasks) {
    auto model =
        std::find_if(models.begin(), models.end(),
                     [&](const ModelInfo& m) { return m.name == task.model; });
    if (model == models.end()) {
      return absl::NotFoundError(
          absl::StrCat("the agent has no model ", task.model, " (task ",
                       task.name, "); --model_repository=", run.repository));
    }
    if (plan.inputs.count(task.model) == 0) {
      ASSIGN_OR_RETURN(Inputs inputs, MakeInputs(*model));
      ModelInputs& mine = plan.inputs[task.model];
      for (const std::vector<uint8_t>& image : inputs.images)
        mine.tensors.push_back(InputTensor::Pixels(inputs.shape, image.data()));
      mine.labels = std::move(inputs.labels);
    }
    // Tasks of one model and floor run the same jobs: measured once.
    const auto key = std::make_pair(task.model, task.min_accuracy);
    if (costs.count(key) == 0) {
      ASSIGN_OR_RETURN(costs[key],
                       MeasureCost(*client, task, plan.inputs.at(task.model)));
    }
    task.cost_ms = costs.at(key);
  }
  for (size_t l = 0; l < run.loads.size(); ++l) {
    ASSIGN_OR_RETURN(std::vector<TaskTiming> timings,
                     TimingsAtLoad(plan.tasks, run.loads[l]));
    plan.schedules.push_back(
        MakeReleaseSchedule(plan.tasks, timings, run.duration_s * 1000,
                            run.seed, static_cast<int>(l)));
    plan.timings.push_back(std::move(timings));
  }
  return plan;
}

// One daemon: `policy`, with or without the cloud, every load in turn.
absl::Status RunMixedDaemon(const MixedRun& run, const MixedPlan& plan,
                            int policy, bool cloud, const std::string& linkemu,
                            const fs::path& work,
                            std::vector<MixedRecord>* records) {
  const std::string config_path = (work / "edge.pbtxt").string();
  ASSIGN_OR_RETURN(std::vector<TaskTiming> at_one,
                   TimingsAtLoad(plan.tasks, 1));
  std::ofstream(config_path)
      << MixedEdgeConfig(plan.tasks, at_one, run.policies[policy], cloud);
  ASSIGN_OR_RETURN(Subprocess edge,
                   StartEdge(linkemu, run.repository, config_path, run.slowdown,
                             cloud, work, run.workers));
  absl::Cleanup stop = [&] {
    edge.Signal(SIGTERM);
    (void)edge.Wait(absl::Seconds(30));
  };
  ASSIGN_OR_RETURN(std::unique_ptr<Client> client, ConnectEdge(work));
  // Warm up (not recorded): a few requests of every task, so the agent has
  // measured the link and its caches are warm.
  const absl::Time warm_until = absl::Now() + absl::Seconds(2);
  for (uint32_t round = 0; absl::Now() < warm_until; ++round) {
    for (const MixedTask& task : plan.tasks) {
      const ModelInputs& inputs = plan.inputs.at(task.model);
      (void)client->Infer(task.model,
                          inputs.tensors[round % inputs.tensors.size()],
                          MixedTaskOptions(task, 1000));
    }
  }
  for (size_t l = 0; l < run.loads.size(); ++l) {
    SentLoad sent =
        SendReleases(*client, plan.tasks, plan.timings[l], plan.schedules[l],
                     plan.inputs, absl::Minutes(2));
    if (sent.unanswered > 0) {
      return absl::DeadlineExceededError(absl::StrCat(
          sent.unanswered, " requests still unanswered 2 min after the last"));
    }
    std::vector<const MixedRecord*> mine;
    for (MixedRecord& r : sent.records) {
      r.load = static_cast<int>(l);
      r.cloud = cloud;
      r.policy = policy;
      mine.push_back(&r);
    }
    std::cerr << absl::StrFormat(
        "bench: %s load %g %s cloud: miss rate %.4f of %d (sender late by "
        "up to %.2f ms)\n",
        run.policies[policy], run.loads[l], cloud ? "with" : "without",
        MissRate(mine), mine.size(), sent.worst_lag_ms);
    records->insert(records->end(), sent.records.begin(), sent.records.end());
    // The next load starts as soon as this one has drained: after a second
    // of idleness the agent was seen to stall ~80 ms on its first requests
    // (under every policy alike), which would charge the next load's first
    // releases to an idle gap that no running device has.
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status RunMixed(const MixedRun& run, const std::string& linkemu) {
  fs::create_directories(run.out_dir);
  const fs::path work = WorkDir();
  absl::Cleanup teardown = [&] { LinkDown(linkemu, work); };
  RETURN_IF_ERROR(LinkUp(linkemu, work));
  RETURN_IF_ERROR(RunChecked(RateArgs(linkemu, run.rate_mbit)));
  std::cerr << "bench: mixed: tandem-cloud on CPU 1 behind " << run.rate_mbit
            << " Mbit/s, tandem-edge on CPU 0 emulated " << run.slowdown
            << "x slower\n";
  ASSIGN_OR_RETURN(Subprocess cloud, StartCloud(linkemu, run.repository, work));
  absl::Cleanup stop_cloud = [&] {
    cloud.Signal(SIGTERM);
    (void)cloud.Wait(absl::Seconds(30));
  };
  ASSIGN_OR_RETURN(MixedPlan plan, PlanMixed(run, linkemu, work));
  std::vector<MixedRecord> records;
  for (bool with_cloud : run.clouds) {
    for (size_t p = 0; p < run.policies.size(); ++p) {
      RETURN_IF_ERROR(RunMixedDaemon(run, plan, static_cast<int>(p), with_cloud,
                                     linkemu, work, &records));
    }
  }

  MixedReportOptions report;
  report.edge_slowdown = run.slowdown;
  report.duration_s = run.duration_s;
  report.loads = run.loads;
  report.clouds = run.clouds;
  report.policies = run.policies;
  report.header_fields = absl::StrFormat(
      "\"seed\": %d, \"rate_mbit\": %g, \"deadlines\": \"relative, scaled "
      "with the periods at each load\", ",
      run.seed, run.rate_mbit);
  const std::string json = MixedReportJson(plan.tasks, records, report);
  std::ofstream(run.out_dir / "mixed_bench.json") << json;
  std::ofstream(run.out_dir / "mixed_requests.csv")
      << MixedRequestsCsv(plan.tasks, records, report);
  ASSIGN_OR_RETURN(
      int plotted,
      RunToCompletion(
          {"/usr/bin/python3", (SourceDir() / "tools/plot_mixed.py").string(),
           (run.out_dir / "mixed_bench.json").string(), run.out_dir.string()}));
  std::cerr << (plotted == 0
                    ? "bench: plots in " + run.out_dir.string() +
                          "/mixed_load*.png"
                    : std::string("bench: plotting failed (matplotlib?)"))
            << "\n";
  std::cout << json;
  return absl::OkStatus();
}

}  // namespace tandem
