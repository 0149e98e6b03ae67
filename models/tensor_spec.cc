#include "models/tensor_spec.h"

#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "models/compression.h"

namespace tandem {
namespace {

struct DataTypeInfo {
  DataType type;
  absl::string_view name;
  size_t size;
};

constexpr DataTypeInfo kDataTypes[] = {
    {DataType::kBool, "BOOL", 1},   {DataType::kUint8, "UINT8", 1},
    {DataType::kInt8, "INT8", 1},   {DataType::kInt16, "INT16", 2},
    {DataType::kInt32, "INT32", 4}, {DataType::kInt64, "INT64", 8},
    {DataType::kFp16, "FP16", 2},   {DataType::kBf16, "BF16", 2},
    {DataType::kFp32, "FP32", 4},   {DataType::kFp64, "FP64", 8},
};

absl::Status Invalid(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("tensor: ", what));
}

size_t EncodedElementSize(tandem::v1::Encoding encoding, DataType datatype) {
  switch (encoding) {
    case tandem::v1::ENCODING_FP16:
      return 2;
    case tandem::v1::ENCODING_AFFINE_UINT8:
      return 1;
    default:
      return DataTypeSize(datatype);
  }
}

absl::Status ValidateAffine(const tandem::v1::TensorSpec& spec,
                            TensorLayout* layout) {
  const int rank = spec.shape_size();
  int64_t channels = 1;
  int64_t inner = layout->num_elements;
  if (spec.has_quant_axis()) {
    const int axis = spec.quant_axis();
    if (axis < 0 || axis >= rank) {
      return Invalid(
          absl::StrCat("quant_axis ", axis, " is outside rank ", rank));
    }
    channels = spec.shape(axis);
    inner = 1;
    for (int d = axis + 1; d < rank; ++d) inner *= spec.shape(d);
  }
  if (spec.scale_size() != channels || spec.zero_point_size() != channels) {
    return Invalid(absl::StrCat(
        "AFFINE_UINT8 needs ", channels, " scale and zero_point values; got ",
        spec.scale_size(), " and ", spec.zero_point_size()));
  }
  for (int c = 0; c < channels; ++c) {
    const float scale = spec.scale(c);
    if (!std::isfinite(scale) || scale <= 0) {
      return Invalid(absl::StrCat("scale[", c, "] = ", scale,
                                  " is not a positive number"));
    }
    // Codes 0..255 must decode to finite values: 255 * scale may not overflow.
    if (scale > std::numeric_limits<float>::max() / 255) {
      return Invalid(absl::StrCat("scale[", c, "] = ", scale,
                                  " would decode to infinity"));
    }
    if (spec.zero_point(c) < 0 || spec.zero_point(c) > 255) {
      return Invalid(absl::StrCat("zero_point[", c, "] = ", spec.zero_point(c),
                                  " is outside [0, 255]"));
    }
  }
  layout->quant_channels = channels;
  layout->quant_inner = inner;
  return absl::OkStatus();
}

}  // namespace

std::optional<DataType> ParseDataType(absl::string_view name) {
  for (const DataTypeInfo& info : kDataTypes) {
    if (info.name == name) return info.type;
  }
  return std::nullopt;
}

absl::string_view DataTypeName(DataType type) {
  return kDataTypes[static_cast<int>(type)].name;
}

size_t DataTypeSize(DataType type) {
  return kDataTypes[static_cast<int>(type)].size;
}

absl::StatusOr<TensorLayout> ValidateTensorSpec(
    const tandem::v1::TensorSpec& spec, size_t payload_size,
    const DecodeLimits& limits) {
  TensorLayout layout;
  const std::optional<DataType> datatype = ParseDataType(spec.datatype());
  if (!datatype)
    return Invalid(absl::StrCat("unknown datatype '", spec.datatype(), "'"));
  layout.datatype = *datatype;

  if (!tandem::v1::Encoding_IsValid(spec.encoding())) {
    return Invalid(absl::StrCat("unknown encoding ", spec.encoding()));
  }
  if (spec.encoding() != tandem::v1::ENCODING_RAW &&
      *datatype != DataType::kFp32) {
    return Invalid(absl::StrCat(tandem::v1::Encoding_Name(spec.encoding()),
                                " carries FP32 tensors, not ",
                                spec.datatype()));
  }
  if (!tandem::v1::Compression_IsValid(spec.compression())) {
    return Invalid(absl::StrCat("unknown compression ", spec.compression()));
  }

  if (spec.shape_size() > kMaxRank) {
    return Invalid(
        absl::StrCat("rank ", spec.shape_size(), " is over ", kMaxRank));
  }
  const int64_t element_size = static_cast<int64_t>(DataTypeSize(*datatype));
  const int64_t max_elements = limits.max_tensor_bytes / element_size;
  int64_t elements = 1;
  bool over_limit = false;
  for (int d = 0; d < spec.shape_size(); ++d) {
    const int64_t dim = spec.shape(d);
    if (dim < 0)
      return Invalid(absl::StrCat("shape[", d, "] = ", dim, " is negative"));
    if (dim == 0) {
      elements = 0;
      over_limit = false;
      break;
    }
    // Stop multiplying once past the limit: no overflow, same answer.
    if (!over_limit && elements > max_elements / dim) over_limit = true;
    if (!over_limit) elements *= dim;
  }
  if (over_limit || elements > max_elements) {
    return absl::ResourceExhaustedError(
        absl::StrCat("tensor: shape [", absl::StrJoin(spec.shape(), ","),
                     "] of ", spec.datatype(), " is over the limit of ",
                     limits.max_tensor_bytes, " bytes"));
  }
  layout.num_elements = elements;
  layout.decoded_bytes = elements * element_size;
  layout.encoded_bytes = elements * static_cast<int64_t>(EncodedElementSize(
                                        spec.encoding(), *datatype));

  if (spec.compression() == tandem::v1::COMPRESSION_NONE) {
    if (static_cast<int64_t>(payload_size) != layout.encoded_bytes) {
      return Invalid(
          absl::StrCat("payload has ", payload_size, " bytes; shape [",
                       absl::StrJoin(spec.shape(), ","), "] encoded as ",
                       tandem::v1::Encoding_Name(spec.encoding()), " needs ",
                       layout.encoded_bytes));
    }
  } else {
    if (spec.encoded_bytes() != layout.encoded_bytes) {
      return Invalid(absl::StrCat("encoded_bytes ", spec.encoded_bytes(),
                                  " disagrees with the shape, which needs ",
                                  layout.encoded_bytes));
    }
    if (payload_size > MaxCompressedSize(layout.encoded_bytes)) {
      return Invalid(absl::StrCat("compressed payload of ", payload_size,
                                  " bytes is larger than any encoding of ",
                                  layout.encoded_bytes, " bytes"));
    }
  }

  if (spec.encoding() == tandem::v1::ENCODING_AFFINE_UINT8) {
    absl::Status status = ValidateAffine(spec, &layout);
    if (!status.ok()) return status;
  } else if (spec.scale_size() != 0 || spec.zero_point_size() != 0 ||
             spec.has_quant_axis()) {
    return Invalid(
        "scale, zero_point and quant_axis belong to AFFINE_UINT8 only");
  }
  return layout;
}

}  // namespace tandem
