#include "partitioner/exit_thresholds.h"

#include <algorithm>

namespace tandem {

std::map<int, float> ChooseExitThresholds(
    const tandem::v1::ModelConfig& config, float min_accuracy,
    const std::map<int, float>& overrides) {
  std::map<int, float> thresholds;
  const int final_block = config.num_blocks() - 1;
  for (const tandem::v1::ExitConfig& exit : config.exits()) {
    if (exit.block() == final_block) continue;
    const auto override_it = overrides.find(exit.block());
    float threshold =
        override_it != overrides.end() ? override_it->second : exit.threshold();
    if (min_accuracy > 0) {
      bool reachable = false;
      float lowest = 2.0f;
      for (const tandem::v1::CalibrationPoint& point : exit.calibration()) {
        if (point.exit_rate() > 0 && point.accuracy() >= min_accuracy) {
          reachable = true;
          lowest = std::min(lowest, point.threshold());
        }
      }
      if (!reachable) continue;
      threshold = std::max(threshold, lowest);
    }
    thresholds[exit.block()] = threshold;
  }
  return thresholds;
}

}  // namespace tandem
