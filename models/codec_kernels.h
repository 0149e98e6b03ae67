// Element kernels of the tensor codec: FP32 <-> FP16 and FP32 <-> 8-bit affine
// codes. Torch-free, so they are cheap to build, test and benchmark alone.
// All functions are thread-compatible (no shared state besides a one-time
// CPU feature probe).
#ifndef TANDEM_MODELS_CODEC_KERNELS_H_
#define TANDEM_MODELS_CODEC_KERNELS_H_

#include <cstddef>
#include <cstdint>

namespace tandem {

// Largest finite FP16 value; encoding saturates to +-kMaxHalf.
inline constexpr float kMaxHalf = 65504.0f;

// Round to nearest even, saturating finite values to +-kMaxHalf (NaN stays
// NaN, +-inf stays +-inf). Uses F16C where the CPU has it.
void FloatToHalf(const float* in, uint16_t* out, size_t n);
void HalfToFloat(const uint16_t* in, float* out, size_t n);

// The same conversions, folded with a check that costs a multiply and an add
// per element: they return false when any input value is NaN or infinite
// (the output is then complete but must not be used). The codec refuses such
// tensors; bench/codec_bench measures what the check costs.
bool FloatToHalfFinite(const float* in, uint16_t* out, size_t n);
bool HalfToFloatFinite(const uint16_t* in, float* out, size_t n);

// memcpy of `n` floats that also returns false when any is NaN or infinite.
bool CopyFinite(const float* in, float* out, size_t n);
// True when every value is finite.
bool AllFinite(const float* in, size_t n);
// Index of the first NaN or infinite value, or `n` when there is none. Scalar:
// for error messages, after a fast check failed.
size_t FirstNonFinite(const float* in, size_t n);

// Range of `in`. Returns false (leaving min and max unspecified) when any
// value is NaN or infinite.
bool FiniteMinMax(const float* in, size_t n, float* min, float* max);

// x = scale * (q - zero_point), q in [0, 255].
struct AffineParams {
  float scale = 1.0f;
  int32_t zero_point = 0;
};

// Parameters covering [min(lo, 0), max(hi, 0)], so that zero is exact (ReLU
// outputs and padding stay exactly zero). Error after a round trip is at most
// scale / 2 for values in the range.
AffineParams ChooseAffineParams(float lo, float hi);

void QuantizeAffine(const float* in, uint8_t* out, size_t n, AffineParams p);
void DequantizeAffine(const uint8_t* in, float* out, size_t n, AffineParams p);

// Scalar reference conversions (also used for tails of the vector paths).
uint16_t FloatToHalfScalar(float f);
float HalfToFloatScalar(uint16_t h);

}  // namespace tandem

#endif  // TANDEM_MODELS_CODEC_KERNELS_H_
