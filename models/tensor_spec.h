// Validation of wire tensors (tandem.v1.TensorSpec plus payload) before any
// allocation. Torch-free: the cloud, the edge and tools share it.
#ifndef TANDEM_MODELS_TENSOR_SPEC_H_
#define TANDEM_MODELS_TENSOR_SPEC_H_

#include <cstddef>
#include <cstdint>
#include <optional>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tandem/v1/tensor.pb.h"

namespace tandem {

// Element types the codec carries, by their KServe v2 names.
enum class DataType {
  kBool,
  kUint8,
  kInt8,
  kInt16,
  kInt32,
  kInt64,
  kFp16,
  kBf16,
  kFp32,
  kFp64
};

// "FP32" -> kFp32; nullopt for unknown names (and for "BYTES", which has no
// fixed element size).
std::optional<DataType> ParseDataType(absl::string_view name);
absl::string_view DataTypeName(DataType type);
size_t DataTypeSize(DataType type);

inline constexpr int kMaxRank = 8;

// Limits applied while decoding.
struct DecodeLimits {
  // Largest decoded tensor, in bytes; over it: RESOURCE_EXHAUSTED.
  int64_t max_tensor_bytes = int64_t{256} << 20;
};

// What validation learnt about a well-formed tensor.
struct TensorLayout {
  DataType datatype;
  int64_t num_elements = 0;
  int64_t decoded_bytes = 0;  // num_elements * DataTypeSize(datatype).
  int64_t encoded_bytes = 0;  // Payload size once decompressed.
  // AFFINE_UINT8: channel count (1 per tensor) and the elements per channel
  // run: the layout is [outer, channels, inner].
  int64_t quant_channels = 1;
  int64_t quant_inner = 0;
};

// Checks every field of `spec` against a payload of `payload_size` bytes:
// known datatype, encoding and compression; rank <= kMaxRank; dims >= 0;
// element count without overflow; decoded size within limits
// (RESOURCE_EXHAUSTED); payload size equal to what the shape and encoding
// need (for compressed payloads: `encoded_bytes` equal to it and the payload
// no larger than its worst-case compressed size); quantization parameters
// present, finite, positive scales small enough that every code decodes to a
// finite value, zero points in [0, 255]. Everything else
// is INVALID_ARGUMENT with a message naming the field.
absl::StatusOr<TensorLayout> ValidateTensorSpec(
    const tandem::v1::TensorSpec& spec, size_t payload_size,
    const DecodeLimits& limits);

}  // namespace tandem

#endif  // TANDEM_MODELS_TENSOR_SPEC_H_
