// Keeps what the partitioner needs, live, and the plans made from it: per
// model the edge profile (measured at start, refreshed by every local run)
// and the cloud's profile and queueing (polled); for the link, the network
// estimate (every transfer, plus active probes when the link has been quiet).
// The default plan of a model is re-made when an estimate leaves the
// hysteresis band around what the plan assumed, when the link or the cloud's
// profile changed, or when it is older than the re-plan interval. Re-plans
// run on the keeper's planner thread, not on the request path: the
// measurement (or request) that finds the plan stale wakes it, and requests
// meanwhile take the current plan (only a model's first request, or one
// after its policy changed, plans inline). A re-plan replaces the shared plan
// only for a clear predicted gain (kSwitchGain), and never for a plan whose
// answered requests, since the link last changed, were not that much faster
// than the current plan's: where predictions of near-equal plans swing with
// noisy estimates, the requests' own latencies settle the choice. Likewise a
// fall of the link moves a measured plan only once its own requests feel it
// (its answers since the change slower by the gain and beyond their own
// noise): two late transfers on a busy edge look like a fall to the
// estimator. Predictions carry a bias of their own (a cloud that computes
// faster than its profile, costs the planner does not model), which no
// fixed gain absorbs: the switching decision weighs each plan's prediction
// by how its answers compared with its predictions (the mean ratio of its
// last answers, kept across link regimes, where it stands out of their
// scatter), so a plan measured 15% faster than predicted before the link
// fell is judged by that when it recovers. What a plan's requests took is
// kept per state of the link its transfers see (plans cached per network
// state): when the link comes back to a rate it had, the plan that ran best
// there is taken again on that figure (BestCached).
// Requests with their own deadline
// or accuracy floor that the shared plan does not meet get a plan of their
// own (a decision costs tens of microseconds). Plans are immutable and
// shared: a request keeps the plan it started with while a newer one
// replaces it, so switching plans drops nothing.
//
// Thread-safe. Owns a prober thread (pings every ping interval, probes the
// bandwidth while the link is quiet, and polls the cloud's profiles) and a
// planner thread, started by Create and joined by the destructor.
#ifndef TANDEM_EDGE_PLAN_KEEPER_H_
#define TANDEM_EDGE_PLAN_KEEPER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/stats.h"
#include "edge/cloud_link.h"
#include "models/model_repository.h"
#include "partitioner/network_estimator.h"
#include "partitioner/planner.h"
#include "tandem/v1/daemon_config.pb.h"
#include "tandem/v1/edge_service.pb.h"

namespace tandem {

class PlanKeeper {
 public:
  // What a request asks for, beyond the model's defaults.
  struct Sla {
    absl::Duration deadline = absl::InfiniteDuration();  // Time left.
    float min_accuracy = 0;                              // 0: the default.
    // The model input's size as this request sent it, where a split-0
    // offload would forward it as it is (no encoding of its own asked for);
    // 0: not known. Split-0 plans are priced at it (PlannerInput::
    // input_wire_bytes).
    int64_t input_bytes = 0;
  };

  // Profiles every model of `repository` (both must outlive the keeper).
  // `cloud` may be null (edge-only).
  static absl::StatusOr<std::unique_ptr<PlanKeeper>> Create(
      const tandem::v1::EdgeConfig& config, const ModelRepository* repository,
      CloudLink* cloud, Clock* clock);
  ~PlanKeeper();

  // The plan for one request. FAILED_PRECONDITION (naming the constraint)
  // when nothing meets the request's SLA.
  absl::StatusOr<std::shared_ptr<const tandem::v1::Plan>> PlanFor(
      const ProgressiveModel& model, const tandem::v1::EdgeModelPolicy& policy,
      const Sla& sla) ABSL_LOCKS_EXCLUDED(mu_);

  // GetPlan: the plan under the live estimates, or under the conditions the
  // request names, with every alternative.
  absl::StatusOr<tandem::v1::Plan> Explain(
      const ProgressiveModel& model, const tandem::v1::EdgeModelPolicy& policy,
      const tandem::v1::GetPlanRequest& request) ABSL_LOCKS_EXCLUDED(mu_);

  absl::StatusOr<tandem::v1::SavedProfile> Saved(const std::string& model) const
      ABSL_LOCKS_EXCLUDED(mu_);

  // Measurements from requests: block `block` took `took` here, its exit
  // head included when `with_exit` (a plan with exits off skips the heads,
  // and the block alone must not be read as block plus head).
  void OnLocalBlock(const ProgressiveModel& model, int block,
                    absl::Duration took, bool with_exit)
      ABSL_LOCKS_EXCLUDED(mu_);
  // An offload of `bytes` whose network share (round trip minus cloud queue
  // and compute) took `network_time`; `completed` false when it was cut off,
  // which still bounds the bandwidth from above.
  void OnTransfer(int64_t bytes, absl::Duration network_time, bool completed)
      ABSL_LOCKS_EXCLUDED(mu_);
  // A request of `model` that followed `plan` was answered `took` after it
  // arrived, having sent `bytes_sent` to the cloud (0: answered here). Per
  // plan and per state of the link its transfers see, these measured
  // figures overrule the planner's predictions between plans both have
  // measured.
  void OnAnswered(const std::string& model, const tandem::v1::Plan& plan,
                  absl::Duration took, int64_t bytes_sent)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Expected time to run blocks [begin, end) here.
  absl::Duration EstimateLocal(const ProgressiveModel& model, int begin,
                               int end) const ABSL_LOCKS_EXCLUDED(mu_);

  tandem::v1::NetworkState Network() const ABSL_LOCKS_EXCLUDED(mu_);
  // The energy model's figure for one request, at the current uplink estimate.
  double EnergyMj(absl::Duration compute, absl::Duration transfer,
                  absl::Duration waiting) const ABSL_LOCKS_EXCLUDED(mu_);
  int replans() const ABSL_LOCKS_EXCLUDED(mu_);
  // Blocks until the re-plans asked for so far have been made (tests, and
  // tools that want the plan after a measurement).
  void WaitForPlans() ABSL_LOCKS_EXCLUDED(mu_);
  // Times a model's shared plan was replaced (the first plan included).
  int switches() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // A plan's figure from one link regime, kept for when the link its
  // transfers see comes back (a plan cached per network state).
  struct PastFigure {
    double mean_ms = 0, dev_ms = 0;
    double link_mbit = 0;  // See MeasuredPlan::link_mbit.
    absl::Time last = absl::InfinitePast();
    // From an earlier regime: the link is back at a rate this plan ran at.
    bool cached = false;
  };
  // What requests that followed one plan took, in one link regime.
  struct MeasuredPlan {
    double mean_ms = 0;  // Running mean, then an EWMA (kMeasuredWeight).
    int count = 0;
    int regime = -1;  // LinkChanges() when measured.
    absl::Time last = absl::InfinitePast();
    double dev_ms = 0;  // Mean absolute deviation from mean_ms, alike.
    // The figure (and deviation) of the last regime in which it counted (0:
    // none), for telling whether a change of link reached this plan.
    double before_ms = 0, before_dev_ms = 0;
    double min_ms = 0;  // Its fastest answer in this regime.
    // Its first answers after a switch to it were each slower than the plan
    // it replaced (see kRefuteAfter): its figure counts before kMinMeasured.
    bool refuted = false;
    // The size of its transfers (0: none of its requests offloaded, so its
    // answers do not depend on the link and carry over every change), and
    // the mean uplink the estimator priced that size at when they were
    // sent (UplinkMbitFor): the state of the link its figure stands for.
    int64_t bytes = 0;
    double link_mbit = 0;
    int offloaded = 0;  // Answers that sent bytes, this regime.
    // Its counted (or refuted) figures of earlier regimes, the newest of
    // each state of the link (SameLink), the latest last (at most
    // kPastFigures).
    std::vector<PastFigure> past;
    // The plan (as its first answer followed it), for taking it again.
    std::shared_ptr<const tandem::v1::Plan> plan;
  };
  // How one plan's answers compared with its predictions, across link
  // regimes: answer over prediction, the last kBiasSamples of them.
  struct Bias {
    std::vector<double> ratios;  // A ring, `next` the oldest once full.
    size_t next = 0;
    absl::Time last = absl::InfinitePast();
  };
  struct ModelState {
    tandem::v1::ModelProfile edge;
    std::optional<tandem::v1::ModelProfile> cloud;
    double cloud_queue_ms = 0;
    std::vector<Ewma> block_us;  // Online refresh of edge.blocks.
    std::shared_ptr<const tandem::v1::Plan> plan;  // For the default SLA.
    // The latest prediction for `plan` (a re-plan that keeps the plan
    // re-predicts it under the new estimates without replacing it).
    double predicted_ms = 0;
    double planned_uplink = 0, planned_rtt = 0;
    int planned_changes = 0;  // Link changes the estimator had seen.
    absl::Time planned_at = absl::InfinitePast();
    std::string planned_policy;  // Serialized policy the plan was made for.
    // The input's size as the model's requests send it (Sla::input_bytes),
    // and as the plan was made for.
    int64_t input_bytes = 0, planned_input_bytes = 0;
    tandem::v1::EdgeModelPolicy policy;  // That policy, for the planner.
    bool replan_pending = false;         // The planner thread will re-plan.
    // The plan last switched away from, and when.
    std::shared_ptr<const tandem::v1::Plan> abandoned;
    absl::Time abandoned_at = absl::InfinitePast();
    // Answered requests by PlanKey (OnAnswered).
    std::map<std::string, MeasuredPlan> measured;
    std::map<std::string, Bias> bias;  // By PlanKey (OnAnswered).
    std::string refused_key;  // The last plan a re-plan did not switch to.
    // The last re-plan kept the plan for a fall it has not felt: its next
    // answer re-plans (it may be the one that feels it).
    bool fall_unfelt = false;
  };

  // A switch needs this much predicted gain (twice that to return, within
  // kReturnWindow, to the plan just left).
  static constexpr double kSwitchGain = 0.15;
  static constexpr absl::Duration kReturnWindow = absl::Seconds(5);
  // A plan's measured figure counts after this many answers in the current
  // link regime, for kMeasuredFor after its last one; later answers weigh
  // kMeasuredWeight. At most kMeasuredPlans plans are remembered per model.
  static constexpr int kMinMeasured = 8;
  static constexpr absl::Duration kMeasuredFor = absl::Seconds(30);
  static constexpr double kMeasuredWeight = 0.1;
  static constexpr size_t kMeasuredPlans = 32;
  // A figure from an earlier regime counts again, for kPastFor after its
  // last answer, while the estimator prices the plan's transfers within
  // kSameLink of what it priced them at then (the estimator's own test for
  // a change of link): a link that comes back to a rate it had is met with
  // what the plans measured there, not with predictions alone.
  static constexpr size_t kPastFigures = 4;
  static constexpr absl::Duration kPastFor = absl::Minutes(10);
  static constexpr double kSameLink = 2;
  // A slowdown felt is one beyond this many mean absolute deviations of the
  // plan's answers (about 2.5 standard deviations of a normal spread).
  static constexpr double kFeltDeviations = 3;
  // A change of link that this many further transfers have not undone is
  // trusted without the current plan's own answers (with the two that made
  // it, a full estimator window of the new regime). A cascade plan that
  // offloads one request in seven would otherwise feel a fall only with its
  // first slow offload.
  static constexpr int kFallTrustedAfter = 6;
  // Evidence against a plan just switched to counts sooner than evidence for
  // it: once its first kRefuteAfter answers were each slower than the
  // figure of the plan it replaced by the gain and by kFeltDeviations of
  // that plan's noise, its figure counts (and the keeper returns; when a
  // re-plan went back before those answers came, the figure still counts
  // and keeps the plan from being tried again). Two answers, not one: the
  // new plan's answers scatter too (a Fashion-MNIST offload's p95 is about
  // 1.5x its mean), and the threshold allows for the left plan's noise only.
  static constexpr int kRefuteAfter = 2;
  // A plan's prediction is weighed by the mean of its last kBiasSamples
  // answer/prediction ratios (each at most kMaxRatio), moved toward 1 by two
  // standard errors, once it has kMinMeasured of them; bounded to
  // [1 / kMaxBias, kMaxBias].
  static constexpr size_t kBiasSamples = 30;
  static constexpr double kMaxRatio = 10;
  static constexpr double kMaxBias = 2;
  // Whether `took_ms` (a mean since the change) is slower than the figure
  // before the change by the gain and beyond the plan's noise.
  static bool Felt(const MeasuredPlan& m, double took_ms);

  PlanKeeper(const tandem::v1::EdgeConfig& config, CloudLink* cloud,
             Clock* clock);
  PlannerInput InputFor(const ProgressiveModel& model, const ModelState& state,
                        const tandem::v1::NetworkState& network) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  PlanConstraints ConstraintsFor(const ProgressiveModel& model,
                                 const tandem::v1::EdgeModelPolicy& policy,
                                 const Sla& sla) const;
  bool NeedsReplan(const ModelState& state, const std::string& policy) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Asks the planner thread to re-plan every model whose plan NeedsReplan.
  void WantReplans() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PlanLoop();
  // Changes of link the estimator has detected, overall or in a size class
  // (a class's change moves only the plans that send that size).
  int LinkChanges() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return network_.changes() + network_.class_changes();
  }
  // The model's shared plan for requests without an SLA of their own,
  // re-made when NeedsReplan says so.
  absl::StatusOr<std::shared_ptr<const tandem::v1::Plan>> DefaultPlan(
      const ProgressiveModel& model, const tandem::v1::EdgeModelPolicy& policy,
      ModelState& state) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether `current` stays although `fresh` (made with explain) chose
  // otherwise: it is still feasible and within `gain` of the best, each
  // latency prediction weighed by its plan's Bias, and the current plan's by
  // its measured figure where that is lower.
  bool KeepCurrent(const ModelState& state, const tandem::v1::Plan& current,
                   const tandem::v1::Plan& fresh, double gain) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The bias of the plan with key `key` (see kBiasSamples); 1 while it has
  // fewer than kMinMeasured answers or its answers scatter too widely to
  // tell.
  static double BiasOf(const ModelState& state, const std::string& key);
  // Adds an answer of the plan with key `key` to its Bias.
  static void AddBias(ModelState& state, const std::string& key,
                      const tandem::v1::Plan& plan, absl::Duration took,
                      absl::Time now);
  // The measured figure of `plan` for the link as it is: its figure in the
  // current link regime if it counts, else the latest of an earlier regime
  // of the same link for its transfers (kPastFigures). A plan none of whose
  // requests offloaded keeps its figure across regimes.
  std::optional<PastFigure> MeasuredFigure(const ModelState& state,
                                           const tandem::v1::Plan& plan) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::optional<PastFigure> MeasuredFigure(const MeasuredPlan& m) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether an uplink of `mbit` is the state of the link `other_mbit` was
  // (within kSameLink; false for an unknown `other_mbit` of 0).
  static bool SameLink(double mbit, double other_mbit);
  // The mean of MeasuredFigure.
  std::optional<double> Measured(const ModelState& state,
                                 const tandem::v1::Plan& plan) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The current plan's figure from its own answers in this link regime:
  // MeasuredFigure without a cached one. Its answers are coming in, so a
  // figure from before (a stall among a regime's first answers, say) may
  // keep it (KeepCurrent, MeasuredAgainst) but not move the agent off it
  // (MeasuredFor, BestCached, RetreatWanted); a plan its own first answers
  // show slow is refuted within kRefuteAfter of them.
  std::optional<double> RunningFigure(const ModelState& state) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether the current plan's RunningFigure and `fresh`'s measured figure
  // exist and `fresh`'s beats it by `gain`: the requests show the gain the
  // predictions miss.
  bool MeasuredFor(const ModelState& state, const tandem::v1::Plan& fresh,
                   double gain) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // When the link is back at a rate some plans ran at (their figures
  // cached from an earlier regime): the one of them with the lowest
  // figure, if that beats the current plan's RunningFigure by the switching
  // gain
  // (twice that for the plan just left, within kReturnWindow) and, given
  // `fresh` (made with explain), the plan is feasible among its
  // alternatives; else null. Within a regime, plans are compared by
  // prediction, MeasuredFor and MeasuredAgainst.
  std::shared_ptr<const tandem::v1::Plan> BestCached(
      const ModelState& state, const tandem::v1::Plan* fresh) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether both plans have measured figures and `fresh`'s is not better
  // than `current`'s by the switching gain: the requests contradict the
  // prediction, so the current plan stays.
  bool MeasuredAgainst(const ModelState& state, const tandem::v1::Plan& current,
                       const tandem::v1::Plan& fresh) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether the current plan's RunningFigure is slower than the measured
  // figure of the plan it replaced by the switching gain:
  // the requests refute the prediction that made the switch.
  bool RetreatWanted(const ModelState& state) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Counts a transfer toward kFallTrustedAfter (call after adding it to the
  // estimator).
  void CountTransfer() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Makes `plan` the model's shared plan (a switch).
  std::shared_ptr<const tandem::v1::Plan> Adopt(ModelState& state,
                                                tandem::v1::Plan plan,
                                                const std::string& policy_key)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether a change that raised the prediction of `current` by more than
  // the switching gain (a fall of the link for the bytes it sends; `fresh`
  // made with explain) has yet to reach its requests: it counted a measured
  // figure before the last change of link, and its answers since (if any)
  // are not slower than that by the gain and by more than its own noise
  // (kFeltDeviations mean absolute deviations). Two late transfers of other
  // requests on a busy edge read as a fall of the link as much as a real one
  // does; the plan's own requests tell them apart, a real fall within one
  // answer, and so do kFallTrustedAfter more transfers that kept to it.
  bool FallNotFelt(const ModelState& state, const tandem::v1::Plan& current,
                   const tandem::v1::Plan& fresh) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Split, encoding, compression, forced exit and thresholds: what a request
  // following the plan does.
  static std::string PlanKey(const tandem::v1::Plan& plan);
  void ProbeLoop();
  // A lone round trip (no payload), for the RTT estimate.
  void Ping();
  // A ping and a bulk transfer of probe_bytes, for RTT and bandwidth.
  void Probe();
  void RefreshCloudProfiles();

  const tandem::v1::EdgeConfig config_;
  CloudLink* const cloud_;
  Clock* const clock_;
  EnergyModel energy_;
  std::map<std::string, const ProgressiveModel*> models_;

  mutable absl::Mutex mu_;
  std::map<std::string, ModelState> states_ ABSL_GUARDED_BY(mu_);
  NetworkEstimator network_ ABSL_GUARDED_BY(mu_);
  int replans_ ABSL_GUARDED_BY(mu_) = 0;
  int switches_ ABSL_GUARDED_BY(mu_) = 0;
  int pending_replans_ ABSL_GUARDED_BY(mu_) = 0;
  // Transfers since LinkChanges() last moved (it was `counted_changes_`).
  int transfers_since_change_ ABSL_GUARDED_BY(mu_) = 0;
  int counted_changes_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread prober_;
  std::thread planner_;
};

}  // namespace tandem

#endif  // TANDEM_EDGE_PLAN_KEEPER_H_
