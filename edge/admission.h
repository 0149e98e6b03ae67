// Admission control for the edge's real-time task set: can the declared
// tasks keep their deadlines on this device, at the cheapest setting each
// task allows, from the measured block profiles?
//
// The test is the density bound for global EDF on `workers` identical
// workers (Goossens, Funk and Baruah 2003): with density δ_i = C_i /
// min(D_i, T_i), the set is schedulable when Σ δ_i ≤ m − (m − 1) · max δ_i
// (on one worker: Σ δ_i ≤ 1). Criticality levels are served in strict
// priority, so each level is tested together with every level above it: a
// task set that fits only when low-criticality work is left out still
// admits its critical tasks, and the refusal names the task that broke it.
// The bound is sufficient, not necessary: it may refuse a set that would
// have fit, never admit one that cannot.
//
// Torch-free: the agent fills `cheapest_work` from its profiles (the
// earliest allowed exit, or the edge part of the most offloading plan).
#ifndef TANDEM_EDGE_ADMISSION_H_
#define TANDEM_EDGE_ADMISSION_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace tandem {

struct RtTask {
  std::string name;
  // Minimum time between two releases; InfiniteDuration for a task that
  // arrives only now and then (sporadic: give its minimum inter-arrival).
  absl::Duration period = absl::InfiniteDuration();
  absl::Duration deadline;  // Relative.
  int criticality = 0;      // Larger is more critical.
  // Edge time of one job at the cheapest setting the task's accuracy floor
  // allows, and at its full setting.
  absl::Duration cheapest_work;
  absl::Duration full_work;
};

struct AdmissionResult {
  // OK, or RESOURCE_EXHAUSTED naming the first task (highest criticality
  // first, then the order given) whose level no longer fits, with figures.
  absl::Status status;
  // Per criticality level, highest first: the density of that level and
  // every level above it, at the cheapest and at the full settings, and the
  // bound it is held to.
  struct Level {
    int criticality = 0;
    double cheapest_density = 0;
    double full_density = 0;
    double bound = 0;
  };
  std::vector<Level> levels;
  // One line per level and a verdict, for `tandem plan`-style output.
  std::string explanation;
};

// INVALID_ARGUMENT for a task with a deadline or period <= 0 or work < 0.
AdmissionResult AdmitTasks(const std::vector<RtTask>& tasks, int workers);

}  // namespace tandem

#endif  // TANDEM_EDGE_ADMISSION_H_
