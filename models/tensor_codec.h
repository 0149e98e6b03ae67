// torch::Tensor <-> wire tensor (tandem.v1.TensorSpec + payload bytes).
//
// Encodings (FP32 tensors): RAW is exact; FP16 keeps about 3 significant
// digits (relative error <= 2^-11 within +-65504, saturating beyond);
// AFFINE_UINT8 maps [min(x,0), max(x,0)] onto 0..255, per tensor or per
// channel, with absolute error <= scale / 2 where scale = range / 255.
// Other datatypes travel RAW. Any of them may add zstd.
//
//   EncodeOptions options;
//   options.encoding = tandem::v1::ENCODING_FP16;
//   RETURN_IF_ERROR(EncodeTensor(activation, options, spec, payload));
//   ...
//   ASSIGN_OR_RETURN(torch::Tensor t, DecodeTensor(spec, payload, limits));
#ifndef TANDEM_MODELS_TENSOR_CODEC_H_
#define TANDEM_MODELS_TENSOR_CODEC_H_

#include <ATen/core/Tensor.h>

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "models/tensor_spec.h"
#include "tandem/v1/tensor.pb.h"

namespace tandem {

struct EncodeOptions {
  tandem::v1::Encoding encoding = tandem::v1::ENCODING_RAW;
  tandem::v1::Compression compression = tandem::v1::COMPRESSION_NONE;
  int zstd_level = 1;
  // AFFINE_UINT8 only: quantize per channel along this axis (1 for NCHW).
  std::optional<int> quant_axis;
  std::string name;
};

// Fills `spec` and `payload` (replacing their contents) from `tensor`, which
// may live on any device and have any layout. INVALID_ARGUMENT for a dtype the
// wire has no name for, a lossy encoding of a non-FP32 tensor, or an FP32
// tensor holding NaN or infinity (under any encoding; the message names
// `options.name` and the first such element).
absl::Status EncodeTensor(const at::Tensor& tensor,
                          const EncodeOptions& options,
                          tandem::v1::TensorSpec* spec, std::string* payload);

// Validates (see ValidateTensorSpec) and decodes into a new CPU tensor of the
// spec's datatype (FP32 for FP16 and AFFINE_UINT8 payloads). The tensor owns
// its memory; `payload` may be freed afterwards. A floating-point tensor
// holding NaN or infinity is INVALID_ARGUMENT naming the tensor and (for FP32)
// its first such element: the check shares the decoding pass.
absl::StatusOr<at::Tensor> DecodeTensor(const tandem::v1::TensorSpec& spec,
                                        absl::string_view payload,
                                        const DecodeLimits& limits);

// The wire name of a torch dtype ("FP32"), or INVALID_ARGUMENT.
absl::StatusOr<DataType> DataTypeOf(const at::Tensor& tensor);

}  // namespace tandem

#endif  // TANDEM_MODELS_TENSOR_CODEC_H_
