#include "models/tensor_codec.h"

#include <torch/torch.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/types/span.h"
#include "common/status_macros.h"
#include "models/codec_kernels.h"
#include "models/compression.h"
#include "models/torch_status.h"

namespace tandem {
namespace {

using tandem::v1::TensorSpec;

torch::Dtype TorchDtype(DataType type) {
  switch (type) {
    case DataType::kBool:
      return torch::kBool;
    case DataType::kUint8:
      return torch::kUInt8;
    case DataType::kInt8:
      return torch::kInt8;
    case DataType::kInt16:
      return torch::kInt16;
    case DataType::kInt32:
      return torch::kInt32;
    case DataType::kInt64:
      return torch::kInt64;
    case DataType::kFp16:
      return torch::kHalf;
    case DataType::kBf16:
      return torch::kBFloat16;
    case DataType::kFp32:
      return torch::kFloat32;
    case DataType::kFp64:
      return torch::kFloat64;
  }
  return torch::kFloat32;
}

// Quantizes `n` floats of a contiguous [outer, channels, inner] layout with
// one parameter set per channel (channels == 1: per tensor).
absl::Status EncodeAffine(const float* data, int64_t outer, int64_t channels,
                          int64_t inner, TensorSpec* spec, uint8_t* out) {
  std::vector<AffineParams> params(channels);
  for (int64_t c = 0; c < channels; ++c) {
    float lo = 0, hi = 0;
    for (int64_t o = 0; o < outer; ++o) {
      float run_lo, run_hi;
      if (!FiniteMinMax(data + (o * channels + c) * inner, inner, &run_lo,
                        &run_hi)) {
        return absl::InvalidArgumentError(
            "tensor: AFFINE_UINT8 cannot encode NaN or infinite values");
      }
      if (inner > 0) {
        lo = std::min(lo, run_lo);
        hi = std::max(hi, run_hi);
      }
    }
    params[c] = ChooseAffineParams(lo, hi);
    spec->add_scale(params[c].scale);
    spec->add_zero_point(params[c].zero_point);
  }
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t c = 0; c < channels; ++c) {
      const int64_t offset = (o * channels + c) * inner;
      QuantizeAffine(data + offset, out + offset, inner, params[c]);
    }
  }
  return absl::OkStatus();
}

// INVALID_ARGUMENT naming the tensor and its first NaN or infinite element.
absl::Status NonFiniteError(absl::string_view name,
                            absl::Span<const int64_t> shape,
                            const float* values, size_t n) {
  const size_t first = FirstNonFinite(values, n);
  std::vector<int64_t> index(shape.size());
  size_t rest = first;
  for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
    if (shape[d] <= 0) continue;
    index[d] = static_cast<int64_t>(rest % shape[d]);
    rest /= shape[d];
  }
  const float value = first < n ? values[first] : 0.0f;
  return absl::InvalidArgumentError(absl::StrCat(
      name.empty() ? "tensor" : absl::StrCat("tensor '", name, "'"),
      ": element ", first, " [", absl::StrJoin(index, ","), "] is ",
      std::isnan(value) ? "NaN" : (value > 0 ? "+inf" : "-inf"),
      "; non-finite values are refused"));
}

// Non-FP32 floating datatypes travel RAW and are rare: check them through
// torch rather than with a kernel of their own.
bool IsFloating(DataType type) {
  return type == DataType::kFp16 || type == DataType::kBf16 ||
         type == DataType::kFp64;
}

void DecodeAffine(const TensorSpec& spec, const TensorLayout& layout,
                  const uint8_t* in, float* out) {
  if (layout.num_elements == 0) return;
  const int64_t channels = layout.quant_channels;
  const int64_t inner = layout.quant_inner;
  const int64_t outer = layout.num_elements / (channels * inner);
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t c = 0; c < channels; ++c) {
      const int64_t offset = (o * channels + c) * inner;
      DequantizeAffine(in + offset, out + offset, inner,
                       AffineParams{spec.scale(c), spec.zero_point(c)});
    }
  }
}

}  // namespace

absl::StatusOr<DataType> DataTypeOf(const at::Tensor& tensor) {
  switch (tensor.scalar_type()) {
    case torch::kBool:
      return DataType::kBool;
    case torch::kUInt8:
      return DataType::kUint8;
    case torch::kInt8:
      return DataType::kInt8;
    case torch::kInt16:
      return DataType::kInt16;
    case torch::kInt32:
      return DataType::kInt32;
    case torch::kInt64:
      return DataType::kInt64;
    case torch::kHalf:
      return DataType::kFp16;
    case torch::kBFloat16:
      return DataType::kBf16;
    case torch::kFloat32:
      return DataType::kFp32;
    case torch::kFloat64:
      return DataType::kFp64;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("tensor: dtype ", c10::toString(tensor.scalar_type()),
                       " has no wire datatype"));
  }
}

absl::Status EncodeTensor(const at::Tensor& tensor,
                          const EncodeOptions& options, TensorSpec* spec,
                          std::string* payload) {
  return GuardTorch("encoding a tensor", [&]() -> absl::Status {
    ASSIGN_OR_RETURN(const DataType datatype, DataTypeOf(tensor));
    if (options.encoding != tandem::v1::ENCODING_RAW &&
        datatype != DataType::kFp32) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor: ", tandem::v1::Encoding_Name(options.encoding),
                       " encodes FP32 tensors, not ", DataTypeName(datatype)));
    }
    if (tensor.dim() > kMaxRank) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor: rank over ", kMaxRank));
    }
    const at::Tensor t =
        tensor.is_cpu() ? tensor.contiguous() : tensor.cpu().contiguous();
    spec->Clear();
    spec->set_name(options.name);
    spec->set_datatype(std::string(DataTypeName(datatype)));
    for (int64_t d : t.sizes()) spec->add_shape(d);
    spec->set_encoding(options.encoding);
    spec->set_compression(options.compression);

    const int64_t n = t.numel();
    // Encode straight into `payload` unless a compression stage follows.
    std::string staging;
    std::string* encoded = options.compression == tandem::v1::COMPRESSION_NONE
                               ? payload
                               : &staging;
    // FP32 values are checked for NaN and infinity in the same pass that
    // encodes them; other datatypes are copied as they are.
    const bool fp32 = datatype == DataType::kFp32;
    bool finite = true;
    switch (options.encoding) {
      case tandem::v1::ENCODING_RAW:
        encoded->resize(t.nbytes());
        if (fp32) {
          finite = CopyFinite(t.data_ptr<float>(),
                              reinterpret_cast<float*>(encoded->data()), n);
        } else if (n > 0) {
          std::memcpy(encoded->data(), t.data_ptr(), t.nbytes());
        }
        break;
      case tandem::v1::ENCODING_FP16:
        encoded->resize(n * sizeof(uint16_t));
        finite =
            FloatToHalfFinite(t.data_ptr<float>(),
                              reinterpret_cast<uint16_t*>(encoded->data()), n);
        break;
      case tandem::v1::ENCODING_AFFINE_UINT8: {
        int64_t outer = 1, channels = 1, inner = n;
        if (options.quant_axis) {
          const int axis = *options.quant_axis;
          if (axis < 0 || axis >= t.dim()) {
            return absl::InvalidArgumentError(absl::StrCat(
                "tensor: quant_axis ", axis, " outside rank ", t.dim()));
          }
          spec->set_quant_axis(axis);
          channels = t.size(axis);
          outer = 1;
          for (int d = 0; d < axis; ++d) outer *= t.size(d);
          inner = 1;
          for (int d = axis + 1; d < t.dim(); ++d) inner *= t.size(d);
        }
        encoded->resize(n);
        finite = EncodeAffine(t.data_ptr<float>(), outer, channels, inner, spec,
                              reinterpret_cast<uint8_t*>(encoded->data()))
                     .ok();
        break;
      }
      default:
        return absl::InvalidArgumentError(
            absl::StrCat("tensor: unknown encoding ", options.encoding));
    }
    if (!finite) {
      payload->clear();
      return NonFiniteError(options.name, t.sizes(), t.data_ptr<float>(), n);
    }
    spec->set_encoded_bytes(static_cast<int64_t>(encoded->size()));
    if (options.compression == tandem::v1::COMPRESSION_ZSTD) {
      RETURN_IF_ERROR(ZstdCompress(staging, options.zstd_level, payload));
    } else if (options.compression != tandem::v1::COMPRESSION_NONE) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor: unknown compression ", options.compression));
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<at::Tensor> DecodeTensor(const TensorSpec& spec,
                                        absl::string_view payload,
                                        const DecodeLimits& limits) {
  ASSIGN_OR_RETURN(const TensorLayout layout,
                   ValidateTensorSpec(spec, payload.size(), limits));
  std::vector<int64_t> shape(spec.shape().begin(), spec.shape().end());
  return GuardTorch("decoding a tensor", [&]() -> absl::StatusOr<at::Tensor> {
    at::Tensor out = torch::empty(
        shape, torch::TensorOptions().dtype(TorchDtype(layout.datatype)));
    // Decompress into a staging buffer, or for RAW straight into the tensor.
    std::string staging;
    const char* encoded = payload.data();
    if (spec.compression() == tandem::v1::COMPRESSION_ZSTD) {
      char* target = nullptr;
      if (spec.encoding() == tandem::v1::ENCODING_RAW) {
        target = static_cast<char*>(out.data_ptr());
      } else {
        staging.resize(layout.encoded_bytes);
        target = staging.data();
      }
      RETURN_IF_ERROR(
          ZstdDecompressExact(payload, layout.encoded_bytes, target));
      encoded = staging.data();
    }
    // The kernels read FP16 and FP32 payloads as uint16_t / float arrays: a
    // payload at an odd address (protobuf does not promise alignment) is
    // copied first. Found by tests/fuzz/tensor_decode_fuzzer.
    const size_t alignment = spec.encoding() == tandem::v1::ENCODING_FP16
                                 ? alignof(uint16_t)
                             : spec.encoding() == tandem::v1::ENCODING_RAW &&
                                     layout.datatype == DataType::kFp32
                                 ? alignof(float)
                                 : 1;
    std::string aligned;
    if (reinterpret_cast<uintptr_t>(encoded) % alignment != 0) {
      aligned.assign(encoded, static_cast<size_t>(layout.encoded_bytes));
      encoded = aligned.data();
    }
    // NaN and infinity are refused in the pass that decodes (validation has
    // bounded the affine parameters, so 8-bit codes always decode finite).
    const bool fp32 = layout.datatype == DataType::kFp32;
    const size_t n = static_cast<size_t>(layout.num_elements);
    bool finite = true;
    switch (spec.encoding()) {
      case tandem::v1::ENCODING_RAW:
        if (spec.compression() == tandem::v1::COMPRESSION_ZSTD) {
          // Already decompressed into the tensor.
          if (fp32) finite = AllFinite(out.data_ptr<float>(), n);
        } else if (fp32) {
          finite = CopyFinite(reinterpret_cast<const float*>(encoded),
                              out.data_ptr<float>(), n);
        } else if (layout.encoded_bytes > 0) {
          std::memcpy(out.data_ptr(), encoded, layout.encoded_bytes);
        }
        if (IsFloating(layout.datatype) && n > 0) {
          finite = torch::isfinite(out).all().item<bool>();
          if (!finite) {
            return absl::InvalidArgumentError(absl::StrCat(
                spec.name().empty()
                    ? "tensor"
                    : absl::StrCat("tensor '", spec.name(), "'"),
                ": ", spec.datatype(),
                " payload holds NaN or infinite values; they are refused"));
          }
        }
        break;
      case tandem::v1::ENCODING_FP16:
        finite = HalfToFloatFinite(reinterpret_cast<const uint16_t*>(encoded),
                                   out.data_ptr<float>(), n);
        break;
      case tandem::v1::ENCODING_AFFINE_UINT8:
        DecodeAffine(spec, layout, reinterpret_cast<const uint8_t*>(encoded),
                     out.data_ptr<float>());
        break;
      default:
        break;  // Rejected by validation.
    }
    if (!finite) {
      return NonFiniteError(spec.name(), shape, out.data_ptr<float>(), n);
    }
    return out;
  });
}

}  // namespace tandem
