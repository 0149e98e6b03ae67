#include "edge/edge_agent.h"

#include <ATen/Parallel.h>
#include <sched.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/notification.h"
#include "common/access_control.h"
#include "common/clock.h"
#include "common/daemon.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "models/block_runner.h"
#include "models/request_checks.h"
#include "models/tensor_codec.h"
#include "partitioner/energy_model.h"
#include "partitioner/exit_thresholds.h"
#include "partitioner/planner.h"

namespace tandem {
namespace {

// The gRPC link to the cloud the config names, with its TLS files and the
// bearer token from cloud_token_file.
absl::StatusOr<std::unique_ptr<CloudLink>> CreateCloudLink(
    const tandem::v1::EdgeConfig& config) {
  CloudLink::Options options;
  options.max_message_bytes = config.limits().max_message_bytes();
  options.tls.ca = config.cloud_tls().ca();
  options.tls.cert = config.cloud_tls().cert();
  options.tls.key = config.cloud_tls().key();
  options.tls.server_name = config.cloud_tls().server_name();
  if (!options.tls.enabled() &&
      !(options.tls.cert.empty() && options.tls.key.empty() &&
        options.tls.server_name.empty())) {
    return absl::InvalidArgumentError(
        "cloud_tls needs its ca (the CA that signed the cloud's certificate)");
  }
  if (!config.cloud_token_file().empty()) {
    ASSIGN_OR_RETURN(options.bearer_token,
                     ReadBearerToken(config.cloud_token_file()));
  }
  return CloudLink::Create(config.cloud(), options);
}

using tandem::v1::ContinueRequest;
using tandem::v1::ContinueResponse;
using tandem::v1::InferRequest;
using tandem::v1::InferResponse;

// Whether the request's (only) input takes no more bytes than `encoding`
// would give it (RAW meaning FP32): then forwarding it as sent is best.
bool AsCompactAs(const InferRequest& request, tandem::v1::Encoding encoding) {
  int64_t elements = 1;
  for (int64_t d : request.inputs(0).shape()) elements *= d;
  const int64_t per_element = encoding == tandem::v1::ENCODING_AFFINE_UINT8 ? 1
                              : encoding == tandem::v1::ENCODING_FP16       ? 2
                                                                            : 4;
  return static_cast<int64_t>(request.raw_input_contents(0).size()) <=
         elements * per_element;
}

// Largest EdgeConfig.max_batch accepted.
constexpr int kMaxBatch = 64;

// "cpu", "cuda" or "cuda:N"; a CUDA device this LibTorch cannot use is
// refused here, before any model loads.
absl::Status CheckDevice(const std::string& device) {
  if (device.empty() || device == "cpu") return absl::OkStatus();
  int index = 0;
  if (device != "cuda" &&
      !(absl::StartsWith(device, "cuda:") &&
        absl::SimpleAtoi(device.substr(5), &index) && index >= 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("device '", device, "' is none of cpu, cuda, cuda:N"));
  }
  if (!torch::cuda::is_available()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "device '", device,
        "': this LibTorch has no CUDA support or sees no GPU (use \"cpu\")"));
  }
  if (index >= static_cast<int>(torch::cuda::device_count())) {
    return absl::FailedPreconditionError(
        absl::StrCat("device '", device, "': only ",
                     torch::cuda::device_count(), " CUDA devices are visible"));
  }
  return absl::OkStatus();
}

// Scaling level 1: at every early exit the lowest calibrated threshold
// whose exited samples still reach `floor` (below the calibrated threshold
// if need be); exits whose calibration never reaches it are left out.
ExitThresholds ThresholdsAtFloor(const tandem::v1::ModelConfig& config,
                                 float floor) {
  ExitThresholds out;
  for (const tandem::v1::ExitConfig& exit : config.exits()) {
    if (exit.block() == config.num_blocks() - 1) continue;  // The final one.
    std::optional<float> lowest;
    for (const tandem::v1::CalibrationPoint& point : exit.calibration()) {
      if (point.exit_rate() > 0 && point.accuracy() + 1e-6 >= floor &&
          (!lowest.has_value() || point.threshold() < *lowest)) {
        lowest = point.threshold();
      }
    }
    if (lowest.has_value()) out[exit.block()] = *lowest;
  }
  return out;
}

// Scaling level 3: the earliest early exit whose own test accuracy meets
// `floor` (untrained models: any, at floor 0); -1 when none does.
int ForcedExit(const ProgressiveModel& model, float floor) {
  for (int block : model.exit_blocks()) {
    if (block == model.num_blocks() - 1) break;
    for (const tandem::v1::ExitConfig& exit : model.config().exits()) {
      if (exit.block() == block && exit.test_accuracy() + 1e-6 >= floor)
        return block;
    }
  }
  return -1;
}

// The validation share of all samples that leave at `exit` with
// `threshold`: the calibration point nearest to it.
double ExitRate(const tandem::v1::ExitConfig& exit, float threshold) {
  if (threshold == exit.threshold()) return exit.exit_rate();
  double rate = 0, nearest = 2;
  for (const tandem::v1::CalibrationPoint& point : exit.calibration()) {
    const double distance = std::abs(point.threshold() - threshold);
    if (distance < nearest) {
      nearest = distance;
      rate = point.exit_rate();
    }
  }
  return rate;
}

// Mean edge time of an edge-only job with `thresholds`: each block weighed
// by the share of samples that reach it (untrained models: all do).
absl::Duration ExpectedWork(
    const ProgressiveModel& model, const ExitThresholds& thresholds,
    const std::function<absl::Duration(int)>& block_time) {
  double reach = 1;
  absl::Duration work;
  for (int b = 0; b < model.num_blocks(); ++b) {
    work += reach * block_time(b);
    const auto threshold = thresholds.find(b);
    if (threshold == thresholds.end()) continue;
    for (const tandem::v1::ExitConfig& exit : model.config().exits()) {
      if (exit.block() == b) reach -= ExitRate(exit, threshold->second);
    }
    reach = std::max(0.0, reach);
  }
  return work;
}

// Whether `workers` threads outnumber the cores this process may run on.
bool SharedCores(int workers) {
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  if (sched_getaffinity(0, sizeof(cpus), &cpus) != 0) return false;
  return CPU_COUNT(&cpus) < workers;
}

}  // namespace

tandem::v1::EdgeConfig WithEdgeDefaults(tandem::v1::EdgeConfig config) {
  if (config.listen_size() == 0)
    config.add_listen("unix:/run/tandem/edge.sock");
  FillDaemonDefaults(&config);
  if (config.cloud_timeout_ms() <= 0) config.set_cloud_timeout_ms(2000);
  if (config.device().empty()) config.set_device("cpu");
  return config;
}

absl::StatusOr<std::unique_ptr<EdgeAgent>> EdgeAgent::Create(
    tandem::v1::EdgeConfig config, Clock* clock,
    std::unique_ptr<CloudLink> cloud) {
  config = WithEdgeDefaults(std::move(config));
  if (config.model_repository().empty()) {
    return absl::InvalidArgumentError("model_repository is not set");
  }
  std::unique_ptr<EdgeAgent> agent(
      new EdgeAgent(clock != nullptr ? clock : RealClock()));
  agent->config_ = config;
  if (!config.scheduling_policy().empty()) {
    ASSIGN_OR_RETURN(agent->policy_,
                     ParseSchedulingPolicy(config.scheduling_policy()));
  }
  if (!config.admission().empty() && config.admission() != "enforce" &&
      config.admission() != "log") {
    return absl::InvalidArgumentError(absl::StrCat(
        "admission '", config.admission(), "' is neither enforce nor log"));
  }
  RETURN_IF_ERROR(CheckDevice(config.device()));
  // Every job caches a predicted step time per batch size: keep it small.
  if (config.max_batch() < 0 || config.max_batch() > kMaxBatch) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_batch ", config.max_batch(), " is outside [0, ", kMaxBatch, "]"));
  }
  if (cloud == nullptr && !config.cloud().empty()) {
    // Before the models load: bad TLS or token files fail the start at once.
    ASSIGN_OR_RETURN(cloud, CreateCloudLink(config));
  }
  AddProcessMetrics(&agent->registry_);
  agent->metrics_ = std::make_unique<EdgeMetrics>(&agent->registry_);
  agent->limits_.max_tensor_bytes = config.limits().max_tensor_bytes();
  at::set_num_threads(config.intra_op_threads());
  ModelLoadOptions load_options;
  load_options.warmup_runs = config.warmup_runs();
  load_options.device = config.device();
  // The agent runs one version of each model: the newest.
  load_options.newest_version_only = true;
  if (config.emulated_slowdown() > 1) {
    load_options.emulated_slowdown = config.emulated_slowdown();
    TANDEM_LOG(WARNING) << "emulating a device " << config.emulated_slowdown()
                        << "x slower (benchmarks only)";
  }
  ASSIGN_OR_RETURN(
      agent->repository_,
      ModelRepository::Load(config.model_repository(), load_options));
  RETURN_IF_ERROR(agent->ValidatePolicies(config));
  agent->cloud_ = std::move(cloud);
  ASSIGN_OR_RETURN(agent->keeper_,
                   PlanKeeper::Create(config, agent->repository_.get(),
                                      agent->cloud_.get(), agent->clock_));
  RETURN_IF_ERROR(agent->Reload(config));
  {
    absl::MutexLock lock(&agent->meter_mu_);
    agent->meter_ = DetectEnergyMeter("/sys", agent->clock_);
    TANDEM_LOG(INFO) << "energy: "
                     << (agent->meter_ != nullptr
                             ? "measured with " + agent->meter_->name()
                             : std::string("modelled (no power meter found)"));
  }

  EdgeAgent* self = agent.get();
  agent->services_.keeper = agent->keeper_.get();
  agent->services_.cloud = agent->cloud_.get();
  agent->services_.step_times = &agent->step_times_;
  agent->services_.clock = agent->clock_;
  agent->services_.step_time_is_thread_cpu =
      config.device() == "cpu" && config.intra_op_threads() == 1 &&
      SharedCores(config.worker_threads());
  agent->services_.cloud_timeout =
      absl::Milliseconds(config.cloud_timeout_ms());
  agent->services_.set_energy = [self](std::optional<double> meter_start,
                                       InferResponse* response) {
    self->SetEnergy(meter_start, response);
  };
  agent->services_.in_flight = [self](int delta) {
    absl::MutexLock lock(&self->flight_mu_);
    self->in_flight_ += delta;
  };
  BlockScheduler::Options scheduler_options;
  scheduler_options.workers = config.worker_threads();
  scheduler_options.policy = agent->policy_;
  scheduler_options.clock = agent->clock_;
  scheduler_options.max_jobs = static_cast<size_t>(config.max_queue_size());
  // Packing is tandem_rt's: the baselines run one job per step.
  scheduler_options.max_batch =
      agent->policy_ == SchedulingPolicy::kTandemRt
          ? (config.max_batch() > 0 ? config.max_batch() : 8)
          : 1;
  const int intra_op = config.intra_op_threads();
  scheduler_options.thread_init = [intra_op] { at::set_num_threads(intra_op); };
  agent->scheduler_ =
      std::make_unique<BlockScheduler>(std::move(scheduler_options));
  agent->services_.scheduler = agent->scheduler_.get();
  {
    absl::MutexLock lock(&agent->mu_);
    agent->UpdateLane(*agent->task_set_);
  }
  agent->AddPartMetrics();
  TANDEM_LOG(INFO) << "scheduler: " << SchedulingPolicyName(agent->policy_)
                   << ", " << config.worker_threads() << " workers on "
                   << (config.device().empty() ? "cpu" : config.device());
  return agent;
}

EdgeAgent::~EdgeAgent() { Shutdown(); }

void EdgeAgent::Shutdown() {
  if (scheduler_ != nullptr) scheduler_->Shutdown();
  // Offload callbacks resume jobs through the scheduler: wait for them (each
  // is bounded by its deadline).
  absl::MutexLock lock(&flight_mu_);
  flight_mu_.Await(absl::Condition(
      +[](int* n) { return *n == 0; }, &in_flight_));
}
absl::Status EdgeAgent::ValidatePolicies(
    const tandem::v1::EdgeConfig& config) const {
  for (const tandem::v1::EdgeModelPolicy& policy : config.models()) {
    ASSIGN_OR_RETURN(const ProgressiveModel* model,
                     repository_->Get(policy.model_name()));
    if (policy.split_point() < -1 ||
        policy.split_point() > model->num_blocks()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "model '", policy.model_name(), "': split_point ",
          policy.split_point(), " is outside [-1, ", model->num_blocks(), "]"));
    }
    if (!tandem::v1::Encoding_IsValid(policy.encoding()) ||
        !tandem::v1::Compression_IsValid(policy.compression())) {
      return absl::InvalidArgumentError(
          absl::StrCat("model '", policy.model_name(),
                       "': unknown encoding or compression"));
    }
    for (const auto& [block, threshold] : policy.exit_thresholds()) {
      if (!model->HasExit(block) || !(threshold >= 0 && threshold <= 1)) {
        return absl::InvalidArgumentError(
            absl::StrCat("model '", policy.model_name(),
                         "': bad exit threshold for block ", block));
      }
    }
    // Misspelt names are refused, not read as the default.
    if (!policy.objective().empty() &&
        !ParseObjective(policy.objective()).ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "model '", policy.model_name(),
          "': ", ParseObjective(policy.objective()).status().message()));
    }
  }
  const tandem::v1::EnergyConfig& energy = config.energy();
  if (!energy.device().empty() && !DevicePowerPreset(energy.device()).ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("energy.device: ",
                     DevicePowerPreset(energy.device()).status().message()));
  }
  if (!energy.link_type().empty() &&
      !RadioPowerPreset(energy.link_type()).ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("energy.link_type: ",
                     RadioPowerPreset(energy.link_type()).status().message()));
  }
  return absl::OkStatus();
}

absl::Status EdgeAgent::Reload(const tandem::v1::EdgeConfig& config) {
  RETURN_IF_ERROR(Annotate(ValidatePolicies(config),
                           "config rejected, keeping the old one"));
  absl::StatusOr<TaskSet> tasks = BuildTasks(config);
  if (!tasks.ok()) {
    return Annotate(tasks.status(), "config rejected, keeping the old one");
  }
  std::map<std::string, tandem::v1::EdgeModelPolicy> policies;
  for (const tandem::v1::EdgeModelPolicy& policy : config.models()) {
    policies[policy.model_name()] = policy;
  }
  absl::MutexLock lock(&mu_);
  policies_ = std::move(policies);
  task_set_ = std::make_shared<const TaskSet>(*std::move(tasks));
  if (scheduler_ != nullptr) UpdateLane(*task_set_);
  return absl::OkStatus();
}

void EdgeAgent::UpdateLane(const TaskSet& tasks) {
  // tandem_rt keeps a fast lane when the device has a worker to spare: one
  // worker takes no step longer than half the tightest task deadline,
  // unless its job is of the most critical level. (A quarter left the
  // Fashion-MNIST tasks' second block behind the camera's 40 ms blocks in
  // the mixed bench: 125 of 143 burst and audit requests released in the
  // 80 ms after a camera request missed.)
  BlockScheduler::Lane lane;
  if (policy_ == SchedulingPolicy::kTandemRt && config_.worker_threads() >= 2 &&
      !tasks.tasks.empty()) {
    double tightest_ms = std::numeric_limits<double>::infinity();
    int top = std::numeric_limits<int>::min();
    for (const auto& [name, task] : tasks.tasks) {
      tightest_ms = std::min(tightest_ms, task.config.deadline_ms());
      top = std::max(top, task.config.criticality());
    }
    lane.workers = 1;
    lane.max_step = absl::Milliseconds(tightest_ms / 2);
    lane.criticality = top;
    // Workers sharing fewer cores: steps less critical than the top level
    // run at nice 10, so a critical step gets most of the core at once; the
    // other workers still take any step (an exclusive lane starved the less
    // critical short tasks in the mixed bench). With a core each, OS
    // priorities do not matter.
    lane.background_nice = SharedCores(config_.worker_threads()) ? 10 : 0;
    TANDEM_LOG(INFO) << "scheduler: a fast lane of one worker (steps up to "
                     << absl::FormatDuration(lane.max_step)
                     << ", or of criticality " << top << ")";
  }
  scheduler_->SetLane(lane);
}

absl::StatusOr<EdgeAgent::TaskSet> EdgeAgent::BuildTasks(
    const tandem::v1::EdgeConfig& config) const {
  TaskSet set;
  std::vector<RtTask> admitted;
  std::vector<ScalerTask> scaled;
  for (const tandem::v1::TaskConfig& task : config.tasks()) {
    const std::string where = absl::StrCat("task '", task.name(), "'");
    if (task.name().empty())
      return absl::InvalidArgumentError("a task has no name");
    if (set.tasks.count(task.name()) > 0)
      return absl::InvalidArgumentError(where + " is declared twice");
    absl::StatusOr<const ProgressiveModel*> found =
        repository_->Get(task.model());
    if (!found.ok()) return Annotate(found.status(), where);
    const ProgressiveModel& model = **found;
    if (!(task.period_ms() > 0)) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": period_ms ", task.period_ms(), " must be > 0"));
    }
    const double deadline_ms =
        task.deadline_ms() != 0 ? task.deadline_ms() : task.period_ms();
    if (!(deadline_ms > 0)) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": deadline_ms ", task.deadline_ms(), " must be > 0"));
    }
    if (!(task.min_accuracy() >= 0 && task.min_accuracy() <= 1)) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": min_accuracy ", task.min_accuracy(), " is outside [0, 1]"));
    }
    const double best = BestReachableAccuracy(model.config());
    if (task.min_accuracy() > best + 1e-6) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "%s: min_accuracy %.4f is above what any plan of '%s' reaches "
          "(best %.4f)",
          where, task.min_accuracy(), model.name(), best));
    }
    TaskState state;
    state.config = task;
    state.config.set_deadline_ms(deadline_ms);
    state.floor = task.min_accuracy();
    state.floor_thresholds = ThresholdsAtFloor(model.config(), state.floor);
    state.forced_exit = ForcedExit(model, state.floor);

    // What each level costs the edge per job, from the live profile.
    const int n = model.num_blocks();
    auto block_time = [&](int b) {
      return keeper_->EstimateLocal(model, b, b + 1);
    };
    const ExitThresholds base =
        ChooseExitThresholds(model.config(), state.floor);
    const absl::Duration full = ExpectedWork(model, base, block_time);
    const absl::Duration at_floor =
        ExpectedWork(model, state.floor_thresholds, block_time);
    std::optional<absl::Duration> forced;
    if (state.forced_exit >= 0) {
      forced = keeper_->EstimateLocal(model, 0, state.forced_exit + 1);
    }
    ScalerTask scaler_task = ScalerLevels(
        task.name(), task.criticality(), full,
        state.floor_thresholds != base ? std::optional(at_floor) : std::nullopt,
        cloud_ != nullptr && config.scaling().offload_level(), forced);
    scaled.push_back(scaler_task);

    // Admission holds the edge to its deadlines on its own (the cloud may
    // fail): the cheapest setting whose cost is certain is the forced exit,
    // else the full pass.
    RtTask rt;
    rt.name = task.name();
    rt.period = absl::Milliseconds(task.period_ms());
    rt.deadline = absl::Milliseconds(deadline_ms);
    rt.criticality = task.criticality();
    rt.full_work = keeper_->EstimateLocal(model, 0, n);
    rt.cheapest_work =
        state.forced_exit >= 0
            ? keeper_->EstimateLocal(model, 0, state.forced_exit + 1)
            : rt.full_work;
    admitted.push_back(rt);
    set.tasks.emplace(task.name(), std::move(state));
  }
  if (admitted.empty()) return set;
  const int workers = std::max(1, config_.worker_threads());
  AdmissionResult verdict = AdmitTasks(admitted, workers);
  set.admission = verdict.explanation;
  if (!verdict.status.ok()) {
    if (config.admission() != "log") {
      return absl::Status(
          verdict.status.code(),
          absl::StrCat(verdict.status.message(), "\n", verdict.explanation));
    }
    TANDEM_LOG(WARNING) << "admission (logged, not enforced): "
                        << verdict.status.message();
  }
  TANDEM_LOG(INFO) << "admission:\n" << verdict.explanation;
  ModelScaler::Options options;
  const tandem::v1::RtScalingConfig& scaling = config.scaling();
  options.enabled =
      !scaling.disabled() && policy_ == SchedulingPolicy::kTandemRt;
  if (scaling.window_ms() > 0)
    options.window = absl::Milliseconds(scaling.window_ms());
  if (scaling.degrade_utilization() > 0)
    options.degrade_utilization = scaling.degrade_utilization();
  if (scaling.restore_utilization() > 0)
    options.restore_utilization = scaling.restore_utilization();
  if (scaling.restore_windows() > 0)
    options.restore_windows = scaling.restore_windows();
  // Workers that share fewer cores than their number time-slice them: the
  // device is busy while any of them is.
  options.workers = SharedCores(workers) ? 1 : workers;
  set.scaler =
      std::make_shared<ModelScaler>(std::move(scaled), options, clock_);
  return set;
}

void EdgeAgent::ApplyScaling(int level, const ProgressiveModel& model,
                             const TaskState& task, bool encoding_forced,
                             Route* route) const {
  route->scaling_level = level;
  if (level >= 1 && !task.floor_thresholds.empty()) {
    route->thresholds = task.floor_thresholds;
    route->plan = nullptr;
  }
  ExitThresholds forced;
  if (task.forced_exit >= 0) forced[task.forced_exit] = 0.0f;
  if (level == 2 && cloud_ != nullptr) {
    // Everything to the cloud; should it fail, the forced exit here.
    route->split = 0;
    route->forward_input =
        !encoding_forced && route->compression == tandem::v1::COMPRESSION_NONE;
    route->offload_bound = absl::InfiniteDuration();
    if (!forced.empty()) {
      route->fallback_thresholds = forced;
      route->local_reserve =
          keeper_->EstimateLocal(model, 0, task.forced_exit + 1);
    }
  } else if (level == 3 && !forced.empty()) {
    // A route that offloads before the forced exit keeps its split: pulling
    // the blocks back here would add edge work, not save it; the cloud then
    // leaves at the forced exit.
    if (route->split > task.forced_exit) route->split = model.num_blocks();
    route->thresholds = forced;
  }
}
tandem::v1::EdgeModelPolicy EdgeAgent::PolicyFor(
    const std::string& model) const {
  absl::MutexLock lock(&mu_);
  const auto it = policies_.find(model);
  if (it != policies_.end()) return it->second;
  tandem::v1::EdgeModelPolicy policy;  // No policy: edge-only.
  policy.set_model_name(model);
  policy.set_split_point(-1);
  return policy;
}

absl::StatusOr<Route> EdgeAgent::RouteFor(const ProgressiveModel& model,
                                          const InferRequest& request,
                                          float min_accuracy,
                                          absl::Duration time_left) const {
  const int n = model.num_blocks();
  const tandem::v1::EdgeModelPolicy policy = PolicyFor(model.name());
  Route route;
  route.split = policy.split_point() < 0 ? n : policy.split_point();
  route.encoding = policy.encoding();
  route.compression = policy.compression();
  std::map<int, float> overrides(policy.exit_thresholds().begin(),
                                 policy.exit_thresholds().end());
  const bool adaptive = policy.adaptive() && !request.has_split_point();
  if (adaptive) {
    PlanKeeper::Sla sla;
    sla.deadline = time_left;
    sla.min_accuracy = min_accuracy;
    // Without an encoding of its own the input may travel as it came (see
    // route.forward_input below): split 0 is priced at its size.
    if (!request.has_encoding() && request.raw_input_contents_size() > 0)
      sla.input_bytes =
          static_cast<int64_t>(request.raw_input_contents(0).size());
    absl::StatusOr<std::shared_ptr<const tandem::v1::Plan>> plan =
        keeper_->PlanFor(model, policy, sla);
    if (!plan.ok() && request.allow_partial()) {
      plan = keeper_->PlanFor(model, policy,
                              PlanKeeper::Sla{});  // Best effort allowed.
    }
    if (!plan.ok()) return plan.status();
    route.plan = *plan;
    route.split = route.plan->split_point();
    route.encoding = route.plan->encoding();
    route.compression = route.plan->compression();
    // The plan's thresholds already meet the accuracy floor it was made for.
    route.thresholds.insert(route.plan->exit_thresholds().begin(),
                            route.plan->exit_thresholds().end());
    route.offload_bound =
        absl::Milliseconds(2 * route.plan->predicted_tail_latency_ms() + 20);
  }
  // CheckInferRequest has bounded the split point to [0, n].
  if (request.has_split_point()) route.split = request.split_point();
  if (route.split < n && cloud_ == nullptr) {
    route.split = n;
    route.fallback_reason = "no cloud is configured";
  }
  if (request.has_encoding()) route.encoding = request.encoding();
  if (!tandem::v1::Encoding_IsValid(route.encoding)) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown encoding ", route.encoding));
  }
  // At k = 0 the input travels as the application sent it when no encoding
  // was asked for, or when it is already as compact as the plan's encoding
  // would make it (8-bit pixels against an FP16 or 8-bit plan): no
  // decode-encode round, and nothing lost.
  route.forward_input =
      route.split == 0 && !request.has_encoding() &&
      route.compression == tandem::v1::COMPRESSION_NONE &&
      (!adaptive || request.inputs(0).encoding() == route.encoding ||
       AsCompactAs(request, route.encoding));
  if (request.disable_early_exits()) {
    route.thresholds.clear();
  } else if (!adaptive) {
    for (const auto& [block, threshold] :
         ChooseExitThresholds(model.config(), min_accuracy, overrides)) {
      route.thresholds[block] = threshold;
    }
  }
  return route;
}

std::optional<double> EdgeAgent::ReadMeter() const {
  absl::MutexLock lock(&meter_mu_);
  if (meter_ == nullptr) return std::nullopt;
  absl::StatusOr<double> mj = meter_->ReadMillijoules();
  if (!mj.ok()) return std::nullopt;
  return *mj;
}

void EdgeAgent::SetEnergy(std::optional<double> meter_start,
                          InferResponse* response) const {
  if (meter_start.has_value()) {
    if (std::optional<double> meter_end = ReadMeter()) {
      response->set_energy_mj(*meter_end - *meter_start);
      response->set_energy_measured(true);
      return;
    }
  }
  const tandem::v1::Timings& t = response->timings();
  response->set_energy_mj(keeper_->EnergyMj(
      absl::Microseconds(t.edge_compute_us() + t.encode_us()),
      absl::Microseconds(t.transfer_us()),
      absl::Microseconds(t.cloud_queue_us() + t.cloud_compute_us())));
  response->set_energy_measured(false);
}

absl::StatusOr<std::unique_ptr<InferJob>> EdgeAgent::Prepare(
    const InferRequest& request, absl::Time received, absl::Time* deadline,
    JobSpec* spec, InferCallback* done) {
  const absl::Time start = clock_->Now();
  std::shared_ptr<const TaskSet> tasks;
  {
    absl::MutexLock lock(&mu_);
    tasks = task_set_;
  }
  const TaskState* task = nullptr;
  if (!request.task().empty()) {
    const auto it = tasks->tasks.find(request.task());
    if (it == tasks->tasks.end()) {
      std::vector<std::string> names;
      for (const auto& [name, state] : tasks->tasks) names.push_back(name);
      return absl::NotFoundError(absl::StrCat(
          "unknown task '", request.task(), "' (the agent runs ",
          names.empty() ? "no tasks" : absl::StrJoin(names, ", "), ")"));
    }
    task = &it->second;
    if (*deadline == absl::InfiniteFuture()) {
      *deadline = received + absl::Milliseconds(task->config.deadline_ms());
    }
  }
  if (start >= *deadline) {
    return absl::DeadlineExceededError(
        "deadline passed while queued on the edge");
  }
  const std::optional<double> meter_start = ReadMeter();
  ASSIGN_OR_RETURN(
      const ProgressiveModel* model,
      repository_->Get(request.model_name(), request.model_version()));
  if (task != nullptr && task->config.model() != model->name()) {
    return absl::InvalidArgumentError(
        absl::StrCat("task '", request.task(), "' runs model '",
                     task->config.model(), "', not '", model->name(), "'"));
  }
  RETURN_IF_ERROR(CheckInferRequest(request, model->config()));
  const float min_accuracy = request.min_accuracy() > 0 || task == nullptr
                                 ? request.min_accuracy()
                                 : task->floor;
  const double best_accuracy = BestReachableAccuracy(model->config());
  if (min_accuracy > best_accuracy + 1e-6) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "min_accuracy %.4f is above what any plan of '%s' reaches (best "
        "%.4f%s)",
        min_accuracy, model->name(), best_accuracy,
        model->config().trained() ? "" : ": the model is untrained"));
  }
  ASSIGN_OR_RETURN(
      at::Tensor input,
      DecodeTensor(request.inputs(0), request.raw_input_contents(0), limits_));
  RETURN_IF_ERROR(model->ValidateBlockInput(0, input));
  if (input.size(0) != 1) {
    return absl::InvalidArgumentError(
        "one sample per request (the agent batches requests)");
  }
  int level = 0;
  ModelScaler* scaler = task != nullptr ? tasks->scaler.get() : nullptr;
  if (scaler != nullptr) {
    const BlockScheduler::Counters counters = scheduler_->counters();
    scaler->Tick(SharedCores(config_.worker_threads()) ? counters.any_busy
                                                       : counters.busy);
    scaler->OnRelease(request.task());
    level = scaler->Level(request.task());
  }
  ASSIGN_OR_RETURN(Route route,
                   RouteFor(*model, request, min_accuracy, *deadline - start));
  // Forced settings (experiments) are left as asked.
  if (level > 0 && !request.has_split_point() &&
      !request.disable_early_exits()) {
    ApplyScaling(level, *model, *task, request.has_encoding(), &route);
  }

  spec->task = task != nullptr ? request.task() : model->name();
  spec->criticality = request.has_criticality() ? request.criticality()
                      : task != nullptr         ? task->config.criticality()
                                                : 0;
  spec->deadline = *deadline;
  if (scaler != nullptr) {
    // The scaler learns of every miss of its tasks.
    std::shared_ptr<ModelScaler> held = tasks->scaler;
    *done = [held, name = request.task(), due = *deadline, clock = clock_,
             next = std::move(*done)](absl::StatusOr<InferResponse> result) {
      held->OnOutcome(name, !result.ok() || clock->Now() > due);
      next(std::move(result));
    };
  }
  *done = [this, model = model->name(),
           task = task != nullptr ? request.task() : std::string(), received,
           due = *deadline,
           next = std::move(*done)](absl::StatusOr<InferResponse> result) {
    const absl::Time now = clock_->Now();
    metrics_->OnOutcome(model, task, result, now - received, now > due);
    next(std::move(result));
  };
  InferJob::Params params;
  params.model = model;
  params.request = &request;
  params.input = std::move(input);
  params.route = std::move(route);
  params.task = request.task();
  params.min_accuracy = min_accuracy;
  params.received = received;
  params.deadline = *deadline;
  params.meter_start = meter_start;
  return std::make_unique<InferJob>(&services_, std::move(params),
                                    std::move(*done));
}

void EdgeAgent::InferAsync(const InferRequest& request, absl::Time received,
                           absl::Time deadline, InferCallback done) {
  JobSpec spec;
  absl::StatusOr<std::unique_ptr<InferJob>> job =
      Prepare(request, received, &deadline, &spec, &done);
  if (!job.ok()) {
    const auto [model, task] = MetricLabels(request);
    metrics_->OnOutcome(model, task, job.status(), clock_->Now() - received,
                        /*late=*/false);
    done(job.status());
    return;
  }
  // A refused job is cut with the refusal, which answers the request.
  (void)scheduler_->Submit(spec, *std::move(job));
}

absl::StatusOr<InferResponse> EdgeAgent::Infer(const InferRequest& request,
                                               absl::Time received,
                                               absl::Time deadline) {
  absl::Notification answered;
  absl::StatusOr<InferResponse> result;
  InferAsync(request, received, deadline, [&](absl::StatusOr<InferResponse> r) {
    result = std::move(r);
    answered.Notify();
  });
  answered.WaitForNotification();
  return result;
}

std::pair<std::string, std::string> EdgeAgent::MetricLabels(
    const InferRequest& request) const {
  std::pair<std::string, std::string> labels;
  absl::StatusOr<const ProgressiveModel*> model =
      repository_->Get(request.model_name(), request.model_version());
  if (model.ok()) labels.first = (*model)->name();
  absl::MutexLock lock(&mu_);
  if (task_set_ != nullptr && task_set_->tasks.count(request.task()) > 0) {
    labels.second = request.task();
  }
  return labels;
}

void EdgeAgent::AddPartMetrics() {
  using Samples = std::vector<std::pair<LabelValues, double>>;
  PlanKeeper* keeper = keeper_.get();
  registry_.AddCallback(
      "tandem_edge_plan_switches",
      "Times a model's adaptive plan was replaced (the first one included).",
      MetricFamily::Type::kCounter, {}, [keeper] {
        return Samples{{{}, static_cast<double>(keeper->switches())}};
      });
  registry_.AddCallback(
      "tandem_edge_link_uplink_mbit",
      "The link estimate the partitioner plans with: uplink Mbit/s "
      "(measured=\"false\": assumed or configured).",
      MetricFamily::Type::kGauge, {"measured"}, [keeper] {
        const tandem::v1::NetworkState state = keeper->Network();
        return Samples{
            {{state.measured() ? "true" : "false"}, state.uplink_mbit()}};
      });
  registry_.AddCallback(
      "tandem_edge_link_rtt_ms",
      "The link estimate the partitioner plans with: round trip in ms.",
      MetricFamily::Type::kGauge, {"measured"}, [keeper] {
        const tandem::v1::NetworkState state = keeper->Network();
        return Samples{{{state.measured() ? "true" : "false"}, state.rtt_ms()}};
      });
  // The block scheduler's counters, read once per family.
  BlockScheduler* scheduler = scheduler_.get();
  auto add = [&](const char* name, const char* help, MetricFamily::Type type,
                 double (*read)(const BlockScheduler::Counters&)) {
    registry_.AddCallback(name, help, type, {}, [scheduler, read] {
      return Samples{{{}, read(scheduler->counters())}};
    });
  };
  add("tandem_edge_jobs", "Requests queued, running or waiting on the cloud.",
      MetricFamily::Type::kGauge, [](const BlockScheduler::Counters& c) {
        return static_cast<double>(c.submitted - c.done - c.cut);
      });
  add("tandem_edge_jobs_cut",
      "Requests the scheduler ended early (doomed or late).",
      MetricFamily::Type::kCounter, [](const BlockScheduler::Counters& c) {
        return static_cast<double>(c.cut);
      });
  add("tandem_edge_preemptions",
      "Block steps of another job run between two steps of one job.",
      MetricFamily::Type::kCounter, [](const BlockScheduler::Counters& c) {
        return static_cast<double>(c.preemptions);
      });
  add("tandem_edge_busy_seconds",
      "Time spent running blocks, summed over workers.",
      MetricFamily::Type::kCounter, [](const BlockScheduler::Counters& c) {
        return absl::ToDoubleSeconds(c.busy);
      });
}

std::string EdgeAgent::ScalingState() const {
  absl::MutexLock lock(&mu_);
  return task_set_ != nullptr && task_set_->scaler != nullptr
             ? task_set_->scaler->Describe()
             : std::string();
}

std::string EdgeAgent::AdmissionExplanation() const {
  absl::MutexLock lock(&mu_);
  return task_set_ != nullptr ? task_set_->admission : std::string();
}
tandem::v1::ListModelsResponse EdgeAgent::ListModels() const {
  tandem::v1::ListModelsResponse out;
  for (const ProgressiveModel* model : repository_->models()) {
    tandem::v1::ModelSummary* summary = out.add_models();
    summary->set_name(model->name());
    summary->set_version(model->version());
    summary->set_num_blocks(model->num_blocks());
    for (int block : model->exit_blocks()) summary->add_exit_blocks(block);
    summary->add_input_shape(-1);  // The batch dimension.
    for (int64_t d : model->config().input().dims())
      summary->add_input_shape(d);
    summary->set_input_datatype(model->config().input().datatype());
    summary->set_trained(model->config().trained());
  }
  return out;
}

absl::StatusOr<tandem::v1::Plan> EdgeAgent::GetPlan(
    const tandem::v1::GetPlanRequest& request) const {
  ASSIGN_OR_RETURN(const ProgressiveModel* model,
                   repository_->Get(request.model_name()));
  const tandem::v1::EdgeModelPolicy policy = PolicyFor(model->name());
  const bool what_if = request.has_network() || request.has_objective() ||
                       request.has_deadline_ms() || request.has_min_accuracy();
  if (policy.adaptive() || what_if || request.explain()) {
    ASSIGN_OR_RETURN(tandem::v1::Plan plan,
                     keeper_->Explain(*model, policy, request));
    AppendRealTime(model->name(), &plan);
    return plan;
  }
  InferRequest plain;  // A request with no constraints of its own.
  plain.add_inputs();
  ASSIGN_OR_RETURN(Route route,
                   RouteFor(*model, plain, 0, absl::InfiniteDuration()));
  tandem::v1::Plan plan;
  plan.set_model_name(model->name());
  plan.set_model_version(model->version());
  plan.set_split_point(route.split);
  for (const auto& [block, threshold] : route.thresholds) {
    (*plan.mutable_exit_thresholds())[block] = threshold;
  }
  plan.set_encoding(route.encoding);
  plan.set_compression(route.compression);
  plan.set_reason(route.fallback_reason.empty()
                      ? "split point from the agent's configuration"
                      : absl::StrCat("edge-only: ", route.fallback_reason));
  AppendRealTime(model->name(), &plan);
  return plan;
}

void EdgeAgent::AppendRealTime(const std::string& model,
                               tandem::v1::Plan* plan) const {
  std::shared_ptr<const TaskSet> tasks;
  {
    absl::MutexLock lock(&mu_);
    tasks = task_set_;
  }
  std::vector<std::string> names;
  for (const auto& [name, task] : tasks->tasks) {
    if (task.config.model() == model) names.push_back(name);
  }
  if (names.empty()) return;
  absl::StrAppend(plan->mutable_reason(), "\nreal time (",
                  SchedulingPolicyName(policy_), "): tasks ",
                  absl::StrJoin(names, ", "),
                  " of this model; scaling: ", tasks->scaler->Describe(),
                  "\nadmission:\n", tasks->admission);
}

absl::StatusOr<tandem::v1::SavedProfile> EdgeAgent::GetProfile(
    const std::string& model) const {
  return keeper_->Saved(model);
}

}  // namespace tandem
