#include "edge/plan_keeper.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "models/profiler.h"

namespace tandem {
namespace {

double Or(double value, double fallback) {
  return value > 0 ? value : fallback;
}

EnergyModel EnergyFor(const tandem::v1::EnergyConfig& config) {
  EnergyModel energy;
  energy.device = DevicePowerPreset(config.device().empty() ? "jetson_nano_10w"
                                                            : config.device())
                      .value_or(DevicePower{10.0, 1.5});
  if (config.compute_w() > 0) energy.device.compute_w = config.compute_w();
  if (config.idle_w() > 0) energy.device.idle_w = config.idle_w();
  energy.radio =
      RadioPowerPreset(config.link_type().empty() ? "wifi" : config.link_type())
          .value_or(RadioPower{283.17, 132.86});
  return energy;
}

NetworkEstimator::Options EstimatorOptions(
    const tandem::v1::AdaptationConfig& config) {
  NetworkEstimator::Options options;
  options.initial_uplink_mbit = config.assumed_uplink_mbit();
  options.initial_rtt_ms = config.assumed_rtt_ms();
  options.max_age = absl::Milliseconds(Or(config.probe_interval_ms(), 2000));
  return options;
}

// The alternative of `plan` that is `current` (same split, exits, encoding).
const tandem::v1::PlanAlternative* Find(const tandem::v1::Plan& plan,
                                        const tandem::v1::Plan& current) {
  const int forced =
      current.has_forced_exit_block() ? current.forced_exit_block() : -1;
  float threshold = 2.0f;  // Exits off unless the current plan has some.
  for (const auto& [block, t] : current.exit_thresholds())
    threshold = forced >= 0 ? 0.0f : t;
  for (const auto& a : plan.alternatives()) {
    if (a.split_point() == current.split_point() &&
        a.forced_exit_block() == forced &&
        (a.exit_threshold() > 1.0f) == (threshold > 1.0f) &&
        (threshold > 1.0f ||
         std::fabs(a.exit_threshold() - threshold) < 1e-6f) &&
        (a.offload_probability() == 0 || a.encoding() == current.encoding())) {
      return &a;
    }
  }
  return nullptr;
}

// How much of a transfer's `elapsed` time to count as latency rather than
// sending: the RTT, but never over half. A busy edge (a CPU quota spent on
// inference) inflates a ping as much as the transfer after it; subtracting
// the whole ping would leave nothing, and the sample would be lost.
absl::Duration LatencyShare(absl::Duration rtt, absl::Duration elapsed) {
  return std::min(rtt, elapsed / 2);
}

// Erases the entry of `plans` (by PlanKey) answered longest ago.
template <typename PlanMap>
void ForgetOldest(PlanMap& plans) {
  plans.erase(std::min_element(plans.begin(), plans.end(),
                               [](const auto& a, const auto& b) {
                                 return a.second.last < b.second.last;
                               }));
}

bool Outside(double now, double then, double band) {
  if (then <= 0) return now > 0;
  return std::fabs(now - then) > band * then;
}

}  // namespace

PlanKeeper::PlanKeeper(const tandem::v1::EdgeConfig& config, CloudLink* cloud,
                       Clock* clock)
    : config_(config),
      cloud_(cloud),
      clock_(clock),
      energy_(EnergyFor(config.energy())),
      network_(EstimatorOptions(config.adaptation()), clock) {}

absl::StatusOr<std::unique_ptr<PlanKeeper>> PlanKeeper::Create(
    const tandem::v1::EdgeConfig& config, const ModelRepository* repository,
    CloudLink* cloud, Clock* clock) {
  std::unique_ptr<PlanKeeper> keeper(new PlanKeeper(config, cloud, clock));
  ProfileOptions options;
  options.runs = static_cast<int>(Or(config.adaptation().profile_runs(), 20));
  for (const ProgressiveModel* model : repository->models()) {
    ASSIGN_OR_RETURN(tandem::v1::ModelProfile profile,
                     ProfileModel(*model, options));
    keeper->models_[model->name()] = model;
    absl::MutexLock lock(&keeper->mu_);
    ModelState& state = keeper->states_[model->name()];
    state.edge = std::move(profile);
    // Slow: device speed drifts slowly, and a jumpy profile makes plans flap.
    state.block_us.assign(model->num_blocks(), Ewma(0.05));
  }
  if (cloud != nullptr) {
    keeper->RefreshCloudProfiles();
    keeper->prober_ = std::thread([k = keeper.get()] { k->ProbeLoop(); });
  }
  keeper->planner_ = std::thread([k = keeper.get()] { k->PlanLoop(); });
  return keeper;
}

PlanKeeper::~PlanKeeper() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (prober_.joinable()) prober_.join();
  if (planner_.joinable()) planner_.join();
}

PlannerInput PlanKeeper::InputFor(
    const ProgressiveModel& model, const ModelState& state,
    const tandem::v1::NetworkState& network) const {
  PlannerInput input;
  input.config = &model.config();
  input.edge = &state.edge;
  input.cloud = state.cloud.has_value() ? &*state.cloud : nullptr;
  input.cloud_speedup = Or(config_.adaptation().assumed_cloud_speedup(), 1.0);
  input.cloud_queue_ms = state.cloud_queue_ms;
  input.network = network;
  input.network.set_link_type(config_.energy().link_type());
  input.energy = energy_;
  input.cloud_available = cloud_ != nullptr;
  input.input_wire_bytes = state.input_bytes;
  return input;
}

PlanConstraints PlanKeeper::ConstraintsFor(
    const ProgressiveModel& model, const tandem::v1::EdgeModelPolicy& policy,
    const Sla& sla) const {
  PlanConstraints constraints;
  constraints.objective =
      ParseObjective(policy.objective().empty() ? "latency"
                                                : policy.objective())
          .value_or(tandem::v1::OBJECTIVE_MIN_LATENCY);
  constraints.deadline = sla.deadline;
  if (constraints.deadline == absl::InfiniteDuration() &&
      policy.default_deadline_ms() > 0) {
    constraints.deadline = absl::Milliseconds(policy.default_deadline_ms());
  }
  constraints.min_accuracy = sla.min_accuracy;
  if (constraints.min_accuracy <= 0) {
    constraints.min_accuracy = policy.default_min_accuracy() > 0
                                   ? policy.default_min_accuracy()
                                   : model.config().cascade_test_accuracy();
  }
  return constraints;
}

std::string PlanKeeper::PlanKey(const tandem::v1::Plan& plan) {
  std::string key = absl::StrCat(
      plan.split_point(), "/", plan.encoding(), "/", plan.compression(), "/",
      plan.has_forced_exit_block() ? plan.forced_exit_block() : -1);
  for (const auto& [block, threshold] : std::map<int, float>(
           plan.exit_thresholds().begin(), plan.exit_thresholds().end())) {
    absl::StrAppend(&key, "/", block, ":", threshold);
  }
  return key;
}

bool PlanKeeper::KeepCurrent(const ModelState& state,
                             const tandem::v1::Plan& current,
                             const tandem::v1::Plan& fresh, double gain) const {
  // Switching pays only for a clear gain: near-ties would make plans flap
  // with every noisy measurement.
  const tandem::v1::PlanAlternative* now = Find(fresh, current);
  if (now == nullptr || !now->rejected_because().empty()) return false;
  const auto& best = fresh.alternatives(fresh.chosen());
  // Latency is what answers measure: each prediction is weighed by how its
  // plan's answers compared with its predictions.
  double current_cost = now->latency_ms() * BiasOf(state, PlanKey(current)),
         best_cost = best.latency_ms() * BiasOf(state, PlanKey(fresh));
  // A current plan whose answers on this link beat its prediction is judged
  // by them: a prediction alone does not take the agent off a plan its
  // requests show fast (one the link's return to a known rate brought back,
  // say, while the round-trip estimate still holds the slow regime's).
  if (const std::optional<double> measured = Measured(state, current))
    current_cost = std::min(current_cost, *measured);
  switch (fresh.objective()) {
    case tandem::v1::OBJECTIVE_MIN_ENERGY:
      current_cost = now->energy_mj();
      best_cost = best.energy_mj();
      break;
    case tandem::v1::OBJECTIVE_MIN_CLOUD_COMPUTE:
      current_cost = now->cloud_ms();
      best_cost = best.cloud_ms();
      break;
    case tandem::v1::OBJECTIVE_MAX_ACCURACY:
      return now->accuracy() >= best.accuracy();
    default:
      break;
  }
  return current_cost <= best_cost * (1 + gain);
}

double PlanKeeper::BiasOf(const ModelState& state, const std::string& key) {
  const auto it = state.bias.find(key);
  if (it == state.bias.end() || it->second.ratios.size() < kMinMeasured)
    return 1;
  // The mean ratio, moved toward 1 by two standard errors: answers scatter
  // around their prediction (a cascade's requests leave at different exits,
  // and the prediction is their expectation), and only a bias beyond that
  // scatter may move a decision.
  const std::vector<double>& ratios = it->second.ratios;
  const double n = static_cast<double>(ratios.size());
  double sum = 0, squares = 0;
  for (double r : ratios) {
    sum += r;
    squares += r * r;
  }
  const double mean = sum / n;
  const double variance = std::max(0.0, (squares - n * mean * mean) / (n - 1));
  const double margin = 2 * std::sqrt(variance / n);
  const double bias =
      mean > 1 ? std::max(1.0, mean - margin) : std::min(1.0, mean + margin);
  return std::clamp(bias, 1 / kMaxBias, kMaxBias);
}

bool PlanKeeper::NeedsReplan(const ModelState& state,
                             const std::string& policy) const {
  const double band = Or(config_.adaptation().hysteresis(), 0.25);
  const absl::Duration interval =
      absl::Milliseconds(Or(config_.adaptation().replan_interval_ms(), 5000));
  return state.plan == nullptr || state.planned_policy != policy ||
         Outside(network_.uplink_mbit(), state.planned_uplink, band) ||
         Outside(network_.rtt_ms(), state.planned_rtt, band) ||
         LinkChanges() != state.planned_changes ||
         state.input_bytes != state.planned_input_bytes ||
         clock_->Now() - state.planned_at > interval;
}

void PlanKeeper::WantReplans() {
  for (auto& [name, state] : states_) {
    if (state.replan_pending || state.plan == nullptr ||
        !NeedsReplan(state, state.planned_policy)) {
      continue;
    }
    state.replan_pending = true;
    ++pending_replans_;
  }
}

void PlanKeeper::PlanLoop() {
  absl::MutexLock lock(&mu_);
  auto wanted = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return stopping_ || pending_replans_ > 0;
  };
  while (true) {
    mu_.Await(absl::Condition(&wanted));
    if (stopping_) return;
    for (auto& [name, state] : states_) {
      if (!state.replan_pending) continue;
      // A plan that cannot be made leaves the current one in place; the
      // next request that needs one reports why.
      (void)DefaultPlan(*models_.at(name), state.policy, state);
      state.replan_pending = false;
      --pending_replans_;
    }
  }
}

void PlanKeeper::WaitForPlans() {
  absl::MutexLock lock(&mu_);
  auto done = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return stopping_ || pending_replans_ == 0;
  };
  mu_.Await(absl::Condition(&done));
}

absl::StatusOr<std::shared_ptr<const tandem::v1::Plan>> PlanKeeper::PlanFor(
    const ProgressiveModel& model, const tandem::v1::EdgeModelPolicy& policy,
    const Sla& sla) {
  absl::MutexLock lock(&mu_);
  auto it = states_.find(model.name());
  if (it == states_.end())
    return absl::NotFoundError("no profile for " + model.name());
  ModelState& state = it->second;
  // Requests that change how they send the input re-price split 0.
  if (sla.input_bytes > 0) state.input_bytes = sla.input_bytes;
  std::shared_ptr<const tandem::v1::Plan> shared = state.plan;
  const std::string policy_key = policy.SerializeAsString();
  if (shared == nullptr || state.planned_policy != policy_key) {
    // The model's first request, or its policy changed: nothing to follow
    // meanwhile, so plan here.
    state.policy = policy;
    ASSIGN_OR_RETURN(shared, DefaultPlan(model, policy, state));
  } else if (NeedsReplan(state, policy_key)) {
    WantReplans();  // The interval ran out: the planner thread re-plans.
  }
  // The shared plan serves every request whose SLA it meets; only the others
  // get a plan of their own.
  const bool meets_deadline = sla.deadline == absl::InfiniteDuration() ||
                              shared->predicted_tail_latency_ms() <=
                                  absl::ToDoubleMilliseconds(sla.deadline);
  const bool meets_accuracy =
      shared->predicted_accuracy() + 1e-6 >= sla.min_accuracy;
  if (meets_deadline && meets_accuracy) return shared;
  ASSIGN_OR_RETURN(tandem::v1::Plan own,
                   ChoosePlan(InputFor(model, state, network_.State()),
                              ConstraintsFor(model, policy, sla)));
  return std::make_shared<const tandem::v1::Plan>(std::move(own));
}

absl::StatusOr<std::shared_ptr<const tandem::v1::Plan>> PlanKeeper::DefaultPlan(
    const ProgressiveModel& model, const tandem::v1::EdgeModelPolicy& policy,
    ModelState& state) {
  const std::string policy_key = policy.SerializeAsString();
  if (!NeedsReplan(state, policy_key)) return state.plan;
  PlanConstraints constraints = ConstraintsFor(model, policy, Sla{});
  const PlannerInput input = InputFor(model, state, network_.State());
  // The decision alone first (a fraction of the cost with every
  // alternative explained): most re-plans confirm the current plan.
  ASSIGN_OR_RETURN(tandem::v1::Plan plan, ChoosePlan(input, constraints));
  ++replans_;
  state.planned_uplink = network_.uplink_mbit();
  state.planned_rtt = network_.rtt_ms();
  state.planned_changes = LinkChanges();
  state.planned_input_bytes = state.input_bytes;
  state.planned_at = clock_->Now();
  const bool same_policy =
      state.plan != nullptr && state.planned_policy == policy_key;
  if (same_policy && RetreatWanted(state)) {
    // The current plan's requests measured it slower than the plan it
    // replaced: return to that one while it is still feasible, whatever the
    // predictions say (they made the switch, and the answers refute them).
    constraints.explain = true;
    ASSIGN_OR_RETURN(tandem::v1::Plan fresh, ChoosePlan(input, constraints));
    const tandem::v1::PlanAlternative* back = Find(fresh, *state.abandoned);
    if (back != nullptr && back->rejected_because().empty()) {
      TANDEM_LOG(INFO) << model.name() << ": returns to "
                       << state.abandoned->reason() << ": its requests took "
                       << Measured(state, *state.abandoned).value_or(0)
                       << " ms, the plan it left for "
                       << Measured(state, *state.plan).value_or(0) << " ms";
      tandem::v1::Plan back_plan = *state.abandoned;
      back_plan.set_predicted_latency_ms(back->latency_ms());
      back_plan.set_predicted_tail_latency_ms(back->tail_ms());
      return Adopt(state, std::move(back_plan), policy_key);
    }
  }
  if (same_policy && BestCached(state, nullptr) != nullptr) {
    // The link is back at a rate where a plan's requests took less than
    // the current plan's by the gain: taken, whatever the predictions say,
    // if it is still feasible.
    constraints.explain = true;
    ASSIGN_OR_RETURN(tandem::v1::Plan fresh, ChoosePlan(input, constraints));
    if (std::shared_ptr<const tandem::v1::Plan> known =
            BestCached(state, &fresh)) {
      TANDEM_LOG(INFO) << model.name() << ": takes " << known->reason()
                       << ": its requests took "
                       << Measured(state, *known).value_or(0)
                       << " ms on this link, the current plan's "
                       << Measured(state, *state.plan).value_or(0) << " ms";
      const tandem::v1::PlanAlternative* now = Find(fresh, *known);
      tandem::v1::Plan next = *known;
      next.set_predicted_latency_ms(now->latency_ms());
      next.set_predicted_tail_latency_ms(now->tail_ms());
      return Adopt(state, std::move(next), policy_key);
    }
  }
  if (same_policy && PlanKey(plan) == PlanKey(*state.plan)) {
    state.predicted_ms = plan.predicted_latency_ms();
    return state.plan;
  }
  if (same_policy) {
    constraints.explain = true;
    ASSIGN_OR_RETURN(plan, ChoosePlan(input, constraints));
    // Returning to the plan just left takes twice the gain: both were
    // measured moments ago, and near-ties would otherwise flap with every
    // noisy sample (the emulated link's token bucket makes small transfers
    // alternate between burst and shaped speed).
    const bool returning = state.abandoned != nullptr &&
                           PlanKey(plan) == PlanKey(*state.abandoned) &&
                           clock_->Now() - state.abandoned_at < kReturnWindow;
    const double gain = returning ? 2 * kSwitchGain : kSwitchGain;
    // The requests' own figures, where both plans have them for this link,
    // outweigh predictions either way.
    const bool measured_gain = MeasuredFor(state, plan, gain);
    const bool small_gain =
        !measured_gain && KeepCurrent(state, *state.plan, plan, gain);
    const char* why = nullptr;
    state.fall_unfelt = false;
    if (measured_gain) {
      TANDEM_LOG(INFO) << model.name() << ": takes " << plan.reason()
                       << ": its requests took "
                       << Measured(state, plan).value_or(0)
                       << " ms on this link, the current plan's "
                       << Measured(state, *state.plan).value_or(0) << " ms";
    } else if (small_gain) {
      why = "the predicted gain is too small";
    } else if (MeasuredAgainst(state, *state.plan, plan)) {
      why = "its requests measured no faster";
    } else if (FallNotFelt(state, *state.plan, plan)) {
      why = "the link's fall has not reached the current plan's requests";
      state.fall_unfelt = true;
    }
    if (why != nullptr) {
      // Said once per plan refused in a row, not at every re-plan.
      if (PlanKey(plan) != state.refused_key) {
        state.refused_key = PlanKey(plan);
        TANDEM_LOG(INFO) << model.name() << ": keeps its plan over "
                         << plan.reason() << ": " << why << " (predictions x"
                         << BiasOf(state, PlanKey(*state.plan)) << " kept, x"
                         << BiasOf(state, PlanKey(plan)) << " refused)";
      }
      if (const auto* now = Find(plan, *state.plan); now != nullptr)
        state.predicted_ms = now->latency_ms();
      return state.plan;
    }
    if (!measured_gain) {
      // What the predictions weighed, so that a switch the answers later
      // refute can be traced to the figure that made it.
      const tandem::v1::PlanAlternative* now = Find(plan, *state.plan);
      const std::optional<double> measured = Measured(state, *state.plan);
      TANDEM_LOG(INFO) << model.name() << ": switches for a predicted gain: "
                       << plan.predicted_latency_ms() << " ms x"
                       << BiasOf(state, PlanKey(plan))
                       << " against the current plan's "
                       << (now != nullptr ? now->latency_ms() : 0) << " ms x"
                       << BiasOf(state, PlanKey(*state.plan))
                       << (measured
                               ? absl::StrCat(", measured ", *measured, " ms")
                               : std::string(", not measured"))
                       << " on this link";
    }
  }
  plan.clear_alternatives();
  return Adopt(state, std::move(plan), policy_key);
}

std::shared_ptr<const tandem::v1::Plan> PlanKeeper::Adopt(
    ModelState& state, tandem::v1::Plan plan, const std::string& policy_key) {
  if (state.plan != nullptr && state.planned_policy == policy_key) {
    state.refused_key.clear();
    state.abandoned = state.plan;
    state.abandoned_at = clock_->Now();
  }
  auto shared = std::make_shared<const tandem::v1::Plan>(std::move(plan));
  if (state.plan == nullptr ||
      state.plan->split_point() != shared->split_point() ||
      state.plan->encoding() != shared->encoding()) {
    TANDEM_LOG(INFO) << shared->model_name() << ": plan " << shared->reason()
                     << " (uplink " << network_.uplink_mbit() << " Mbit/s, rtt "
                     << network_.rtt_ms() << " ms)";
  }
  state.plan = shared;
  state.predicted_ms = shared->predicted_latency_ms();
  state.planned_policy = policy_key;
  ++switches_;
  return shared;
}

absl::StatusOr<tandem::v1::Plan> PlanKeeper::Explain(
    const ProgressiveModel& model, const tandem::v1::EdgeModelPolicy& policy,
    const tandem::v1::GetPlanRequest& request) {
  tandem::v1::EdgeModelPolicy what_if = policy;
  if (request.has_objective()) {
    static constexpr const char* kNames[] = {"latency", "energy", "accuracy",
                                             "cloud"};
    what_if.set_objective(kNames[std::clamp<int>(request.objective(), 0, 3)]);
  }
  Sla sla;
  if (request.has_deadline_ms())
    sla.deadline = absl::Milliseconds(request.deadline_ms());
  if (request.has_min_accuracy()) sla.min_accuracy = request.min_accuracy();
  PlanConstraints constraints = ConstraintsFor(model, what_if, sla);
  constraints.explain = request.explain();
  absl::MutexLock lock(&mu_);
  auto it = states_.find(model.name());
  if (it == states_.end())
    return absl::NotFoundError("no profile for " + model.name());
  tandem::v1::NetworkState network = network_.State();
  if (request.has_network()) network = request.network();
  return ChoosePlan(InputFor(model, it->second, network), constraints);
}

absl::StatusOr<tandem::v1::SavedProfile> PlanKeeper::Saved(
    const std::string& name) const {
  const auto model = models_.find(name);
  if (model == models_.end())
    return absl::NotFoundError(absl::StrCat("unknown model '", name, "'"));
  absl::MutexLock lock(&mu_);
  const ModelState& state = states_.at(name);
  tandem::v1::SavedProfile saved;
  *saved.mutable_config() = model->second->config();
  *saved.mutable_edge() = state.edge;
  if (state.cloud.has_value()) *saved.mutable_cloud() = *state.cloud;
  *saved.mutable_network() = network_.State();
  saved.mutable_network()->set_link_type(config_.energy().link_type());
  saved.set_cloud_queue_ms(state.cloud_queue_ms);
  saved.set_assumed_cloud_speedup(
      Or(config_.adaptation().assumed_cloud_speedup(), 1.0));
  saved.set_compute_w(energy_.device.compute_w);
  saved.set_idle_w(energy_.device.idle_w);
  saved.set_radio_alpha_mw_per_mbit(energy_.radio.alpha_mw_per_mbit);
  saved.set_radio_beta_mw(energy_.radio.beta_mw);
  return saved;
}

void PlanKeeper::OnLocalBlock(const ProgressiveModel& model, int block,
                              absl::Duration took, bool with_exit) {
  absl::MutexLock lock(&mu_);
  auto it = states_.find(model.name());
  if (it == states_.end() || block < 0 || block >= model.num_blocks()) return;
  ModelState& state = it->second;
  tandem::v1::BlockProfile* profile = state.edge.mutable_blocks(block);
  // The EWMA follows block plus head: keep the profile's split between the
  // two and scale the block part. A run without the head is completed with
  // the profile's head, not read as the pair.
  Ewma& ewma = state.block_us[block];
  ewma.Add(absl::ToDoubleMicroseconds(took) +
           (with_exit ? 0.0 : profile->exit_latency_us()));
  profile->set_latency_us(
      std::max(1.0, ewma.value() - profile->exit_latency_us()));
}

void PlanKeeper::OnTransfer(int64_t bytes, absl::Duration network_time,
                            bool completed) {
  absl::MutexLock lock(&mu_);
  if (!completed) {
    network_.AddIncompleteTransfer(bytes, network_time);
  } else {
    // The round trip comes from pings (the prober's, which run while the
    // link is busy too): a transfer's network time mixes it with the
    // sending time.
    const absl::Duration rtt = absl::Milliseconds(network_.rtt_ms());
    network_.AddTransfer(bytes, network_time, LatencyShare(rtt, network_time));
  }
  CountTransfer();
  WantReplans();
}

void PlanKeeper::CountTransfer() {
  if (LinkChanges() != counted_changes_) {
    counted_changes_ = LinkChanges();
    transfers_since_change_ = 0;
    return;
  }
  if (++transfers_since_change_ != kFallTrustedAfter) return;
  // The change held: plans kept for a fall they had not felt re-plan now.
  for (auto& [name, state] : states_) {
    if (state.fall_unfelt) state.planned_at = absl::InfinitePast();
  }
}

absl::Duration PlanKeeper::EstimateLocal(const ProgressiveModel& model,
                                         int begin, int end) const {
  absl::MutexLock lock(&mu_);
  auto it = states_.find(model.name());
  if (it == states_.end()) return absl::ZeroDuration();
  double us = 0;
  for (int b = begin; b < end; ++b) {
    us += it->second.edge.blocks(b).latency_us() +
          it->second.edge.blocks(b).exit_latency_us();
  }
  return absl::Microseconds(us);
}

tandem::v1::NetworkState PlanKeeper::Network() const {
  absl::MutexLock lock(&mu_);
  return network_.State();
}

double PlanKeeper::EnergyMj(absl::Duration compute, absl::Duration transfer,
                            absl::Duration waiting) const {
  absl::MutexLock lock(&mu_);
  return energy_.EnergyMj(
      absl::ToDoubleMilliseconds(compute), absl::ToDoubleMilliseconds(transfer),
      network_.uplink_mbit(), absl::ToDoubleMilliseconds(waiting));
}

int PlanKeeper::replans() const {
  absl::MutexLock lock(&mu_);
  return replans_;
}

void PlanKeeper::OnAnswered(const std::string& model,
                            const tandem::v1::Plan& plan, absl::Duration took,
                            int64_t bytes_sent) {
  const std::string key = PlanKey(plan);
  absl::MutexLock lock(&mu_);
  auto it = states_.find(model);
  if (it == states_.end()) return;
  const absl::Time now = clock_->Now();
  AddBias(it->second, key, plan, took, now);
  std::map<std::string, MeasuredPlan>& measured = it->second.measured;
  // Full (own-SLA plans vary): forget the plan answered longest ago.
  if (measured.size() >= kMeasuredPlans && measured.count(key) == 0)
    ForgetOldest(measured);
  MeasuredPlan& m = measured[key];
  if (m.plan == nullptr)
    m.plan = std::make_shared<const tandem::v1::Plan>(plan);
  const bool link_free = m.bytes == 0 && bytes_sent == 0;
  if (link_free && m.regime != LinkChanges() && now - m.last <= kMeasuredFor) {
    m.regime = LinkChanges();  // No change of link reaches its requests.
  } else if (m.regime != LinkChanges() || now - m.last > kMeasuredFor) {
    // The figure it had carries over as `before_ms` when it still counted
    // (or the one before it, through a regime too short to count), and
    // into `past` for when the link comes back.
    MeasuredPlan next;
    next.regime = LinkChanges();
    const bool counted = m.count >= kMinMeasured;
    if (now - m.last <= kMeasuredFor) {
      next.before_ms = counted ? m.mean_ms : m.before_ms;
      next.before_dev_ms = counted ? m.dev_ms : m.before_dev_ms;
    }
    next.past = std::move(m.past);
    // A refuted figure too: the newest for its link, it must not let an
    // older, better one of that link count again.
    if ((counted || m.refuted) && m.offloaded > 0) {
      // One figure per state of the link, the newest: a figure of another
      // link's regimes must not push out the only one of this link (a trace
      // that steps through several rates changes regime at each).
      std::vector<PastFigure>& past = next.past;
      past.erase(std::remove_if(past.begin(), past.end(),
                                [&](const PastFigure& p) {
                                  return SameLink(p.link_mbit, m.link_mbit);
                                }),
                 past.end());
      if (past.size() >= kPastFigures) past.erase(past.begin());
      past.push_back({m.mean_ms, m.dev_ms, m.link_mbit, m.last});
    }
    next.bytes = m.bytes;
    next.plan = std::move(m.plan);
    m = std::move(next);
  }
  if (bytes_sent > 0) {
    // The link its transfers see: what the estimator prices them at now.
    m.bytes = bytes_sent;
    ++m.offloaded;
    m.link_mbit +=
        (network_.UplinkMbitFor(bytes_sent) - m.link_mbit) / m.offloaded;
  }
  const double took_ms = absl::ToDoubleMilliseconds(took);
  ++m.count;
  const double weight = std::max(1.0 / m.count, kMeasuredWeight);
  if (m.count > 1)
    m.dev_ms += weight * (std::fabs(took_ms - m.mean_ms) - m.dev_ms);
  m.mean_ms += weight * (took_ms - m.mean_ms);
  m.min_ms = m.count == 1 ? took_ms : std::min(m.min_ms, took_ms);
  m.last = now;
  ModelState& state = it->second;
  const bool current = state.plan != nullptr && PlanKey(*state.plan) == key;
  // The plan this one replaced, or (when a re-plan already went back before
  // its answers came) the one that replaced it.
  const tandem::v1::Plan* other = nullptr;
  if (current && state.abandoned != nullptr) {
    other = state.abandoned.get();
  } else if (state.plan != nullptr && state.abandoned != nullptr &&
             PlanKey(*state.abandoned) == key) {
    other = state.plan.get();
  }
  if (other != nullptr && !m.refuted && m.count >= kRefuteAfter &&
      m.count < kMinMeasured) {
    // Each answer so far slower than that plan, beyond its noise: the switch
    // was wrong, no need to wait for a figure.
    if (const std::optional<PastFigure> before =
            MeasuredFigure(state, *other)) {
      m.refuted = m.min_ms > before->mean_ms * (1 + kSwitchGain) &&
                  m.min_ms > before->mean_ms + kFeltDeviations * before->dev_ms;
    }
  }
  // The answer that may make the fall felt, or that refutes the switch to
  // the current plan, re-plans at once.
  const bool felt = state.fall_unfelt && current && Felt(m, m.mean_ms);
  if (felt) state.fall_unfelt = false;
  if (felt || (current && RetreatWanted(state))) {
    state.planned_at = absl::InfinitePast();  // Re-plan with this answer.
    WantReplans();
  }
}

void PlanKeeper::AddBias(ModelState& state, const std::string& key,
                         const tandem::v1::Plan& plan, absl::Duration took,
                         absl::Time now) {
  // The shared plan is judged by its latest prediction: a re-plan that kept
  // it re-predicted it under the estimates its answers ran in.
  const double predicted = state.plan != nullptr && PlanKey(*state.plan) == key
                               ? state.predicted_ms
                               : plan.predicted_latency_ms();
  if (!(predicted > 0)) return;  // No prediction to compare with.
  if (state.bias.size() >= kMeasuredPlans && state.bias.count(key) == 0)
    ForgetOldest(state.bias);
  Bias& bias = state.bias[key];
  // A stall of many times the prediction says little about the plan's bias
  // and would swamp the mean: it counts as kMaxRatio.
  const double ratio =
      std::min(kMaxRatio, absl::ToDoubleMilliseconds(took) / predicted);
  if (bias.ratios.size() < kBiasSamples) {
    bias.ratios.push_back(ratio);
  } else {
    bias.ratios[bias.next] = ratio;
    bias.next = (bias.next + 1) % kBiasSamples;
  }
  bias.last = now;
}

std::optional<PlanKeeper::PastFigure> PlanKeeper::MeasuredFigure(
    const MeasuredPlan& m) const {
  const absl::Time now = clock_->Now();
  const bool this_regime = m.regime == LinkChanges() || m.bytes == 0;
  const bool counts = m.count >= kMinMeasured || m.refuted;
  if (this_regime && counts && now - m.last <= kMeasuredFor)
    return PastFigure{m.mean_ms, m.dev_ms, m.link_mbit, m.last};
  if (m.bytes == 0) return std::nullopt;
  // An earlier regime of the same link for its transfers: the last one's
  // figure (not yet moved to `past`, which happens at the plan's next
  // answer), then those before it.
  const double link = network_.UplinkMbitFor(m.bytes);
  auto same_link = [&](const PastFigure& past) {
    return now - past.last <= kPastFor && SameLink(link, past.link_mbit);
  };
  if (m.regime != LinkChanges() && (m.count >= kMinMeasured || m.refuted) &&
      m.offloaded > 0) {
    const PastFigure last{m.mean_ms, m.dev_ms, m.link_mbit, m.last, true};
    if (same_link(last)) return last;
  }
  for (auto past = m.past.rbegin(); past != m.past.rend(); ++past) {
    if (!same_link(*past)) continue;
    PastFigure cached = *past;
    cached.cached = true;
    return cached;
  }
  return std::nullopt;
}

std::optional<PlanKeeper::PastFigure> PlanKeeper::MeasuredFigure(
    const ModelState& state, const tandem::v1::Plan& plan) const {
  const auto it = state.measured.find(PlanKey(plan));
  if (it == state.measured.end()) return std::nullopt;
  return MeasuredFigure(it->second);
}

std::optional<double> PlanKeeper::Measured(const ModelState& state,
                                           const tandem::v1::Plan& plan) const {
  const std::optional<PastFigure> figure = MeasuredFigure(state, plan);
  if (!figure) return std::nullopt;
  return figure->mean_ms;
}

bool PlanKeeper::SameLink(double mbit, double other_mbit) {
  return other_mbit > 0 && mbit <= other_mbit * kSameLink &&
         mbit >= other_mbit / kSameLink;
}

std::optional<double> PlanKeeper::RunningFigure(const ModelState& state) const {
  if (state.plan == nullptr) return std::nullopt;
  const std::optional<PastFigure> figure = MeasuredFigure(state, *state.plan);
  if (!figure || figure->cached) return std::nullopt;
  return figure->mean_ms;
}

bool PlanKeeper::MeasuredFor(const ModelState& state,
                             const tandem::v1::Plan& fresh, double gain) const {
  if (fresh.objective() != tandem::v1::OBJECTIVE_MIN_LATENCY) return false;
  const std::optional<double> mine = RunningFigure(state);
  const std::optional<double> theirs = Measured(state, fresh);
  return mine.has_value() && theirs.has_value() && *theirs * (1 + gain) < *mine;
}

std::shared_ptr<const tandem::v1::Plan> PlanKeeper::BestCached(
    const ModelState& state, const tandem::v1::Plan* fresh) const {
  if (state.plan == nullptr ||
      state.plan->objective() != tandem::v1::OBJECTIVE_MIN_LATENCY) {
    return nullptr;  // Other objectives keep the prediction.
  }
  const std::optional<double> mine = RunningFigure(state);
  if (!mine.has_value()) return nullptr;
  const std::string current = PlanKey(*state.plan);
  const std::string left =
      state.abandoned != nullptr &&
              clock_->Now() - state.abandoned_at < kReturnWindow
          ? PlanKey(*state.abandoned)
          : std::string();
  std::shared_ptr<const tandem::v1::Plan> best;
  double best_ms = 0;
  for (const auto& [key, m] : state.measured) {
    if (key == current || m.plan == nullptr) continue;
    const std::optional<PastFigure> theirs = MeasuredFigure(m);
    // Returning to the plan just left takes twice the gain, as predictions
    // do.
    const double gain = key == left ? 2 * kSwitchGain : kSwitchGain;
    if (!theirs.has_value() || !theirs->cached ||
        theirs->mean_ms * (1 + gain) >= *mine ||
        (best != nullptr && theirs->mean_ms >= best_ms)) {
      continue;
    }
    if (fresh != nullptr) {
      const tandem::v1::PlanAlternative* a = Find(*fresh, *m.plan);
      if (a == nullptr || !a->rejected_because().empty()) continue;
    }
    best = m.plan;
    best_ms = theirs->mean_ms;
  }
  return best;
}

bool PlanKeeper::RetreatWanted(const ModelState& state) const {
  if (state.plan == nullptr || state.abandoned == nullptr) return false;
  if (state.plan->objective() != tandem::v1::OBJECTIVE_MIN_LATENCY)
    return false;  // Other objectives keep the prediction.
  const std::optional<double> mine = RunningFigure(state);
  const std::optional<double> left = Measured(state, *state.abandoned);
  return mine.has_value() && left.has_value() &&
         *mine > *left * (1 + kSwitchGain);
}

bool PlanKeeper::MeasuredAgainst(const ModelState& state,
                                 const tandem::v1::Plan& current,
                                 const tandem::v1::Plan& fresh) const {
  // Latency is what requests measure; other objectives keep the prediction.
  if (fresh.objective() != tandem::v1::OBJECTIVE_MIN_LATENCY) return false;
  const std::optional<double> mine = Measured(state, current);
  const std::optional<double> theirs = Measured(state, fresh);
  return mine.has_value() && theirs.has_value() &&
         *theirs * (1 + kSwitchGain) >= *mine;
}

bool PlanKeeper::FallNotFelt(const ModelState& state,
                             const tandem::v1::Plan& current,
                             const tandem::v1::Plan& fresh) const {
  if (fresh.objective() != tandem::v1::OBJECTIVE_MIN_LATENCY) return false;
  const tandem::v1::PlanAlternative* now = Find(fresh, current);
  if (now == nullptr || !now->rejected_because().empty() ||
      now->latency_ms() <= current.predicted_latency_ms() * (1 + kSwitchGain)) {
    return false;  // No fall for this plan, or it can no longer run.
  }
  // A plan that never offloads has no requests for a fall of the link to
  // reach: its prediction rose with the edge's own figures, which its answers
  // already are. (Held so, edge-only stayed 3-4 requests into a recovery.)
  if (now->offload_probability() <= 0) return false;
  if (transfers_since_change_ >= kFallTrustedAfter) return false;
  const auto it = state.measured.find(PlanKey(current));
  if (it == state.measured.end()) return false;
  const MeasuredPlan& m = it->second;
  if (clock_->Now() - m.last > kMeasuredFor) return false;
  if (m.regime != LinkChanges()) {
    // No answer since the change: unfelt, if there is a figure to feel it by.
    return m.count >= kMinMeasured || m.before_ms > 0;
  }
  return m.before_ms > 0 && !Felt(m, m.mean_ms);
}

bool PlanKeeper::Felt(const MeasuredPlan& m, double took_ms) {
  return took_ms > m.before_ms * (1 + kSwitchGain) &&
         took_ms > m.before_ms + kFeltDeviations * m.before_dev_ms;
}

int PlanKeeper::switches() const {
  absl::MutexLock lock(&mu_);
  return switches_;
}

void PlanKeeper::ProbeLoop() {
  const absl::Duration interval =
      absl::Milliseconds(Or(config_.adaptation().probe_interval_ms(), 2000));
  // The cloud's profile is polled on its own clock, busy link or quiet: the
  // cloud refreshes it from every run, and a plan made from the figures it
  // had at start would stay as wrong as they were.
  const absl::Duration profile_interval =
      std::min(interval * 2, absl::Seconds(5));
  // Pings run busy link or quiet: transfers time the bandwidth, but only a
  // lone ping times the round trip itself (the estimate keeps the least).
  const absl::Duration ping_interval =
      config_.adaptation().ping_interval_ms() > 0
          ? absl::Milliseconds(config_.adaptation().ping_interval_ms())
          : std::max(absl::Milliseconds(50), interval / 5);
  absl::Time last_profile = clock_->Now();
  absl::Time last_ping = absl::InfinitePast();
  while (true) {
    bool probe = false;
    {
      absl::MutexLock lock(&mu_);
      auto stop = [this]()
                      ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stopping_; };
      if (mu_.AwaitWithTimeout(absl::Condition(&stop),
                               std::min(interval / 2, ping_interval))) {
        return;
      }
      probe = network_.NeedsProbe();
    }
    if (!probe && clock_->Now() - last_ping >= ping_interval) {
      last_ping = clock_->Now();
      Ping();
    }
    if (probe) {
      Probe();
      bool confirm = false;
      {
        absl::MutexLock lock(&mu_);
        confirm = !stopping_ && network_.ChangePending();
      }
      if (confirm) Probe();  // The link may have changed: make sure now.
    }
    if (clock_->Now() - last_profile >= profile_interval) {
      RefreshCloudProfiles();
      last_profile = clock_->Now();
    }
  }
}

void PlanKeeper::Ping() {
  const absl::Time start = clock_->Now();
  if (!cloud_->Probe(tandem::v1::ProbeRequest(), start + absl::Seconds(2))
           .ok()) {
    return;
  }
  const absl::Duration rtt = clock_->Now() - start;
  absl::MutexLock lock(&mu_);
  const double before = network_.rtt_ms();
  network_.AddPing(rtt);
  // A round trip far below the estimate moves plans (the cost of every
  // offload falls by the difference).
  if (network_.rtt_ms() < before / 2) WantReplans();
}

void PlanKeeper::Probe() {
  const absl::Time deadline = clock_->Now() + absl::Seconds(2);
  tandem::v1::ProbeRequest ping;
  absl::Time start = clock_->Now();
  if (!cloud_->Probe(ping, deadline).ok()) return;
  const absl::Duration rtt = clock_->Now() - start;
  tandem::v1::ProbeRequest bulk;
  bulk.mutable_payload()->assign(
      static_cast<size_t>(Or(config_.adaptation().probe_bytes(), 65536)), '\0');
  start = clock_->Now();
  const absl::Status sent = cloud_->Probe(bulk, deadline).status();
  const absl::Duration elapsed = clock_->Now() - start;
  absl::MutexLock lock(&mu_);
  network_.AddRtt(rtt);
  // A probe cut off by its deadline still bounds the bandwidth: the link
  // carried at most its bytes in that time.
  const int64_t bytes = static_cast<int64_t>(bulk.payload().size());
  if (sent.ok()) {
    network_.AddTransfer(bytes, elapsed, LatencyShare(rtt, elapsed));
    CountTransfer();
  } else if (sent.code() == absl::StatusCode::kDeadlineExceeded) {
    network_.AddIncompleteTransfer(bytes, elapsed);
    CountTransfer();
  }
  WantReplans();
}

void PlanKeeper::RefreshCloudProfiles() {
  for (const auto& [name, model] : models_) {
    absl::StatusOr<tandem::v1::GetProfileResponse> response =
        cloud_->GetProfile(name, clock_->Now() + absl::Seconds(2));
    if (!response.ok()) continue;
    bool measured = response->profile().blocks_size() == model->num_blocks();
    for (const auto& block : response->profile().blocks())
      measured &= block.latency_us() > 0;
    absl::MutexLock lock(&mu_);
    ModelState& state = states_[name];
    state.cloud_queue_ms = response->queue_us_ewma() / 1000;
    if (measured) {
      state.cloud = response->profile();
      state.planned_at = absl::InfinitePast();  // Re-plan with the figures.
    }
    WantReplans();
  }
}

}  // namespace tandem
