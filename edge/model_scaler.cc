#include "edge/model_scaler.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/logging.h"

namespace tandem {
namespace {

constexpr size_t kMaxChanges = 256;
// Weight of the newest window in the smoothed release rates.
constexpr double kRateWeight = 0.5;

}  // namespace

const char* ModelScaler::LevelName(int level) {
  switch (level) {
    case 0:
      return "the full plan";
    case 1:
      return "exit thresholds at the accuracy floor";
    case 2:
      return "more offloading";
    case 3:
      return "forced exit at the earliest exit meeting the floor";
  }
  return "unknown";
}

ModelScaler::ModelScaler(std::vector<ScalerTask> tasks, Options options,
                         Clock* clock)
    : options_(options), clock_(clock) {
  for (ScalerTask& task : tasks) {
    State state;
    state.task = std::move(task);
    tasks_.emplace(state.task.name, std::move(state));
  }
}

void ModelScaler::OnRelease(const std::string& task) {
  absl::MutexLock lock(&mu_);
  auto it = tasks_.find(task);
  if (it != tasks_.end()) ++it->second.released;
}

void ModelScaler::OnOutcome(const std::string& task, bool missed) {
  if (!missed) return;
  absl::MutexLock lock(&mu_);
  if (tasks_.count(task) > 0) ++misses_;
}

void ModelScaler::Tick(absl::Duration busy) {
  const absl::Time now = clock_->Now();
  absl::MutexLock lock(&mu_);
  if (!started_) {
    started_ = true;
    window_start_ = now;
    busy_at_start_ = busy;
    return;
  }
  const absl::Duration length = now - window_start_;
  if (length < options_.window) return;
  const double utilization = absl::FDivDuration(
      busy - busy_at_start_, length * std::max(1, options_.workers));
  for (auto& [name, state] : tasks_) {
    const double rate = state.released / absl::ToDoubleSeconds(length);
    state.rate_hz = state.rate_hz == 0 ? rate
                                       : kRateWeight * rate +
                                             (1 - kRateWeight) * state.rate_hz;
    state.released = 0;
  }
  // The profile's figures against what the workers did: the predictions
  // are scaled by the measured ratio (contention, batching and exits the
  // profile does not see), smoothed over windows.
  // Only an unsaturated window says what the demand was.
  calibration_ = 1;
  const double modelled = PredictedUtilization(nullptr, 0);
  if (modelled > 0.05 && utilization < options_.degrade_utilization) {
    measured_ratio_ = std::clamp(kRateWeight * (utilization / modelled) +
                                     (1 - kRateWeight) * measured_ratio_,
                                 0.25, 4.0);
  }
  calibration_ = measured_ratio_;
  if (options_.enabled) CloseWindow(now, utilization);
  misses_ = 0;
  window_start_ = now;
  busy_at_start_ = busy;
}

double ModelScaler::PredictedUtilization(const State* changed,
                                         size_t index) const {
  double load = 0;
  for (const auto& [name, state] : tasks_) {
    const size_t i = &state == changed ? index : state.index;
    load += state.rate_hz * absl::ToDoubleSeconds(state.task.work[i]);
  }
  return calibration_ * load / std::max(1, options_.workers);
}

void ModelScaler::Move(State* state, int step, absl::Time at,
                       const std::string& why) {
  const int from = state->task.levels[state->index];
  state->index += step;
  const int to = state->task.levels[state->index];
  TANDEM_LOG(INFO) << "scaling: task '" << state->task.name << "' level "
                   << from << " -> " << to << " (" << LevelName(to)
                   << "): " << why;
  if (changes_.size() == kMaxChanges) changes_.erase(changes_.begin());
  changes_.push_back({at, state->task.name, from, to, why});
}

void ModelScaler::CloseWindow(absl::Time end, double utilization) {
  const bool pressure =
      misses_ > 0 || utilization > options_.degrade_utilization;
  if (pressure) {
    calm_windows_ = 0;
    const std::string why = absl::StrFormat(
        "%d misses, workers %.0f%% busy in the last %s", misses_,
        100 * utilization, absl::FormatDuration(options_.window));
    // One step at least; more while the predicted load stays above the
    // degrade mark. Lowest criticality first; within a level, the step
    // that frees the most.
    for (bool first = true;; first = false) {
      State* pick = nullptr;
      double pick_saving = 0;
      for (auto& [name, state] : tasks_) {
        if (state.index + 1 >= state.task.levels.size()) continue;
        const double saving =
            state.rate_hz *
            absl::ToDoubleSeconds(state.task.work[state.index] -
                                  state.task.work[state.index + 1]);
        if (pick == nullptr ||
            state.task.criticality < pick->task.criticality ||
            (state.task.criticality == pick->task.criticality &&
             saving > pick_saving)) {
          pick = &state;
          pick_saving = saving;
        }
      }
      if (pick == nullptr) return;  // Everything is as cheap as it goes.
      if (!first &&
          PredictedUtilization(nullptr, 0) <= options_.degrade_utilization) {
        return;
      }
      Move(pick, +1, end, why);
    }
  }
  if (misses_ > 0 || utilization >= options_.restore_utilization) {
    calm_windows_ = 0;
    return;
  }
  if (++calm_windows_ < options_.restore_windows) return;
  // Highest criticality first; within a level, the cheapest restore. Only
  // when the load predicted after it stays calm.
  State* pick = nullptr;
  for (auto& [name, state] : tasks_) {
    if (state.index == 0) continue;
    if (pick == nullptr || state.task.criticality > pick->task.criticality)
      pick = &state;
  }
  if (pick == nullptr) return;
  const double predicted = PredictedUtilization(pick, pick->index - 1);
  if (predicted >= options_.restore_utilization) return;
  calm_windows_ = 0;
  Move(pick, -1, end,
       absl::StrFormat("%d calm windows, workers %.0f%% busy, %.0f%% "
                       "predicted after restoring",
                       options_.restore_windows, 100 * utilization,
                       100 * predicted));
}

ScalerTask ScalerLevels(std::string name, int criticality, absl::Duration full,
                        std::optional<absl::Duration> at_floor, bool offload,
                        std::optional<absl::Duration> forced) {
  ScalerTask task;
  task.name = std::move(name);
  task.criticality = criticality;
  task.work = {full};
  auto add = [&task](int level, absl::Duration work) {
    if (work >= task.work.back()) return;
    task.levels.push_back(level);
    task.work.push_back(work);
  };
  if (at_floor.has_value()) add(1, *at_floor);
  if (offload) {
    add(2, absl::ZeroDuration());
  } else if (forced.has_value()) {
    add(3, *forced);
  }
  return task;
}

int ModelScaler::Level(const std::string& task) const {
  absl::MutexLock lock(&mu_);
  auto it = tasks_.find(task);
  return it == tasks_.end() ? 0 : it->second.task.levels[it->second.index];
}

std::vector<ModelScaler::Change> ModelScaler::Changes() const {
  absl::MutexLock lock(&mu_);
  return changes_;
}

std::string ModelScaler::Describe() const {
  absl::MutexLock lock(&mu_);
  std::string out;
  for (const auto& [name, state] : tasks_) {
    const int level = state.task.levels[state.index];
    absl::StrAppendFormat(&out, "%stask '%s' (criticality %d): level %d (%s)",
                          out.empty() ? "" : "; ", name, state.task.criticality,
                          level, LevelName(level));
  }
  return out;
}

}  // namespace tandem
