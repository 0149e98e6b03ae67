#include "edge/edge_agent.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/clock.h"
#include "common/daemon.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "models/block_runner.h"
#include "models/request_checks.h"
#include "models/tensor_codec.h"
#include "partitioner/exit_thresholds.h"
#include "partitioner/planner.h"

namespace tandem {
namespace {

using tandem::v1::ContinueRequest;
using tandem::v1::ContinueResponse;
using tandem::v1::InferRequest;
using tandem::v1::InferResponse;

// Time kept back from the cloud call for the answer to travel home.
constexpr absl::Duration kReplyMargin = absl::Milliseconds(2);

int64_t Micros(absl::Duration d) { return absl::ToInt64Microseconds(d); }

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

}  // namespace

struct EdgeAgent::Route {
  int split = 0;
  ExitThresholds thresholds;
  tandem::v1::Encoding encoding = tandem::v1::ENCODING_RAW;
  tandem::v1::Compression compression = tandem::v1::COMPRESSION_NONE;
  // The input travels exactly as the application sent it (k = 0, no forced
  // encoding): no decode-encode round, and 8-bit pixels stay 8-bit.
  bool forward_input = false;
  std::string fallback_reason;  // Set when the route had to change.
  // Adaptive routes: the plan they follow, and how long the offload may take
  // before the link is deemed to have fallen (then the edge finishes).
  std::shared_ptr<const tandem::v1::Plan> plan;
  absl::Duration offload_bound = absl::InfiniteDuration();
};

tandem::v1::EdgeConfig WithEdgeDefaults(tandem::v1::EdgeConfig config) {
  if (config.listen_size() == 0)
    config.add_listen("unix:/run/tandem/edge.sock");
  FillDaemonDefaults(&config);
  if (config.cloud_timeout_ms() <= 0) config.set_cloud_timeout_ms(2000);
  return config;
}

absl::StatusOr<std::unique_ptr<EdgeAgent>> EdgeAgent::Create(
    tandem::v1::EdgeConfig config) {
  config = WithEdgeDefaults(std::move(config));
  if (config.model_repository().empty()) {
    return absl::InvalidArgumentError("model_repository is not set");
  }
  std::unique_ptr<EdgeAgent> agent(new EdgeAgent());
  agent->config_ = config;
  agent->limits_.max_tensor_bytes = config.limits().max_tensor_bytes();
  at::set_num_threads(config.intra_op_threads());
  ModelLoadOptions load_options;
  load_options.warmup_runs = config.warmup_runs();
  if (config.emulated_slowdown() > 1) {
    load_options.emulated_slowdown = config.emulated_slowdown();
    TANDEM_LOG(WARNING) << "emulating a device " << config.emulated_slowdown()
                        << "x slower (benchmarks only)";
  }
  ASSIGN_OR_RETURN(
      agent->repository_,
      ModelRepository::Load(config.model_repository(), load_options));
  RETURN_IF_ERROR(agent->Reload(config));
  if (!config.cloud().empty()) {
    CloudLink::Options link_options;
    link_options.max_message_bytes = config.limits().max_message_bytes();
    agent->cloud_ = CloudLink::Create(config.cloud(), link_options);
  }
  ASSIGN_OR_RETURN(agent->keeper_,
                   PlanKeeper::Create(config, agent->repository_.get(),
                                      agent->cloud_.get(), RealClock()));
  {
    absl::MutexLock lock(&agent->meter_mu_);
    agent->meter_ = DetectEnergyMeter("/sys", RealClock());
    TANDEM_LOG(INFO) << "energy: "
                     << (agent->meter_ != nullptr
                             ? "measured with " + agent->meter_->name()
                             : std::string("modelled (no power meter found)"));
  }
  return agent;
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
  }
  return absl::OkStatus();
}

absl::Status EdgeAgent::Reload(const tandem::v1::EdgeConfig& config) {
  RETURN_IF_ERROR(Annotate(ValidatePolicies(config),
                           "config rejected, keeping the old one"));
  std::map<std::string, tandem::v1::EdgeModelPolicy> policies;
  for (const tandem::v1::EdgeModelPolicy& policy : config.models()) {
    policies[policy.model_name()] = policy;
  }
  absl::MutexLock lock(&mu_);
  policies_ = std::move(policies);
  return absl::OkStatus();
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

absl::StatusOr<EdgeAgent::Route> EdgeAgent::RouteFor(
    const ProgressiveModel& model, const InferRequest& request,
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
    sla.min_accuracy = request.min_accuracy();
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
    for (const auto& [block, threshold] : ChooseExitThresholds(
             model.config(), request.min_accuracy(), overrides)) {
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

absl::StatusOr<InferResponse> EdgeAgent::Infer(const InferRequest& request,
                                               absl::Time received,
                                               absl::Time deadline) {
  Clock* clock = RealClock();
  const absl::Time start = clock->Now();
  if (start >= deadline) {
    return absl::DeadlineExceededError(
        "deadline passed while queued on the edge");
  }
  const std::optional<double> meter_start = ReadMeter();
  ASSIGN_OR_RETURN(
      const ProgressiveModel* model,
      repository_->Get(request.model_name(), request.model_version()));
  RETURN_IF_ERROR(CheckInferRequest(request, model->config()));
  const double best_accuracy = BestReachableAccuracy(model->config());
  if (request.min_accuracy() > best_accuracy + 1e-6) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "min_accuracy %.4f is above what any plan of '%s' reaches (best "
        "%.4f%s)",
        request.min_accuracy(), model->name(), best_accuracy,
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
  ASSIGN_OR_RETURN(Route route, RouteFor(*model, request, deadline - start));
  const int n = model->num_blocks();

  InferResponse response;
  response.set_model_name(model->name());
  response.set_model_version(model->version());
  response.set_id(request.id());
  response.set_split_point(route.split);
  response.set_fallback_reason(route.fallback_reason);
  tandem::v1::Timings* timings = response.mutable_timings();
  timings->set_edge_queue_us(Micros(start - received));
  const int top_k = EffectiveTopK(request.top_k());
  auto answer = [&](const ExitEvaluation& exit, int exit_block,
                    tandem::v1::Site site) -> absl::StatusOr<InferResponse> {
    TopK(exit, 0, top_k, model->config(), response.mutable_top_k());
    response.set_exit_block(exit_block);
    response.set_confidence(exit.confidence[0]);
    response.set_answered_by(site);
    timings->set_total_us(Micros(clock->Now() - received));
    SetEnergy(meter_start, &response);
    return response;
  };

  ASSIGN_OR_RETURN(BlockRun head,
                   RunBlocksWithExits(*model, input, 0, route.split,
                                      route.thresholds, deadline));
  keeper_->OnLocalBlocks(*model, 0, head.block_times);
  timings->set_edge_compute_us(Micros(head.compute_time));
  if (head.exited) {
    ASSIGN_OR_RETURN(const ExitEvaluation* exit, AnsweringExit(head));
    return answer(*exit, head.exit_block, tandem::v1::SITE_EDGE);
  }

  // Offload blocks [split, n).
  ContinueRequest offload;
  offload.set_model_name(model->name());
  offload.set_model_version(model->version());
  offload.set_id(request.id());
  offload.set_start_block(route.split);
  offload.set_top_k(top_k);
  for (const auto& [block, threshold] : route.thresholds) {
    if (block >= route.split)
      (*offload.mutable_exit_thresholds())[block] = threshold;
  }
  const absl::Time encode_start = clock->Now();
  if (route.forward_input) {
    *offload.add_inputs() = request.inputs(0);
    *offload.add_raw_input_contents() = request.raw_input_contents(0);
  } else {
    EncodeOptions encode;
    encode.encoding = route.encoding;
    encode.compression = route.compression;
    encode.name = absl::StrCat("block_", route.split, "_input");
    const absl::Status encoded =
        EncodeTensor(head.output, encode, offload.add_inputs(),
                     offload.add_raw_input_contents());
    if (!encoded.ok()) {
      // The tensor is the model's own activation: a fault of the model (an
      // overflow), not of the request.
      return absl::InternalError(absl::StrCat(
          "model '", model->name(), "': the output of block ", route.split - 1,
          " cannot be offloaded: ", encoded.message()));
    }
  }
  timings->set_encode_us(Micros(clock->Now() - encode_start));
  response.set_bytes_sent(
      static_cast<int64_t>(offload.raw_input_contents(0).size()));

  // Keep back enough of the deadline to finish locally should the cloud fail.
  const absl::Time now = clock->Now();
  absl::Time cloud_deadline =
      deadline == absl::InfiniteFuture()
          ? now + absl::Milliseconds(config_.cloud_timeout_ms())
          : deadline - keeper_->EstimateLocal(*model, route.split, n) -
                kReplyMargin;
  // A transfer far past its prediction means the link fell: do not let it
  // hold the request hostage.
  cloud_deadline = std::min(cloud_deadline, now + route.offload_bound);
  absl::Status cloud_status;
  if (cloud_deadline <= now) {
    cloud_status = absl::DeadlineExceededError(
        "the deadline leaves no time for the cloud");
  } else {
    offload.set_deadline_remaining_us(Micros(cloud_deadline - now));
    absl::StatusOr<ContinueResponse> cloud =
        cloud_->Continue(offload, cloud_deadline);
    const absl::Duration round_trip = clock->Now() - now;
    if (cloud.ok()) {
      keeper_->OnTransfer(response.bytes_sent(),
                          round_trip - absl::Microseconds(cloud->queue_us() +
                                                          cloud->compute_us()),
                          /*completed=*/true);
      *response.mutable_top_k() = cloud->top_k();
      response.set_exit_block(cloud->exit_block());
      response.set_confidence(cloud->confidence());
      response.set_answered_by(tandem::v1::SITE_CLOUD);
      timings->set_cloud_queue_us(cloud->queue_us());
      timings->set_cloud_compute_us(cloud->compute_us());
      timings->set_transfer_us(std::max<int64_t>(
          0, Micros(round_trip) - cloud->queue_us() - cloud->compute_us()));
      timings->set_total_us(Micros(clock->Now() - received));
      SetEnergy(meter_start, &response);
      return response;
    }
    cloud_status = cloud.status();
    timings->set_transfer_us(Micros(round_trip));
    if (cloud_status.code() == absl::StatusCode::kDeadlineExceeded) {
      keeper_->OnTransfer(response.bytes_sent(), round_trip,
                          /*completed=*/false);
    }
  }

  // The cloud failed: finish here, or answer with what we have.
  std::string reason =
      absl::StrCat("cloud ", absl::StatusCodeToString(cloud_status.code()),
                   ": ", cloud_status.message());
  const bool no_time_left =
      deadline != absl::InfiniteFuture() &&
      clock->Now() + keeper_->EstimateLocal(*model, route.split, n) > deadline;
  if (request.allow_partial() && no_time_left) {
    if (absl::StatusOr<const ExitEvaluation*> best = BestExitSoFar(head);
        best.ok()) {
      response.set_fallback_reason(reason +
                                   "; answered by the best exit so far");
      return answer(**best, head.best_block, tandem::v1::SITE_EDGE);
    }
  }
  response.set_fallback_reason(reason + "; finished on the edge");
  ASSIGN_OR_RETURN(BlockRun tail,
                   RunBlocksWithExits(*model, head.output, route.split, n,
                                      route.thresholds, deadline));
  keeper_->OnLocalBlocks(*model, route.split, tail.block_times);
  timings->set_edge_compute_us(timings->edge_compute_us() +
                               Micros(tail.compute_time));
  ASSIGN_OR_RETURN(const ExitEvaluation* exit, AnsweringExit(tail));
  return answer(*exit, tail.exit_block, tandem::v1::SITE_EDGE);
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
    return keeper_->Explain(*model, policy, request);
  }
  InferRequest plain;  // A request with no constraints of its own.
  plain.add_inputs();
  ASSIGN_OR_RETURN(Route route,
                   RouteFor(*model, plain, absl::InfiniteDuration()));
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
  return plan;
}

absl::StatusOr<tandem::v1::SavedProfile> EdgeAgent::GetProfile(
    const std::string& model) const {
  return keeper_->Saved(model);
}

}  // namespace tandem
