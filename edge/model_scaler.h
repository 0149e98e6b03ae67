// Multi-level model scaling for the edge's real-time tasks: under overload
// or deadline risk, degrade one task at a time — lowest criticality first —
// through cheaper settings, never below the task's accuracy floor; restore
// as load falls, with hysteresis. The agent maps a level to a route:
//
//   0  the full plan;
//   1  exit thresholds lowered to the task's accuracy floor;
//   2  more offloading (split 0; with a cloud, when the config asks for it);
//   3  forced exit at the earliest exit that meets the floor, on the edge.
//
// A task only takes the levels it has (level 2 or 3, not both; no exit
// meeting the floor: no level 3; no level that would not save work);
// ScalerTask lists them with each one's predicted edge work per job
// (ScalerLevels builds it).
//
// The controller judges windows of `window` length: a window with a miss,
// or whose workers were busier than `degrade_utilization`, degrades one
// step; `restore_windows` windows in a row without a miss and below
// `restore_utilization` restore one step — and only when the load predicted
// after restoring (each task's measured rate × its work at the level) stays
// below `restore_utilization`, so a restore does not re-create the overload
// it follows. Predictions come from the profile's work per level, scaled by
// the measured ratio of real to predicted utilization (contention, exits
// and packing the profile does not see). Decisions are lazy: made in Tick,
// from the injected clock.
//
// Torch-free and thread-safe.
#ifndef TANDEM_EDGE_MODEL_SCALER_H_
#define TANDEM_EDGE_MODEL_SCALER_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace tandem {

struct ScalerTask {
  std::string name;
  int criticality = 0;
  // The levels this task may take, ascending (always starts with 0), and the
  // predicted edge work of one job at each.
  std::vector<int> levels = {0};
  std::vector<absl::Duration> work = {absl::ZeroDuration()};
};

// A task's levels from what one job costs the edge at each: `full` (level
// 0), `at_floor` (1), `offload` (2: the edge only sends), else `forced` (3).
// A level is kept only when it costs less than the last one kept: forcing
// every job to the earliest exit that meets the floor is no degradation
// when most jobs leave earlier at their thresholds. Absent figures
// (nullopt) are left out.
ScalerTask ScalerLevels(std::string name, int criticality, absl::Duration full,
                        std::optional<absl::Duration> at_floor, bool offload,
                        std::optional<absl::Duration> forced);

class ModelScaler {
 public:
  struct Options {
    absl::Duration window = absl::Milliseconds(100);
    double degrade_utilization = 0.9;
    double restore_utilization = 0.6;
    int restore_windows = 4;
    int workers = 1;
    bool enabled = true;
  };

  // One change, for logs, GetPlan and the bench.
  struct Change {
    absl::Time at;
    std::string task;
    int from = 0;
    int to = 0;
    std::string why;
  };

  ModelScaler(std::vector<ScalerTask> tasks, Options options, Clock* clock);

  // A job of `task` was released / settled (missed: failed or late).
  void OnRelease(const std::string& task) ABSL_LOCKS_EXCLUDED(mu_);
  void OnOutcome(const std::string& task, bool missed) ABSL_LOCKS_EXCLUDED(mu_);

  // Closes every window that has ended by now; `busy` is the workers' total
  // busy time so far (BlockScheduler::Counters::busy).
  void Tick(absl::Duration busy) ABSL_LOCKS_EXCLUDED(mu_);

  // The level `task` runs at now; 0 for tasks the scaler does not know.
  int Level(const std::string& task) const ABSL_LOCKS_EXCLUDED(mu_);
  // Every change so far (the last 256), oldest first.
  std::vector<Change> Changes() const ABSL_LOCKS_EXCLUDED(mu_);
  // "task a: level 1 (...); task b: level 0": the current state in words.
  std::string Describe() const ABSL_LOCKS_EXCLUDED(mu_);

  // What a level does, in words ("exit thresholds at the accuracy floor").
  static const char* LevelName(int level);

 private:
  struct State {
    ScalerTask task;
    size_t index = 0;      // Into task.levels.
    int64_t released = 0;  // In the current window.
    double rate_hz = 0;    // Releases per second, smoothed over windows.
  };

  // One window ended: the decision.
  void CloseWindow(absl::Time end, double utilization)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Move(State* state, int step, absl::Time at, const std::string& why)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Predicted utilization of every task at its current level, with `changed`
  // at level index `index` instead.
  double PredictedUtilization(const State* changed, size_t index) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  Clock* const clock_;
  mutable absl::Mutex mu_;
  std::map<std::string, State> tasks_ ABSL_GUARDED_BY(mu_);
  absl::Time window_start_ ABSL_GUARDED_BY(mu_);
  absl::Duration busy_at_start_ ABSL_GUARDED_BY(mu_);
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  int64_t misses_ ABSL_GUARDED_BY(mu_) = 0;  // In the current window.
  int calm_windows_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<Change> changes_ ABSL_GUARDED_BY(mu_);
  // Measured over predicted utilization, smoothed; applied to predictions.
  double measured_ratio_ ABSL_GUARDED_BY(mu_) = 1;
  double calibration_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace tandem

#endif  // TANDEM_EDGE_MODEL_SCALER_H_
