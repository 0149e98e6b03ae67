#include "models/codec_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#define TANDEM_X86 1
#endif

namespace tandem {
namespace {

inline uint32_t Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}

inline float FromBits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

#if TANDEM_X86
// CPUID, not __builtin_cpu_supports: clang 14 does not know "f16c" there.
bool HasF16c() {
  static const bool has = [] {
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
    if (!(c & bit_AVX) || !(c & bit_OSXSAVE) || !(c & bit_F16C)) return false;
    // The OS saves the AVX registers (XCR0 bits 1 and 2).
    unsigned lo = 0, hi = 0;
    __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (lo & 6) == 6;
  }();
  return has;
}

// x - x is +0 for finite x and NaN for NaN or infinity; OR-ing those bit
// patterns together keeps a NaN pattern once one appeared. A subtract and an
// OR per vector (the OR's one-cycle latency is the only dependency between
// iterations) tell whether a run is finite.
template <bool kCheck>
__attribute__((target("avx,f16c"))) bool FloatToHalfF16c(const float* in,
                                                         uint16_t* out,
                                                         size_t n) {
  const __m256 hi = _mm256_set1_ps(kMaxHalf);
  const __m256 lo = _mm256_set1_ps(-kMaxHalf);
  const __m256 zero = _mm256_setzero_ps();
  __m256 poison = zero;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 x = _mm256_loadu_ps(in + i);
    if (kCheck) poison = _mm256_or_ps(poison, _mm256_sub_ps(x, x));
    // min/max return their second operand when either is NaN: NaN survives.
    // Infinities are clamped here; restore them below only if present.
    const __m256 clamped = _mm256_max_ps(lo, _mm256_min_ps(hi, x));
    const __m256 is_inf = _mm256_cmp_ps(
        _mm256_and_ps(x, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff))),
        _mm256_set1_ps(INFINITY), _CMP_EQ_OQ);
    x = _mm256_blendv_ps(clamped, x, is_inf);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i),
                     _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
  }
  bool finite = true;
  for (; i < n; ++i) {
    out[i] = FloatToHalfScalar(in[i]);
    if (kCheck) finite = finite && std::isfinite(in[i]);
  }
  return !kCheck || (finite && _mm256_movemask_ps(_mm256_cmp_ps(
                                   poison, zero, _CMP_NEQ_UQ)) == 0);
}

template <bool kCheck>
__attribute__((target("avx,f16c"))) bool HalfToFloatF16c(const uint16_t* in,
                                                         float* out, size_t n) {
  const __m256 zero = _mm256_setzero_ps();
  __m256 poison = zero;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i));
    const __m256 x = _mm256_cvtph_ps(h);
    if (kCheck) poison = _mm256_or_ps(poison, _mm256_sub_ps(x, x));
    _mm256_storeu_ps(out + i, x);
  }
  bool finite = true;
  for (; i < n; ++i) {
    out[i] = HalfToFloatScalar(in[i]);
    if (kCheck) finite = finite && std::isfinite(out[i]);
  }
  return !kCheck || (finite && _mm256_movemask_ps(_mm256_cmp_ps(
                                   poison, zero, _CMP_NEQ_UQ)) == 0);
}

// Copies (or only reads, when out is null) and checks.
__attribute__((target("avx"))) bool CopyFiniteAvx(const float* in, float* out,
                                                  size_t n) {
  const __m256 zero = _mm256_setzero_ps();
  __m256 poison = zero, poison2 = zero;
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {  // Two vectors a step: loads and stores pair.
    const __m256 x = _mm256_loadu_ps(in + i);
    const __m256 y = _mm256_loadu_ps(in + i + 8);
    poison = _mm256_or_ps(poison, _mm256_sub_ps(x, x));
    poison2 = _mm256_or_ps(poison2, _mm256_sub_ps(y, y));
    if (out != nullptr) {
      _mm256_storeu_ps(out + i, x);
      _mm256_storeu_ps(out + i + 8, y);
    }
  }
  poison = _mm256_or_ps(poison, poison2);
  for (; i + 8 <= n; i += 8) {
    const __m256 x = _mm256_loadu_ps(in + i);
    poison = _mm256_or_ps(poison, _mm256_sub_ps(x, x));
    if (out != nullptr) _mm256_storeu_ps(out + i, x);
  }
  bool finite = true;
  for (; i < n; ++i) {
    if (out != nullptr) out[i] = in[i];
    finite = finite && std::isfinite(in[i]);
  }
  return finite &&
         _mm256_movemask_ps(_mm256_cmp_ps(poison, zero, _CMP_NEQ_UQ)) == 0;
}

__attribute__((target("avx"))) bool FiniteMinMaxAvx(const float* in, size_t n,
                                                    float* min, float* max) {
  __m256 vmin = _mm256_set1_ps(INFINITY);
  __m256 vmax = _mm256_set1_ps(-INFINITY);
  // x * 0 is NaN exactly when x is NaN or infinite.
  __m256 poison = _mm256_setzero_ps();
  const __m256 zero = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 x = _mm256_loadu_ps(in + i);
    vmin = _mm256_min_ps(vmin, x);
    vmax = _mm256_max_ps(vmax, x);
    poison = _mm256_add_ps(poison, _mm256_mul_ps(x, zero));
  }
  alignas(32) float lanes_min[8], lanes_max[8], lanes_poison[8];
  _mm256_store_ps(lanes_min, vmin);
  _mm256_store_ps(lanes_max, vmax);
  _mm256_store_ps(lanes_poison, poison);
  float lo = INFINITY, hi = -INFINITY;
  bool finite = true;
  for (int l = 0; l < 8; ++l) {
    lo = std::min(lo, lanes_min[l]);
    hi = std::max(hi, lanes_max[l]);
    finite = finite && lanes_poison[l] == 0;
  }
  for (; i < n; ++i) {
    if (!std::isfinite(in[i])) return false;
    lo = std::min(lo, in[i]);
    hi = std::max(hi, in[i]);
  }
  *min = lo;
  *max = hi;
  return finite;
}
#endif  // TANDEM_X86

}  // namespace

// After Maratyszcza's FP16 library (MIT): exact round-to-nearest-even using
// float arithmetic for the rounding.
uint16_t FloatToHalfScalar(float f) {
  if (std::isfinite(f)) f = std::clamp(f, -kMaxHalf, kMaxHalf);
  const float scale_to_inf = FromBits(0x77800000);   // 2^112
  const float scale_to_zero = FromBits(0x08800000);  // 2^-110
  float base = (std::fabs(f) * scale_to_inf) * scale_to_zero;
  const uint32_t w = Bits(f);
  const uint32_t shl1_w = w + w;
  const uint32_t sign = w & 0x80000000u;
  uint32_t bias = shl1_w & 0xFF000000u;
  if (bias < 0x71000000u) bias = 0x71000000u;
  base = FromBits((bias >> 1) + 0x07800000u) + base;
  const uint32_t bits = Bits(base);
  const uint32_t exp_bits = (bits >> 13) & 0x00007C00u;
  const uint32_t mantissa_bits = bits & 0x00000FFFu;
  const uint32_t nonsign = exp_bits + mantissa_bits;
  return static_cast<uint16_t>((sign >> 16) |
                               (shl1_w > 0xFF000000u ? 0x7E00u : nonsign));
}

float HalfToFloatScalar(uint16_t h) {
  const uint32_t w = static_cast<uint32_t>(h) << 16;
  const uint32_t sign = w & 0x80000000u;
  const uint32_t two_w = w + w;
  const uint32_t exp_offset = 0xE0u << 23;
  const float exp_scale = FromBits(0x07800000);  // 2^-112
  const float normalized = FromBits((two_w >> 4) + exp_offset) * exp_scale;
  const uint32_t magic_mask = 126u << 23;
  const float denormalized = FromBits((two_w >> 17) | magic_mask) - 0.5f;
  const uint32_t denormalized_cutoff = 1u << 27;
  return FromBits(sign | (two_w < denormalized_cutoff ? Bits(denormalized)
                                                      : Bits(normalized)));
}

void FloatToHalf(const float* in, uint16_t* out, size_t n) {
#if TANDEM_X86
  if (HasF16c()) {
    FloatToHalfF16c<false>(in, out, n);
    return;
  }
#endif
  for (size_t i = 0; i < n; ++i) out[i] = FloatToHalfScalar(in[i]);
}

void HalfToFloat(const uint16_t* in, float* out, size_t n) {
#if TANDEM_X86
  if (HasF16c()) {
    HalfToFloatF16c<false>(in, out, n);
    return;
  }
#endif
  for (size_t i = 0; i < n; ++i) out[i] = HalfToFloatScalar(in[i]);
}

bool FloatToHalfFinite(const float* in, uint16_t* out, size_t n) {
#if TANDEM_X86
  if (HasF16c()) return FloatToHalfF16c<true>(in, out, n);
#endif
  bool finite = true;
  for (size_t i = 0; i < n; ++i) {
    out[i] = FloatToHalfScalar(in[i]);
    finite = finite && std::isfinite(in[i]);
  }
  return finite;
}

bool HalfToFloatFinite(const uint16_t* in, float* out, size_t n) {
#if TANDEM_X86
  if (HasF16c()) return HalfToFloatF16c<true>(in, out, n);
#endif
  bool finite = true;
  for (size_t i = 0; i < n; ++i) {
    out[i] = HalfToFloatScalar(in[i]);
    finite = finite && std::isfinite(out[i]);
  }
  return finite;
}

bool CopyFinite(const float* in, float* out, size_t n) {
#if TANDEM_X86
  if (HasF16c()) return CopyFiniteAvx(in, out, n);
#endif
  if (n > 0) std::memcpy(out, in, n * sizeof(float));
  return FirstNonFinite(in, n) == n;
}

bool AllFinite(const float* in, size_t n) {
#if TANDEM_X86
  if (HasF16c()) return CopyFiniteAvx(in, nullptr, n);
#endif
  return FirstNonFinite(in, n) == n;
}

size_t FirstNonFinite(const float* in, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(in[i])) return i;
  }
  return n;
}

bool FiniteMinMax(const float* in, size_t n, float* min, float* max) {
#if TANDEM_X86
  if (HasF16c()) return FiniteMinMaxAvx(in, n, min, max);
#endif
  float lo = INFINITY, hi = -INFINITY;
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(in[i])) return false;
    lo = std::min(lo, in[i]);
    hi = std::max(hi, in[i]);
  }
  *min = lo;
  *max = hi;
  return true;
}

AffineParams ChooseAffineParams(float lo, float hi) {
  lo = std::min(lo, 0.0f);
  hi = std::max(hi, 0.0f);
  AffineParams p;
  const double range = static_cast<double>(hi) - lo;
  if (range <= 0 || !std::isfinite(range)) return p;  // All zeros.
  p.scale = static_cast<float>(range / 255.0);
  const double zero_point = std::nearbyint(-lo / static_cast<double>(p.scale));
  p.zero_point = static_cast<int32_t>(std::clamp(zero_point, 0.0, 255.0));
  return p;
}

void QuantizeAffine(const float* in, uint8_t* out, size_t n, AffineParams p) {
  const float inverse = 1.0f / p.scale;
  const float zero_point = static_cast<float>(p.zero_point);
  for (size_t i = 0; i < n; ++i) {
    float q = in[i] * inverse + zero_point;
    q = q < 0.0f ? 0.0f : (q > 255.0f ? 255.0f : q);
    // q >= 0, so adding 0.5 and truncating rounds to nearest.
    out[i] = static_cast<uint8_t>(q + 0.5f);
  }
}

void DequantizeAffine(const uint8_t* in, float* out, size_t n, AffineParams p) {
  const float offset = -static_cast<float>(p.zero_point) * p.scale;
  for (size_t i = 0; i < n; ++i)
    out[i] = static_cast<float>(in[i]) * p.scale + offset;
}

}  // namespace tandem
