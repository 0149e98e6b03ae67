// Mapping between the SDK's plain C++ types and the EdgeService messages.
// Internal to the SDK (tandem::client); pure functions, thread-safe.
#ifndef TANDEM_EDGE_SDK_WIRE_CONVERSION_H_
#define TANDEM_EDGE_SDK_WIRE_CONVERSION_H_

#include <string>

#include "tandem/client.h"
#include "tandem/v1/edge_service.pb.h"

namespace tandem {
namespace client_internal {

// Name of the one input tensor a request carries.
inline constexpr char kInputTensorName[] = "input";

tandem::v1::InferRequest BuildInferRequest(const std::string& model,
                                           const InputTensor& input,
                                           const InferOptions& options);

InferResult ToInferResult(const tandem::v1::InferResponse& response);

ModelInfo ToModelInfo(const tandem::v1::ModelSummary& summary);

}  // namespace client_internal
}  // namespace tandem

#endif  // TANDEM_EDGE_SDK_WIRE_CONVERSION_H_
