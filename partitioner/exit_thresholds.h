// Choosing exit thresholds from a model's calibration for a request's
// accuracy floor. Pure: no I/O, no clocks, no LibTorch.
#ifndef TANDEM_PARTITIONER_EXIT_THRESHOLDS_H_
#define TANDEM_PARTITIONER_EXIT_THRESHOLDS_H_

#include <map>

#include "tandem/v1/model_config.pb.h"

namespace tandem {

// Thresholds (max softmax probability) by exit block for the early exits a
// request may leave at; the final exit is implied and never listed.
//
// With min_accuracy <= 0 every early exit uses its calibrated threshold
// (`overrides` win where given). Otherwise an exit is kept only if some
// calibration point reaches min_accuracy on the samples it lets out; the
// lowest such threshold is used (letting out the most samples), never lower
// than the calibrated one. Exits whose calibration never reaches the floor are
// left out, so the request runs on to a deeper, more accurate exit.
std::map<int, float> ChooseExitThresholds(
    const tandem::v1::ModelConfig& config, float min_accuracy,
    const std::map<int, float>& overrides = {});

}  // namespace tandem

#endif  // TANDEM_PARTITIONER_EXIT_THRESHOLDS_H_
