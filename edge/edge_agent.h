// The edge agent's inference logic, independent of how requests arrive: runs
// blocks [0, k) of a progressive model on the device, answers from a
// confident early exit, otherwise offloads the block-k input to the cloud,
// and when the cloud errs, times out or is unreachable finishes the remaining
// blocks itself (or answers with the best exit so far when the request
// allows it). Every request gets an answer or an explicit error.
//
// Three parts: the agent prepares a request (checks, decoding, its task and
// route, the scaling level) into an InferJob; the BlockScheduler picks which
// job's next block runs on its workers (EDF within a criticality level,
// strict priority across them, under tandem_rt; packing same-block jobs);
// the job runs blocks and offloads asynchronously through CloudLink. The
// ModelScaler degrades tasks under overload and restores them after.
//
// Thread-safe: InferAsync may be called from any thread; Reload swaps the
// per-model policies and the task set atomically.
//
//   ASSIGN_OR_RETURN(auto agent, EdgeAgent::Create(config));
//   ASSIGN_OR_RETURN(InferResponse r, agent->Infer(request, now, deadline));
#ifndef TANDEM_EDGE_EDGE_AGENT_H_
#define TANDEM_EDGE_EDGE_AGENT_H_

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "common/stats.h"
#include "edge/admission.h"
#include "edge/block_scheduler.h"
#include "edge/cloud_link.h"
#include "edge/edge_metrics.h"
#include "edge/energy_meter.h"
#include "edge/infer_job.h"
#include "edge/model_scaler.h"
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
  using InferCallback =
      std::function<void(absl::StatusOr<tandem::v1::InferResponse>)>;

  // Loads and warms the models, checks the per-model policies and the task
  // set against them (admission included), opens the cloud channel (when
  // config.cloud() is set; without it the agent is edge-only) and starts the
  // scheduler's workers. `clock`: null for the real one; `cloud`: null for
  // the gRPC link to config.cloud() (tests inject links that delay or drop).
  static absl::StatusOr<std::unique_ptr<EdgeAgent>> Create(
      tandem::v1::EdgeConfig config, Clock* clock = nullptr,
      std::unique_ptr<CloudLink> cloud = nullptr);
  // Shutdown().
  ~EdgeAgent();

  // Prepares the request and hands it to the scheduler; `done` runs exactly
  // once, with the answer or the error (on this thread when the request is
  // refused before it is queued). `request` must stay valid until then.
  // `received`: when the request arrived (for queue time); `deadline`: when
  // its answer is due (absl::InfiniteFuture() for none: the task's deadline
  // applies, if any).
  void InferAsync(const tandem::v1::InferRequest& request, absl::Time received,
                  absl::Time deadline, InferCallback done)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The same, waiting for the answer.
  absl::StatusOr<tandem::v1::InferResponse> Infer(
      const tandem::v1::InferRequest& request, absl::Time received,
      absl::Time deadline) ABSL_LOCKS_EXCLUDED(mu_);

  // Stops the scheduler (queued and waiting jobs get UNAVAILABLE) and waits
  // for offloads in flight. Idempotent.
  void Shutdown();

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
  SchedulingPolicy scheduling_policy() const { return policy_; }
  BlockScheduler::Counters scheduler_counters() const {
    return scheduler_->counters();
  }
  // What the agent counts, for /metrics (served by EdgeServer).
  const MetricsRegistry& metrics() const { return registry_; }
  // The current scaling levels of the tasks, in words.
  std::string ScalingState() const ABSL_LOCKS_EXCLUDED(mu_);
  // The last admission verdict, in words (empty without tasks).
  std::string AdmissionExplanation() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // A task as the agent runs it: its config and what it may be scaled to.
  struct TaskState {
    tandem::v1::TaskConfig config;
    float floor = 0;  // Accuracy floor (0: none).
    // Level 1: thresholds at the floor; level 3: the forced exit's block
    // (-1: none meets the floor).
    ExitThresholds floor_thresholds;
    int forced_exit = -1;
  };
  // The task set, its scaler and the admission verdict, swapped together.
  struct TaskSet {
    std::map<std::string, TaskState> tasks;
    std::shared_ptr<ModelScaler> scaler;
    std::string admission;
  };

  explicit EdgeAgent(Clock* clock) : clock_(clock) {}
  absl::Status ValidatePolicies(const tandem::v1::EdgeConfig& config) const;
  // Checks the tasks of `config` and admits them; the set to install.
  absl::StatusOr<TaskSet> BuildTasks(
      const tandem::v1::EdgeConfig& config) const;
  // Prepares one request into a job, or says why not.
  absl::StatusOr<std::unique_ptr<InferJob>> Prepare(
      const tandem::v1::InferRequest& request, absl::Time received,
      absl::Time* deadline, JobSpec* spec, InferCallback* done)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The model and task labels of a request refused before it was prepared:
  // each empty unless it names a loaded model / a configured task.
  std::pair<std::string, std::string> MetricLabels(
      const tandem::v1::InferRequest& request) const ABSL_LOCKS_EXCLUDED(mu_);
  // Registers the metrics the agent's parts report when scraped.
  void AddPartMetrics();
  // The scheduler's fast lane for `tasks` (tandem_rt with >= 2 workers).
  void UpdateLane(const TaskSet& tasks) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Adds the real-time state of `model`'s tasks to a plan's reason.
  void AppendRealTime(const std::string& model, tandem::v1::Plan* plan) const
      ABSL_LOCKS_EXCLUDED(mu_);
  // Degrades `route` to the task's scaling level.
  void ApplyScaling(int level, const ProgressiveModel& model,
                    const TaskState& task, bool encoding_forced,
                    Route* route) const;
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
                                 float min_accuracy,
                                 absl::Duration time_left) const;

  tandem::v1::EdgeConfig config_;
  MetricsRegistry registry_;
  std::unique_ptr<EdgeMetrics> metrics_;
  DecodeLimits limits_;
  std::unique_ptr<ModelRepository> repository_;
  std::unique_ptr<CloudLink> cloud_;    // Null: edge-only.
  std::unique_ptr<PlanKeeper> keeper_;  // Profiles, estimates, adaptive plans.
  mutable absl::Mutex meter_mu_;
  std::unique_ptr<EnergyMeter> meter_
      ABSL_GUARDED_BY(meter_mu_);  // Null: none here.

  Clock* const clock_;
  SchedulingPolicy policy_ = SchedulingPolicy::kTandemRt;
  StepTimes step_times_;
  JobServices services_;
  std::unique_ptr<BlockScheduler> scheduler_;

  absl::Mutex flight_mu_;
  int in_flight_ ABSL_GUARDED_BY(flight_mu_) = 0;  // Offloads out.

  mutable absl::Mutex mu_;
  std::map<std::string, tandem::v1::EdgeModelPolicy> policies_
      ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const TaskSet> task_set_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tandem

#endif  // TANDEM_EDGE_EDGE_AGENT_H_
