// Range checks on the fields of the two services' requests, made before any
// tensor is decoded or any work is queued. Torch-free, so the edge, the cloud
// and the fuzz targets share one definition of a well-formed request.
//
// The contract (also in docs/design.md, "Status codes"):
//   - exactly one input tensor with one raw_input_contents entry;
//   - min_accuracy in [0, 1] (NaN refused);
//   - top_k >= 0: 0 means 1, values above the class count are clamped to it
//     (the answer simply lists every class);
//   - split_point (edge) in [0, num_blocks], start_block (cloud) in
//     [0, num_blocks);
//   - exit thresholds (cloud) in [0, 1], keyed by a block that has an exit
//     head and is not before start_block;
//   - deadline_remaining_us (cloud) >= 0 (0: none).
// Each violation is INVALID_ARGUMENT with a message naming the field.
#ifndef TANDEM_MODELS_REQUEST_CHECKS_H_
#define TANDEM_MODELS_REQUEST_CHECKS_H_

#include <cstdint>

#include "absl/status/status.h"
#include "tandem/v1/cloud_service.pb.h"
#include "tandem/v1/edge_service.pb.h"
#include "tandem/v1/model_config.pb.h"

namespace tandem {

absl::Status CheckInferRequest(const tandem::v1::InferRequest& request,
                               const tandem::v1::ModelConfig& config);

absl::Status CheckContinueRequest(const tandem::v1::ContinueRequest& request,
                                  const tandem::v1::ModelConfig& config);

// The number of classes to answer with for a checked request's top_k (0
// means 1); TopK clamps it further to the class count.
inline int EffectiveTopK(int32_t top_k) { return top_k > 0 ? top_k : 1; }

}  // namespace tandem

#endif  // TANDEM_MODELS_REQUEST_CHECKS_H_
