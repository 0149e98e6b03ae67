// Checks of a model package's config.pbtxt on its own, before its
// TorchScript is read. Torch-free, so the fuzz targets reach it.
#ifndef TANDEM_MODELS_MODEL_CONFIG_H_
#define TANDEM_MODELS_MODEL_CONFIG_H_

#include "absl/status/status.h"
#include "tandem/v1/model_config.pb.h"

namespace tandem {

// The platform every package declares.
inline constexpr char kModelPlatform[] = "tandem_torchscript";

// INVALID_ARGUMENT naming the field: empty name, another platform, no
// blocks, an input that is not FP32 or whose dims are not 1 to 7 positive
// numbers, a negative max_batch_size, exits that do not ascend within the
// blocks or do not end at the last one, thresholds outside [0, 1].
absl::Status ValidateModelConfig(const tandem::v1::ModelConfig& config);

}  // namespace tandem

#endif  // TANDEM_MODELS_MODEL_CONFIG_H_
