// libFuzzer target: the tensor decoder both daemons run on every request
// (models/tensor_codec.h DecodeTensor: validation, zstd, FP16, 8-bit affine,
// the NaN/infinity refusal).
//
// Input: a little-endian uint16 N, N bytes of a serialized
// tandem.v1.TensorSpec, then the payload. A decoded tensor must have the
// spec's shape and, for floating types, only finite values; anything else
// traps.
#include <torch/torch.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "models/tensor_codec.h"
#include "tandem/v1/tensor.pb.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const size_t spec_size = data[0] | (size_t{data[1]} << 8);
  if (size - 2 < spec_size) return 0;
  tandem::v1::TensorSpec spec;
  if (!spec.ParseFromArray(data + 2, static_cast<int>(spec_size))) return 0;
  const absl::string_view payload(
      reinterpret_cast<const char*>(data) + 2 + spec_size,
      size - 2 - spec_size);
  tandem::DecodeLimits limits;
  limits.max_tensor_bytes = 1 << 20;  // Keeps iterations fast.
  absl::StatusOr<at::Tensor> tensor =
      tandem::DecodeTensor(spec, payload, limits);
  if (!tensor.ok()) return 0;
  if (tensor->dim() != spec.shape_size()) __builtin_trap();
  for (int i = 0; i < spec.shape_size(); ++i) {
    if (tensor->size(i) != spec.shape(i)) __builtin_trap();
  }
  if (tensor->is_floating_point() && tensor->numel() > 0 &&
      !torch::isfinite(*tensor).all().item<bool>()) {
    __builtin_trap();  // The decoder promises finite values.
  }
  return 0;
}
