#include "tools/bench_command.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/clock.h"
#include "common/status_macros.h"
#include "common/subprocess.h"
#include "common/text_proto.h"
#include "models/fashion_mnist.h"
#include "tools/connection_flags.h"
#include "tools/trace_bench.h"

ABSL_FLAG(std::string, scenario, "trace", "bench: the scenario (trace)");
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
          "bench: the edge gets 1/slowdown of one core (1: no cap)");
ABSL_FLAG(
    bool, split_candidates, true,
    "bench: also run every fixed split (INT8, FP16) as an oracle candidate");
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

constexpr char kNet[] = "tbench";
constexpr char kNetNumber[] = "77";
constexpr char kCloudAddress[] = "10.213.77.2";

// The build tree the running `tandem` binary belongs to.
fs::path BuildDir() {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::current_path() : self.parent_path().parent_path();
}

fs::path SourceDir() {
  // build/CMakeCache.txt names the source directory.
  std::ifstream cache(BuildDir() / "CMakeCache.txt");
  std::string line;
  const std::string key = "tandem_SOURCE_DIR:STATIC=";
  while (std::getline(cache, line)) {
    if (line.rfind(key, 0) == 0) return line.substr(key.size());
  }
  return fs::current_path();
}

absl::Status Run(const std::vector<std::string>& argv) {
  ASSIGN_OR_RETURN(int code, RunToCompletion(argv));
  if (code != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(argv[1], " ", argv[2], " exited ", code));
  }
  return absl::OkStatus();
}

// Inputs: the Fashion-MNIST test set for fmnist models, seeded noise for
// others.
struct Inputs {
  std::vector<int64_t> shape;
  std::vector<std::vector<uint8_t>> images;
  std::vector<int> labels;  // Empty without labels.
};

absl::StatusOr<Inputs> MakeInputs(const ModelInfo& model) {
  Inputs inputs;
  inputs.shape = model.input_shape;
  inputs.shape[0] = 1;
  int64_t pixels = 1;
  for (size_t i = 1; i < inputs.shape.size(); ++i) pixels *= inputs.shape[i];
  if (pixels == 28 * 28) {
    ASSIGN_OR_RETURN(ImageDataset data,
                     ReadFashionMnist(kDefaultFashionMnistDir,
                                      FashionMnistSplit::kTest, 2000));
    for (int64_t i = 0; i < data.count; ++i) {
      inputs.images.emplace_back(data.image(i), data.image(i) + pixels);
      inputs.labels.push_back(data.labels[i]);
    }
    return inputs;
  }
  std::mt19937 rng(0);
  for (int i = 0; i < 16; ++i) {
    std::vector<uint8_t> image(pixels);
    for (uint8_t& p : image) p = static_cast<uint8_t>(rng());
    inputs.images.push_back(std::move(image));
  }
  return inputs;
}

// Σ edge block latency / Σ cloud block latency, from the agent's profile.
double MeasuredSlowdown(const tandem::v1::SavedProfile& saved) {
  double edge = 0, cloud = 0;
  for (const auto& b : saved.edge().blocks())
    edge += b.latency_us() + b.exit_latency_us();
  for (const auto& b : saved.cloud().blocks())
    cloud += b.latency_us() + b.exit_latency_us();
  return cloud > 0 ? edge / cloud : 0;
}

}  // namespace

absl::Status RunBenchCommandFromFlags() {
  if (absl::GetFlag(FLAGS_scenario) != "trace") {
    return absl::InvalidArgumentError("the only scenario is --scenario=trace");
  }
  const std::string model_name = absl::GetFlag(FLAGS_model).empty()
                                     ? "fmnist_branchy"
                                     : absl::GetFlag(FLAGS_model);
  const fs::path build = BuildDir();
  const std::string linkemu =
      (SourceDir() / "tools/linkemu/linkemu.sh").string();
  const std::string repository = absl::GetFlag(FLAGS_model_repository).empty()
                                     ? (build / "model_repository").string()
                                     : absl::GetFlag(FLAGS_model_repository);
  std::vector<TraceStep> steps = DefaultTrace(absl::GetFlag(FLAGS_step_s));
  if (!absl::GetFlag(FLAGS_trace).empty()) {
    std::string csv;
    RETURN_IF_ERROR(ReadFile(absl::GetFlag(FLAGS_trace), &csv, 1 << 20));
    ASSIGN_OR_RETURN(steps, ParseTrace(csv));
  }
  ASSIGN_OR_RETURN(int check, RunToCompletion({"bash", linkemu, "check"}));
  if (check != 0) {
    return absl::FailedPreconditionError(
        "link emulation is unavailable here (needs root, network namespaces, "
        "tc tbf)");
  }
  const fs::path out_dir = absl::GetFlag(FLAGS_out_dir);
  fs::create_directories(out_dir);
  const fs::path work =
      fs::temp_directory_path() / absl::StrCat("tandem_bench_", getpid());
  fs::create_directories(work);
  (void)RunToCompletion({"bash", linkemu, "down", kNet});
  RETURN_IF_ERROR(Run({"bash", linkemu, "up", kNet, "--net", kNetNumber}));
  absl::Cleanup teardown = [&] {
    (void)RunToCompletion({"bash", linkemu, "down", kNet});
    fs::remove_all(work);
  };

  std::cerr << "bench: starting tandem-cloud (CPU 1) and tandem-edge (CPU 0, "
            << 100 / absl::GetFlag(FLAGS_edge_slowdown) << "% of a core)\n";
  ASSIGN_OR_RETURN(
      Subprocess cloud,
      Subprocess::Start(
          {"bash", linkemu, "exec", kNet, "cloud", "taskset", "-c", "1",
           (build / "cloud/tandem-cloud").string(),
           absl::StrCat("--listen=", kCloudAddress, ":8500"),
           "--model_repository=" + repository, "--worker_threads=1",
           "--port_file=" + (work / "cloud.port").string()},
          {{"TANDEM_MIN_LOG_LEVEL", "1"}}, /*own_group=*/true));
  RETURN_IF_ERROR(
      WaitForPortFile((work / "cloud.port").string(), cloud, absl::Minutes(5))
          .status());

  const std::string config_path = (work / "edge.pbtxt").string();
  std::ofstream(config_path) << absl::StrFormat(
      "models { model_name: \"%s\" adaptive: true objective: \"%s\" }\n"
      "energy { device: \"%s\" link_type: \"%s\" }\n"
      "adaptation { probe_interval_ms: 1000 replan_interval_ms: 2000 "
      "profile_runs: 10 }\n",
      model_name, absl::GetFlag(FLAGS_bench_objective),
      absl::GetFlag(FLAGS_device_power), absl::GetFlag(FLAGS_link_type));
  const int percent =
      static_cast<int>(100 / std::max(1.0, absl::GetFlag(FLAGS_edge_slowdown)));
  // The cap goes outside the namespace: `ip netns exec` remounts /sys, which
  // hides the cgroup tree; the exec inherits the cgroup.
  std::vector<std::string> edge_argv;
  if (percent < 100) {
    // A short period, so that millisecond inferences feel the cap too (the
    // kernel wants a quota of at least 1 ms).
    const int period_us = std::max(4000, 100000 / percent);
    edge_argv = {"bash",
                 linkemu,
                 "cpucap",
                 kNet,
                 absl::StrCat(percent),
                 "--cpus=0",
                 absl::StrCat("--period-us=", period_us),
                 "--"};
  } else {
    edge_argv = {"taskset", "-c", "0"};
  }
  for (const char* arg : {"bash", linkemu.c_str(), "exec", kNet, "edge"})
    edge_argv.push_back(arg);
  const std::string socket = (work / "edge.sock").string();
  for (const std::string& arg : std::vector<std::string>{
           (build / "edge/tandem-edge").string(),
           "--listen=unix:" + socket + ",127.0.0.1:0",
           absl::StrCat("--cloud=", kCloudAddress, ":8500"),
           "--model_repository=" + repository, "--config=" + config_path,
           "--worker_threads=1",
           "--port_file=" + (work / "edge.port").string()}) {
    edge_argv.push_back(arg);
  }
  ASSIGN_OR_RETURN(
      Subprocess edge,
      Subprocess::Start(edge_argv, {{"TANDEM_MIN_LOG_LEVEL", "1"}}, true));
  RETURN_IF_ERROR(
      WaitForPortFile((work / "edge.port").string(), edge, absl::Minutes(10))
          .status());
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
    if (m.name == model_name) model = &m;
  }
  if (model == nullptr)
    return absl::NotFoundError("the agent has no model " + model_name);
  ASSIGN_OR_RETURN(Inputs inputs, MakeInputs(*model));

  // Without a deadline of their own, bench requests get 1 s.
  const int64_t deadline_ms = absl::GetFlag(FLAGS_deadline_ms) > 0
                                  ? absl::GetFlag(FLAGS_deadline_ms)
                                  : 1000;
  const absl::Duration deadline = absl::Milliseconds(deadline_ms);
  std::vector<BenchPolicy> policies =
      TracePolicies(model->num_blocks, deadline);
  if (!absl::GetFlag(FLAGS_split_candidates)) {
    // Heavy models: every round must stay short enough for a step to hold
    // several; the oracle then picks among the named fixed policies only.
    policies.erase(
        std::remove_if(policies.begin(), policies.end(),
                       [](const BenchPolicy& p) { return !p.reported; }),
        policies.end());
  }
  for (BenchPolicy& p : policies)
    p.options.min_accuracy = absl::GetFlag(FLAGS_min_accuracy);
  size_t next_image = 0;
  bool energy_measured = false;
  // Every policy of a round classifies the same image, so accuracies compare.
  auto send = [&](const BenchPolicy& policy, size_t image,
                  BenchRecord* record) {
    const size_t i = image % inputs.images.size();
    absl::StatusOr<InferResult> result = client->Infer(
        model_name, InputTensor::Pixels(inputs.shape, inputs.images[i].data()),
        policy.options);
    record->ok = result.ok();
    if (!result.ok()) return;
    record->latency_ms = absl::ToDoubleMilliseconds(result->client_latency);
    record->split = result->split_point;
    record->energy_mj = result->energy_mj;
    energy_measured |= result->energy_measured;
    record->bytes = result->bytes_sent;
    record->has_label = !inputs.labels.empty();
    record->correct = record->has_label && !result->top_k.empty() &&
                      result->top_k[0].index == inputs.labels[i];
  };

  // Warm up at the first rate so the agent has measured the link, then take
  // the static plan (Neurosurgeon-style: planned once, at the start).
  RETURN_IF_ERROR(
      Run({"bash", linkemu, "rate", kNet, absl::StrCat(steps[0].rate_mbit)}));
  const BenchPolicy& adaptive = policies[3];
  const absl::Time warm_until = absl::Now() + absl::Seconds(3);
  while (absl::Now() < warm_until) {
    BenchRecord ignored;
    send(adaptive, next_image++, &ignored);
  }
  ASSIGN_OR_RETURN(tandem::v1::Plan first_plan, client->GetPlan(model_name));
  BenchPolicy static_split;
  static_split.name = "static_split";
  static_split.options = adaptive.options;
  static_split.options.split_point = first_plan.split_point();
  static_split.options.encoding = first_plan.encoding();
  policies.insert(policies.begin() + 3, static_split);
  ASSIGN_OR_RETURN(tandem::v1::SavedProfile profile,
                   client->GetProfile(model_name));
  const double slowdown = MeasuredSlowdown(profile);
  std::cerr << "bench: measured edge/cloud speed ratio " << slowdown
            << "; static plan: split " << first_plan.split_point() << "\n";

  std::vector<BenchRecord> records;
  const absl::Time start = absl::Now();
  for (size_t s = 0; s < steps.size(); ++s) {
    const double step_end =
        s + 1 < steps.size() ? steps[s + 1].start_s
                             : steps[s].start_s + absl::GetFlag(FLAGS_step_s);
    RETURN_IF_ERROR(
        Run({"bash", linkemu, "rate", kNet, absl::StrCat(steps[s].rate_mbit)}));
    std::vector<int> count(policies.size(), 0);
    // A fresh order every round: what ran just before a request (warm or
    // cold caches, a drained token bucket) must not favour one policy.
    std::vector<size_t> order(policies.size());
    std::iota(order.begin(), order.end(), 0);
    std::mt19937 shuffle_rng(static_cast<unsigned>(s));
    std::cerr << absl::StrFormat("bench: step %d/%d at %g Mbit/s\n", s + 1,
                                 steps.size(), steps[s].rate_mbit);
    while (absl::ToDoubleSeconds(absl::Now() - start) < step_end) {
      std::shuffle(order.begin(), order.end(), shuffle_rng);
      ++next_image;
      for (size_t p : order) {
        BenchRecord record;
        record.step = static_cast<int>(s);
        record.policy = static_cast<int>(p);
        record.index_in_step = count[p]++;
        record.t_s = absl::ToDoubleSeconds(absl::Now() - start);
        send(policies[p], next_image, &record);
        records.push_back(record);
      }
    }
  }

  const std::string header = absl::StrFormat(
      "\"model\": \"%s\", \"deadline_ms\": %d, \"edge_slowdown\": "
      "{\"configured\": %g, "
      "\"measured\": %.2f}, \"energy\": \"%s\", \"requests\": %d,\n ",
      model_name, deadline_ms, absl::GetFlag(FLAGS_edge_slowdown), slowdown,
      energy_measured
          ? std::string("measured by the agent's power meter")
          : absl::StrCat("modelled (", absl::GetFlag(FLAGS_device_power), ", ",
                         absl::GetFlag(FLAGS_link_type), " radio)"),
      records.size());
  const std::string json =
      TraceReportJson(policies, steps, records, /*skip=*/3, header);
  std::ofstream(out_dir / "trace_bench.json") << json;
  {
    std::ofstream csv(out_dir / "trace_requests.csv");
    csv << "t_s,step,rate_mbit,policy,ok,latency_ms,split\n";
    for (const BenchRecord& r : records) {
      csv << absl::StrFormat("%.4f,%d,%g,%s,%d,%.4f,%d\n", r.t_s, r.step,
                             steps[r.step].rate_mbit, policies[r.policy].name,
                             r.ok, r.latency_ms, r.split);
    }
  }
  const std::string png = (out_dir / "trace_bench.png").string();
  ASSIGN_OR_RETURN(
      int plotted,
      RunToCompletion(
          {"/usr/bin/python3", (SourceDir() / "tools/plot_trace.py").string(),
           (out_dir / "trace_requests.csv").string(), png, model_name}));
  std::cerr << (plotted == 0 ? "bench: plot in " + png
                             : "bench: plotting failed (matplotlib?)")
            << "\n";
  std::cout << json;  // The report is JSON either way; --json is accepted for
                      // scripts.
  return absl::OkStatus();
}

}  // namespace tandem
