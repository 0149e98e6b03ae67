#include "models/codec_kernels.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace tandem {
namespace {

TEST(Half, VectorPathMatchesScalarReference) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-70000, 70000);
  std::vector<float> in(1027);  // Not a multiple of the vector width.
  for (float& x : in) x = dist(rng) * (rng() % 2 ? 1e-4f : 1.0f);
  in[3] = 0.0f;
  in[4] = -0.0f;
  in[5] = 6e-8f;  // FP16 subnormal.
  std::vector<uint16_t> fast(in.size());
  FloatToHalf(in.data(), fast.data(), in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    ASSERT_EQ(fast[i], FloatToHalfScalar(in[i])) << "x=" << in[i];
  }
  std::vector<float> back(in.size());
  HalfToFloat(fast.data(), back.data(), fast.size());
  for (size_t i = 0; i < in.size(); ++i) {
    ASSERT_EQ(back[i], HalfToFloatScalar(fast[i]));
  }
}

TEST(Half, RoundTripErrorWithinHalfAnUlp) {
  for (float x : {1.0f, 0.1f, -3.14159f, 1000.5f, 65000.0f, 1e-3f}) {
    const float y = HalfToFloatScalar(FloatToHalfScalar(x));
    EXPECT_LE(std::fabs(y - x), std::fabs(x) * std::ldexp(1.0f, -11)) << x;
  }
}

TEST(Half, SaturatesFiniteAndKeepsSpecials) {
  std::vector<float> in = {1e6f,     -1e6f, INFINITY, -INFINITY, NAN,
                           65504.0f, 1e6f,  1e6f,     1e6f};  // 9: both paths.
  std::vector<uint16_t> out(in.size());
  FloatToHalf(in.data(), out.data(), in.size());
  std::vector<float> back(in.size());
  HalfToFloat(out.data(), back.data(), out.size());
  EXPECT_EQ(back[0], kMaxHalf);
  EXPECT_EQ(back[1], -kMaxHalf);
  EXPECT_EQ(back[2], INFINITY);
  EXPECT_EQ(back[3], -INFINITY);
  EXPECT_TRUE(std::isnan(back[4]));
  EXPECT_EQ(back[5], kMaxHalf);
  EXPECT_EQ(back[8], kMaxHalf);
}

TEST(FiniteMinMax, FindsRangeAndRejectsNonFinite) {
  std::vector<float> v(100);
  for (int i = 0; i < 100; ++i) v[i] = static_cast<float>(i) - 42.5f;
  float lo, hi;
  ASSERT_TRUE(FiniteMinMax(v.data(), v.size(), &lo, &hi));
  EXPECT_EQ(lo, -42.5f);
  EXPECT_EQ(hi, 56.5f);
  for (size_t pos : {size_t{0}, size_t{37}, size_t{99}}) {
    for (float bad : {NAN, INFINITY, -INFINITY}) {
      std::vector<float> w = v;
      w[pos] = bad;
      EXPECT_FALSE(FiniteMinMax(w.data(), w.size(), &lo, &hi))
          << pos << " " << bad;
    }
  }
}

TEST(Affine, ZeroIsExactAndErrorIsBounded) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> dist(-2.0f, 9.0f);
  std::vector<float> in(4096);
  for (float& x : in) x = dist(rng);
  in[10] = 0.0f;
  float lo, hi;
  ASSERT_TRUE(FiniteMinMax(in.data(), in.size(), &lo, &hi));
  const AffineParams p = ChooseAffineParams(lo, hi);
  std::vector<uint8_t> q(in.size());
  QuantizeAffine(in.data(), q.data(), in.size(), p);
  std::vector<float> out(in.size());
  DequantizeAffine(q.data(), out.data(), q.size(), p);
  EXPECT_EQ(out[10], 0.0f);
  for (size_t i = 0; i < in.size(); ++i) {
    ASSERT_LE(std::fabs(out[i] - in[i]), p.scale * 0.5f * 1.0001f) << i;
  }
}

TEST(Affine, ConstantZeroTensor) {
  const AffineParams p = ChooseAffineParams(0, 0);
  EXPECT_GT(p.scale, 0);
  std::vector<float> in(5, 0.0f), out(5, 1.0f);
  std::vector<uint8_t> q(5);
  QuantizeAffine(in.data(), q.data(), 5, p);
  DequantizeAffine(q.data(), out.data(), 5, p);
  for (float x : out) EXPECT_EQ(x, 0.0f);
}

// Every position of a 19-element run (two vectors and a tail) and every kind
// of non-finite value is caught by each checked kernel.
TEST(FiniteChecks, CatchNonFiniteValuesAtEveryPosition) {
  constexpr size_t kN = 19;
  for (float bad : {NAN, INFINITY, -INFINITY}) {
    for (size_t at = 0; at < kN; ++at) {
      SCOPED_TRACE(::testing::Message() << "value " << bad << " at " << at);
      std::vector<float> in(kN, 1.5f);
      in[at] = bad;
      std::vector<float> copy(kN);
      EXPECT_FALSE(CopyFinite(in.data(), copy.data(), kN));
      EXPECT_EQ(std::memcmp(in.data(), copy.data(), 4 * kN), 0);
      EXPECT_FALSE(AllFinite(in.data(), kN));
      EXPECT_EQ(FirstNonFinite(in.data(), kN), at);
      std::vector<uint16_t> half(kN);
      EXPECT_FALSE(FloatToHalfFinite(in.data(), half.data(), kN));
      std::vector<float> back(kN);
      EXPECT_FALSE(HalfToFloatFinite(half.data(), back.data(), kN));
    }
  }
}

TEST(FiniteChecks, PassFiniteValuesAndMatchTheUncheckedKernels) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> dist(-1e6f, 1e6f);
  std::vector<float> in(1001);
  for (float& x : in) x = dist(rng);
  in[7] = std::numeric_limits<float>::max();  // Finite: saturates in FP16.
  in[8] = -0.0f;
  std::vector<float> copy(in.size());
  EXPECT_TRUE(CopyFinite(in.data(), copy.data(), in.size()));
  EXPECT_EQ(copy, in);
  EXPECT_TRUE(AllFinite(in.data(), in.size()));
  EXPECT_EQ(FirstNonFinite(in.data(), in.size()), in.size());
  std::vector<uint16_t> checked(in.size()), plain(in.size());
  EXPECT_TRUE(FloatToHalfFinite(in.data(), checked.data(), in.size()));
  FloatToHalf(in.data(), plain.data(), in.size());
  EXPECT_EQ(checked, plain);
  std::vector<float> back_checked(in.size()), back_plain(in.size());
  EXPECT_TRUE(
      HalfToFloatFinite(checked.data(), back_checked.data(), in.size()));
  HalfToFloat(plain.data(), back_plain.data(), in.size());
  EXPECT_EQ(back_checked, back_plain);
  EXPECT_TRUE(AllFinite(nullptr, 0));
}

}  // namespace
}  // namespace tandem
