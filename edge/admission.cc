#include "edge/admission.h"

#include <algorithm>
#include <functional>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace tandem {
namespace {

double Density(absl::Duration work, const RtTask& task) {
  const absl::Duration window = std::min(task.deadline, task.period);
  return absl::FDivDuration(work, window);
}

double Bound(int workers, double max_density) {
  return workers - (workers - 1) * max_density;
}

}  // namespace

AdmissionResult AdmitTasks(const std::vector<RtTask>& tasks, int workers) {
  AdmissionResult result;
  if (workers < 1) {
    result.status = absl::InvalidArgumentError("admission needs a worker");
    return result;
  }
  std::set<int, std::greater<int>> levels;
  for (const RtTask& task : tasks) {
    if (task.deadline <= absl::ZeroDuration() ||
        task.period <= absl::ZeroDuration() ||
        task.cheapest_work < absl::ZeroDuration() ||
        task.full_work < task.cheapest_work) {
      result.status = absl::InvalidArgumentError(absl::StrCat(
          "task '", task.name,
          "': deadline and period must be > 0 and 0 <= cheapest work <= "
          "full work"));
      return result;
    }
    levels.insert(task.criticality);
  }
  double cheapest = 0, full = 0, max_cheapest = 0, max_full = 0;
  for (int level : levels) {
    for (const RtTask& task : tasks) {
      if (task.criticality != level) continue;
      const double d = Density(task.cheapest_work, task);
      cheapest += d;
      max_cheapest = std::max(max_cheapest, d);
      full += Density(task.full_work, task);
      max_full = std::max(max_full, Density(task.full_work, task));
      const double bound = Bound(workers, max_cheapest);
      if (cheapest > bound + 1e-9 && result.status.ok()) {
        result.status = absl::ResourceExhaustedError(absl::StrFormat(
            "task '%s' (criticality %d) cannot keep its deadlines: at the "
            "cheapest setting it allows, it needs %.2f ms every %.2f ms "
            "(deadline %.2f ms), and with the tasks at or above its level "
            "the density is %.3f, above the bound %.3f on %d worker%s",
            task.name, level, absl::ToDoubleMilliseconds(task.cheapest_work),
            absl::ToDoubleMilliseconds(task.period),
            absl::ToDoubleMilliseconds(task.deadline), cheapest, bound, workers,
            workers == 1 ? "" : "s"));
      }
    }
    AdmissionResult::Level out;
    out.criticality = level;
    out.cheapest_density = cheapest;
    out.full_density = full;
    out.bound = Bound(workers, max_cheapest);
    result.levels.push_back(out);
    absl::StrAppendFormat(
        &result.explanation,
        "criticality >= %d: density %.3f at the cheapest settings, %.3f at "
        "full accuracy (bound %.3f): %s\n",
        level, out.cheapest_density, out.full_density, out.bound,
        out.cheapest_density > out.bound + 1e-9 ? "does not fit"
        : out.full_density > Bound(workers, max_full) + 1e-9
            ? "fits only by scaling models down"
            : "fits at full accuracy");
  }
  absl::StrAppend(&result.explanation,
                  result.status.ok() ? "admitted" : result.status.ToString(),
                  "\n");
  return result;
}

}  // namespace tandem
