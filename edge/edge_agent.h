// The edge agent's inference logic, independent of how requests arrive: runs
// blocks [0, k) of a progressive model on the device, answers from a
// confident early exit, otherwise offloads the block-k input to the cloud,
// and when the cloud errs, times out or is unreachable finishes the remaining
// blocks itself (or answers with the best exit so far when the request
// allows it). Every request gets an answer or an explicit error.
//
// Thread-safe: Infer runs concurrently on the agent's worker threads; Reload
// swaps the per-model policies atomically.
//
//   ASSIGN_OR_RETURN(auto agent, EdgeAgent::Create(config));
//   ASSIGN_OR_RETURN(InferResponse r, agent->Infer(request, now, deadline));
#ifndef TANDEM_EDGE_EDGE_AGENT_H_
#define TANDEM_EDGE_EDGE_AGENT_H_

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/stats.h"
#include "edge/cloud_link.h"
#include "edge/energy_meter.h"
#include "edge/plan_keeper.h"
#include "models/model_repository.h"
#include "models/tensor_spec.h"
#include "tandem/v1/daemon_config.pb.h"
#include "tandem/v1/edge_service.pb.h"

namespace tandem {

// Fills unset fields of `config` with the defaults.
tandem::v1::EdgeConfig WithEdgeDefaults(tandem::v1::EdgeConfig config);

class EdgeAgent {
 public:
  // Loads and warms the models, checks the per-model policies against them
  // and opens the cloud channel (when config.cloud() is set; without it the
  // agent is edge-only).
  static absl::StatusOr<std::unique_ptr<EdgeAgent>> Create(
      tandem::v1::EdgeConfig config);

  // `received`: when the request arrived (for queue time); `deadline`: when
  // its answer is due (absl::InfiniteFuture() for none).
  absl::StatusOr<tandem::v1::InferResponse> Infer(
      const tandem::v1::InferRequest& request, absl::Time received,
      absl::Time deadline) ABSL_LOCKS_EXCLUDED(mu_);

  tandem::v1::ListModelsResponse ListModels() const;
  // The plan requests of the model get now (adaptive: from the live
  // estimates), or a what-if plan with every alternative.
  absl::StatusOr<tandem::v1::Plan> GetPlan(
      const tandem::v1::GetPlanRequest& request) const ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<tandem::v1::SavedProfile> GetProfile(
      const std::string& model) const;
  PlanKeeper* plan_keeper() { return keeper_.get(); }

  // Replaces the per-model policies with those of `config` if they are valid
  // for the loaded models; otherwise keeps the old ones and says why. Other
  // fields need a restart.
  absl::Status Reload(const tandem::v1::EdgeConfig& config)
      ABSL_LOCKS_EXCLUDED(mu_);

  const tandem::v1::EdgeConfig& config() const { return config_; }

 private:
  struct Route;  // What one request will do: split, exits, encoding.

  EdgeAgent() = default;
  absl::Status ValidatePolicies(const tandem::v1::EdgeConfig& config) const;
  // Fills energy_mj: the meter's reading since `meter_start` where the device
  // has a meter (device energy over the request's interval: overlapping
  // requests share it), else the energy model's figure from the timings.
  void SetEnergy(std::optional<double> meter_start,
                 tandem::v1::InferResponse* response) const
      ABSL_LOCKS_EXCLUDED(meter_mu_);
  std::optional<double> ReadMeter() const ABSL_LOCKS_EXCLUDED(meter_mu_);
  tandem::v1::EdgeModelPolicy PolicyFor(const std::string& model) const
      ABSL_LOCKS_EXCLUDED(mu_);
  // `time_left`: until the request's deadline (infinite for none).
  absl::StatusOr<Route> RouteFor(const ProgressiveModel& model,
                                 const tandem::v1::InferRequest& request,
                                 absl::Duration time_left) const;

  tandem::v1::EdgeConfig config_;
  DecodeLimits limits_;
  std::unique_ptr<ModelRepository> repository_;
  std::unique_ptr<CloudLink> cloud_;    // Null: edge-only.
  std::unique_ptr<PlanKeeper> keeper_;  // Profiles, estimates, adaptive plans.
  mutable absl::Mutex meter_mu_;
  std::unique_ptr<EnergyMeter> meter_
      ABSL_GUARDED_BY(meter_mu_);  // Null: none here.

  mutable absl::Mutex mu_;
  std::map<std::string, tandem::v1::EdgeModelPolicy> policies_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace tandem

#endif  // TANDEM_EDGE_EDGE_AGENT_H_
