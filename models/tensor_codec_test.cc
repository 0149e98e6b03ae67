#include "models/tensor_codec.h"

#include <torch/torch.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "models/compression.h"

namespace tandem {
namespace {

using ::tandem::testing::StatusIs;
using ::tandem::v1::Compression;
using ::tandem::v1::Encoding;
using ::tandem::v1::TensorSpec;

struct Encoded {
  TensorSpec spec;
  std::string payload;
};

Encoded MustEncode(const torch::Tensor& t, const EncodeOptions& options) {
  Encoded e;
  const absl::Status status = EncodeTensor(t, options, &e.spec, &e.payload);
  EXPECT_TRUE(status.ok()) << status;
  return e;
}

torch::Tensor MustDecode(const Encoded& e) {
  absl::StatusOr<torch::Tensor> t =
      DecodeTensor(e.spec, e.payload, DecodeLimits{});
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? *t : torch::Tensor();
}

// A ReLU-like activation: many exact zeros, a long positive tail.
torch::Tensor Activation(std::vector<int64_t> shape) {
  torch::manual_seed(11);
  return torch::relu(torch::randn(shape) * 3.0);
}

TEST(TensorCodec, RawIsExactForEveryDatatype) {
  torch::manual_seed(1);
  const std::vector<torch::Tensor> tensors = {
      torch::randn({2, 3, 5}),
      torch::randn({4}, torch::kFloat64),
      torch::randn({3, 3}).to(torch::kHalf),
      torch::randn({3, 3}).to(torch::kBFloat16),
      torch::randint(0, 255, {7, 2}).to(torch::kUInt8),
      torch::randint(-128, 127, {9}).to(torch::kInt8),
      torch::randint(-1000, 1000, {2, 2}).to(torch::kInt16),
      torch::randint(-100000, 100000, {5}).to(torch::kInt32),
      torch::randint(-100000, 100000, {5}).to(torch::kInt64),
      torch::rand({6}) > 0.5,
      torch::randn({0, 4}),      // Empty.
      torch::tensor(3.5f),       // Rank 0.
      torch::randn({4, 6}).t(),  // Not contiguous.
  };
  for (Compression c :
       {tandem::v1::COMPRESSION_NONE, tandem::v1::COMPRESSION_ZSTD}) {
    for (const torch::Tensor& t : tensors) {
      EncodeOptions options;
      options.compression = c;
      const Encoded e = MustEncode(t, options);
      const torch::Tensor back = MustDecode(e);
      ASSERT_EQ(back.scalar_type(), t.scalar_type());
      ASSERT_EQ(back.sizes(), t.sizes());
      EXPECT_TRUE(torch::equal(back, t)) << e.spec.DebugString();
    }
  }
}

TEST(TensorCodec, Fp16ErrorWithinHalfPrecision) {
  const torch::Tensor t = torch::randn({2, 16, 7, 7}) * 100;
  for (Compression c :
       {tandem::v1::COMPRESSION_NONE, tandem::v1::COMPRESSION_ZSTD}) {
    EncodeOptions options;
    options.encoding = tandem::v1::ENCODING_FP16;
    options.compression = c;
    const Encoded e = MustEncode(t, options);
    EXPECT_EQ(e.spec.encoded_bytes(), t.numel() * 2);
    const torch::Tensor back = MustDecode(e);
    ASSERT_EQ(back.scalar_type(), torch::kFloat32);
    // Relative 2^-11 for normal values, absolute 2^-25 below FP16's normals.
    const torch::Tensor bound =
        t.abs() * std::ldexp(1.0, -11) + std::ldexp(1.0, -25);
    EXPECT_TRUE(((back - t).abs() <= bound).all().item<bool>());
  }
}

// Found by tests/fuzz/tensor_decode_fuzzer: FP16 and FP32 payloads were read
// as uint16_t / float arrays wherever they lay, and protobuf does not promise
// an aligned bytes field (UBSan: misaligned load).
TEST(TensorCodec, PayloadsAtOddAddressesDecode) {
  const torch::Tensor t = torch::randn({1, 37});
  for (tandem::v1::Encoding encoding :
       {tandem::v1::ENCODING_RAW, tandem::v1::ENCODING_FP16}) {
    EncodeOptions options;
    options.encoding = encoding;
    const Encoded e = MustEncode(t, options);
    const std::string shifted = "x" + e.payload;  // data() + 1 is odd.
    absl::StatusOr<at::Tensor> back =
        DecodeTensor(e.spec, absl::string_view(shifted).substr(1), {});
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_TRUE(torch::allclose(*back, t, /*rtol=*/1e-3, /*atol=*/1e-3));
  }
}

TEST(TensorCodec, AffineUint8ErrorWithinHalfAStep) {
  const torch::Tensor t = Activation({2, 16, 7, 7}) - 0.5;
  for (std::optional<int> axis :
       {std::optional<int>(), std::optional<int>(1)}) {
    for (Compression c :
         {tandem::v1::COMPRESSION_NONE, tandem::v1::COMPRESSION_ZSTD}) {
      EncodeOptions options;
      options.encoding = tandem::v1::ENCODING_AFFINE_UINT8;
      options.compression = c;
      options.quant_axis = axis;
      const Encoded e = MustEncode(t, options);
      const torch::Tensor back = MustDecode(e);
      ASSERT_EQ(back.sizes(), t.sizes());
      const int channels = axis ? 16 : 1;
      ASSERT_EQ(e.spec.scale_size(), channels);
      for (int ch = 0; ch < channels; ++ch) {
        const torch::Tensor err =
            axis ? (back - t).select(1, ch).abs() : (back - t).abs();
        const double bound = e.spec.scale(ch) * 0.5 * (1 + 1e-5) + 1e-6;
        EXPECT_LE(err.max().item<double>(), bound) << "channel " << ch;
      }
    }
  }
}

TEST(TensorCodec, PerChannelIsNoWorseThanPerTensor) {
  // Channels with very different ranges are the case per-channel is for.
  torch::Tensor t = Activation({1, 8, 10, 10});
  t.select(1, 0).mul_(100);
  double err[2];
  for (int per_channel = 0; per_channel < 2; ++per_channel) {
    EncodeOptions options;
    options.encoding = tandem::v1::ENCODING_AFFINE_UINT8;
    if (per_channel) options.quant_axis = 1;
    err[per_channel] =
        (MustDecode(MustEncode(t, options)) - t).abs().mean().item<double>();
  }
  EXPECT_LT(err[1], err[0] / 2);
}

TEST(TensorCodec, ZstdShrinksSparseActivations) {
  const torch::Tensor t = Activation({1, 64, 14, 14});
  EncodeOptions options;
  options.encoding = tandem::v1::ENCODING_AFFINE_UINT8;
  options.compression = tandem::v1::COMPRESSION_ZSTD;
  const Encoded e = MustEncode(t, options);
  EXPECT_LT(e.payload.size(), static_cast<size_t>(t.numel()));
}

TEST(TensorCodec, EncodeRejectsWhatItCannotCarry) {
  TensorSpec spec;
  std::string payload;
  EncodeOptions fp16;
  fp16.encoding = tandem::v1::ENCODING_FP16;
  EXPECT_THAT(
      EncodeTensor(torch::ones({3}, torch::kInt32), fp16, &spec, &payload),
      StatusIs(absl::StatusCode::kInvalidArgument));
  EncodeOptions affine;
  affine.encoding = tandem::v1::ENCODING_AFFINE_UINT8;
  EXPECT_THAT(EncodeTensor(torch::tensor({1.0f, NAN}), affine, &spec, &payload),
              StatusIs(absl::StatusCode::kInvalidArgument));
  affine.quant_axis = 3;
  EXPECT_THAT(EncodeTensor(torch::ones({2, 2}), affine, &spec, &payload),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(EncodeTensor(torch::ones({2}, torch::kComplexFloat),
                           EncodeOptions{}, &spec, &payload),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

// Puts `value` at flat element `index` of an FP32 payload (RAW or FP16).
void Poke(const TensorSpec& spec, std::string* payload, int index,
          float value) {
  if (spec.encoding() == tandem::v1::ENCODING_FP16) {
    const uint16_t h =
        std::isnan(value) ? 0x7e00 : (value > 0 ? 0x7c00 : 0xfc00);
    std::memcpy(payload->data() + 2 * index, &h, 2);
  } else {
    std::memcpy(payload->data() + 4 * index, &value, 4);
  }
}

TEST(TensorCodec, DecodeRefusesNonFiniteValuesNamingTheElement) {
  const float kSpecials[] = {NAN, INFINITY, -INFINITY};
  const char* kNames[] = {"NaN", "+inf", "-inf"};
  for (auto encoding : {tandem::v1::ENCODING_RAW, tandem::v1::ENCODING_FP16}) {
    for (auto compression :
         {tandem::v1::COMPRESSION_NONE, tandem::v1::COMPRESSION_ZSTD}) {
      // 37 elements: the vector body and the scalar tail both see a bad one.
      for (int index : {0, 13, 36}) {
        for (int v = 0; v < 3; ++v) {
          SCOPED_TRACE(::testing::Message()
                       << Encoding_Name(encoding) << " zstd=" << compression
                       << " index=" << index << " " << kNames[v]);
          EncodeOptions options;
          options.encoding = encoding;
          options.name = "pixels";
          Encoded e = MustEncode(torch::rand({1, 37}), options);
          Poke(e.spec, &e.payload, index, kSpecials[v]);
          if (compression == tandem::v1::COMPRESSION_ZSTD) {
            std::string packed;
            ASSERT_TRUE(ZstdCompress(e.payload, 1, &packed).ok());
            e.spec.set_compression(compression);
            e.spec.set_encoded_bytes(static_cast<int64_t>(e.payload.size()));
            e.payload = packed;
          }
          absl::StatusOr<torch::Tensor> t =
              DecodeTensor(e.spec, e.payload, DecodeLimits{});
          EXPECT_THAT(
              t, StatusIs(absl::StatusCode::kInvalidArgument,
                          ::testing::AllOf(::testing::HasSubstr("'pixels'"),
                                           ::testing::HasSubstr(absl::StrCat(
                                               "element ", index, " [0,", index,
                                               "] is ", kNames[v])))));
        }
      }
    }
  }
}

TEST(TensorCodec, DecodeRefusesAffineScalesThatOverflow) {
  EncodeOptions options;
  options.encoding = tandem::v1::ENCODING_AFFINE_UINT8;
  Encoded e = MustEncode(torch::rand({2, 3}), options);
  e.spec.set_scale(0, std::numeric_limits<float>::max() / 100);
  EXPECT_THAT(DecodeTensor(e.spec, e.payload, DecodeLimits{}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::HasSubstr("would decode to infinity")));
  e.spec.set_scale(0, INFINITY);
  EXPECT_THAT(DecodeTensor(e.spec, e.payload, DecodeLimits{}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(TensorCodec, DecodeRefusesNonFiniteValuesOfOtherFloatTypes) {
  for (auto dtype : {torch::kFloat64, torch::kFloat16, torch::kBFloat16}) {
    Encoded e = MustEncode(torch::tensor({1.0f, NAN, 2.0f}).to(dtype), {});
    EXPECT_THAT(DecodeTensor(e.spec, e.payload, DecodeLimits{}),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         ::testing::HasSubstr("NaN or infinite")));
  }
}

TEST(TensorCodec, EncodeRefusesNonFiniteActivationsUnderEveryEncoding) {
  torch::Tensor t = torch::rand({1, 2, 5, 5});
  t[0][1][2][3] = INFINITY;  // Flat index 25 + 13 = 38.
  for (auto encoding : {tandem::v1::ENCODING_RAW, tandem::v1::ENCODING_FP16,
                        tandem::v1::ENCODING_AFFINE_UINT8}) {
    SCOPED_TRACE(Encoding_Name(encoding));
    EncodeOptions options;
    options.encoding = encoding;
    options.name = "block_2_input";
    TensorSpec spec;
    std::string payload;
    EXPECT_THAT(EncodeTensor(t, options, &spec, &payload),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         ::testing::HasSubstr(
                             "'block_2_input': element 38 [0,1,2,3] is +inf")));
  }
  // Integer tensors have no non-finite values and travel as they are.
  TensorSpec spec;
  std::string payload;
  EXPECT_TRUE(
      EncodeTensor(torch::ones({3}, torch::kInt32), {}, &spec, &payload).ok());
}

// Each case breaks one thing of a valid [2, 3] FP32 tensor.
struct MalformedCase {
  const char* name;
  Encoding encoding;
  Compression compression;
  std::function<void(TensorSpec*, std::string*)> mutate;
  absl::StatusCode code;
};

TEST(TensorCodec, MalformedInputGetsPreciseErrors) {
  const auto kInvalid = absl::StatusCode::kInvalidArgument;
  const auto kExhausted = absl::StatusCode::kResourceExhausted;
  const auto raw = tandem::v1::ENCODING_RAW;
  const auto fp16 = tandem::v1::ENCODING_FP16;
  const auto affine = tandem::v1::ENCODING_AFFINE_UINT8;
  const auto none = tandem::v1::COMPRESSION_NONE;
  const auto zstd = tandem::v1::COMPRESSION_ZSTD;
  const int64_t kMax = std::numeric_limits<int64_t>::max();
  const MalformedCase cases[] = {
      {"unknown datatype", raw, none,
       [](auto* s, auto*) { s->set_datatype("FP8"); }, kInvalid},
      {"BYTES datatype", raw, none,
       [](auto* s, auto*) { s->set_datatype("BYTES"); }, kInvalid},
      {"lowercase datatype", raw, none,
       [](auto* s, auto*) { s->set_datatype("fp32"); }, kInvalid},
      {"negative dim", raw, none, [](auto* s, auto*) { s->set_shape(0, -2); },
       kInvalid},
      {"rank 9", raw, none,
       [](auto* s, auto*) {
         s->clear_shape();
         for (int i = 0; i < 9; ++i) s->add_shape(1);
       },
       kInvalid},
      {"short payload", raw, none, [](auto*, auto* p) { p->pop_back(); },
       kInvalid},
      {"long payload", raw, none, [](auto*, auto* p) { p->push_back('x'); },
       kInvalid},
      {"empty payload", raw, none, [](auto*, auto* p) { p->clear(); },
       kInvalid},
      {"shape mismatch", raw, none, [](auto* s, auto*) { s->set_shape(1, 4); },
       kInvalid},
      {"huge dims", raw, none,
       [](auto* s, auto*) {
         s->set_shape(0, int64_t{1} << 40);
         s->set_shape(1, int64_t{1} << 40);
       },
       kExhausted},
      {"overflowing dims", raw, none,
       [kMax](auto* s, auto*) {
         s->set_shape(0, kMax);
         s->set_shape(1, kMax);
       },
       kExhausted},
      {"over the size cap", raw, none,
       [](auto* s, auto*) { s->set_shape(0, 100000000); }, kExhausted},
      {"unknown encoding", raw, none,
       [](auto* s, auto*) { s->set_encoding(static_cast<Encoding>(99)); },
       kInvalid},
      {"unknown compression", raw, none,
       [](auto* s, auto*) { s->set_compression(static_cast<Compression>(7)); },
       kInvalid},
      {"FP16 of INT32", fp16, none,
       [](auto* s, auto*) { s->set_datatype("INT32"); }, kInvalid},
      {"quantization fields on RAW", raw, none,
       [](auto* s, auto*) { s->add_scale(1); }, kInvalid},
      {"affine without scale", affine, none,
       [](auto* s, auto*) { s->clear_scale(); }, kInvalid},
      {"affine zero scale", affine, none,
       [](auto* s, auto*) { s->set_scale(0, 0); }, kInvalid},
      {"affine NaN scale", affine, none,
       [](auto* s, auto*) { s->set_scale(0, NAN); }, kInvalid},
      {"affine negative scale", affine, none,
       [](auto* s, auto*) { s->set_scale(0, -1); }, kInvalid},
      {"affine zero point 300", affine, none,
       [](auto* s, auto*) { s->set_zero_point(0, 300); }, kInvalid},
      {"affine axis out of range", affine, none,
       [](auto* s, auto*) { s->set_quant_axis(5); }, kInvalid},
      {"affine per-channel count", affine, none,
       [](auto* s, auto*) { s->set_quant_axis(1); }, kInvalid},
      {"corrupt zstd", raw, zstd,
       [](auto*, auto* p) {
         (*p)[p->size() / 2] ^= 0x5a;
         (*p)[0] = 0;
       },
       kInvalid},
      {"zstd of another size", raw, zstd,
       [](auto*, auto* p) {
         ASSERT_TRUE(ZstdCompress(std::string(20, 'a'), 1, p).ok());
       },
       kInvalid},
      {"zstd encoded_bytes lies", raw, zstd,
       [](auto* s, auto*) { s->set_encoded_bytes(4); }, kInvalid},
      {"zstd bomb: huge shape, tiny payload", raw, zstd,
       [](auto* s, auto*) {
         s->set_shape(0, 1 << 30);
         s->set_encoded_bytes((int64_t{1} << 30) * 12);
       },
       kExhausted},
      {"zstd payload over its bound", raw, zstd,
       [](auto*, auto* p) { p->append(std::string(4096, 'z')); }, kInvalid},
  };
  for (const MalformedCase& c : cases) {
    SCOPED_TRACE(c.name);
    EncodeOptions options;
    options.encoding = c.encoding;
    options.compression = c.compression;
    Encoded e = MustEncode(torch::randn({2, 3}), options);
    c.mutate(&e.spec, &e.payload);
    DecodeLimits limits;
    limits.max_tensor_bytes = 64 << 20;
    EXPECT_THAT(DecodeTensor(e.spec, e.payload, limits), StatusIs(c.code));
  }
}

}  // namespace
}  // namespace tandem
