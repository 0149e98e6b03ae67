// Tensor codec throughput: encode and decode of 1 MB and 10 MB FP32
// activations (ReLU outputs, NCHW) for every encoding, in GB/s of FP32 input.
//
//   build/bench/codec_bench --benchmark_repetitions=5
//       --benchmark_report_aggregates_only=true   (one command line)
//
// Reports medians over the repetitions; the machines are shared, so compare
// encodings within one run, never across runs.
#include <torch/torch.h>

#include <cstring>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "models/codec_kernels.h"
#include "models/tensor_codec.h"

namespace tandem {
namespace {

using tandem::v1::COMPRESSION_NONE;
using tandem::v1::COMPRESSION_ZSTD;
using tandem::v1::ENCODING_AFFINE_UINT8;
using tandem::v1::ENCODING_FP16;
using tandem::v1::ENCODING_RAW;

// [1, C, 64, 64] with C chosen for ~1 MB (64) or ~10 MB (640).
torch::Tensor Activation(int64_t megabytes) {
  torch::manual_seed(0);
  const int64_t channels = 64 * megabytes;
  return torch::relu(torch::randn({1, channels, 64, 64}));
}

EncodeOptions Options(int encoding, int compression, bool per_channel) {
  EncodeOptions options;
  options.encoding = static_cast<tandem::v1::Encoding>(encoding);
  options.compression = static_cast<tandem::v1::Compression>(compression);
  if (per_channel) options.quant_axis = 1;
  return options;
}

void SetLabel(benchmark::State& state, const EncodeOptions& options,
              size_t payload, int64_t fp32_bytes) {
  std::string label = tandem::v1::Encoding_Name(options.encoding).substr(9);
  if (options.quant_axis) label += "/per_channel";
  if (options.compression == COMPRESSION_ZSTD) label += "+zstd";
  label +=
      " ratio=" +
      std::to_string(static_cast<double>(fp32_bytes) / payload).substr(0, 5);
  state.SetLabel(label);
}

void BM_Encode(benchmark::State& state) {
  const torch::Tensor t = Activation(state.range(0));
  const EncodeOptions options =
      Options(state.range(1), state.range(2), state.range(3));
  tandem::v1::TensorSpec spec;
  std::string payload;
  for (auto _ : state) {
    if (!EncodeTensor(t, options, &spec, &payload).ok())
      state.SkipWithError("encode failed");
    benchmark::DoNotOptimize(payload.data());
  }
  state.SetBytesProcessed(state.iterations() * t.nbytes());
  SetLabel(state, options, payload.size(), t.nbytes());
}

void BM_Decode(benchmark::State& state) {
  const torch::Tensor t = Activation(state.range(0));
  const EncodeOptions options =
      Options(state.range(1), state.range(2), state.range(3));
  tandem::v1::TensorSpec spec;
  std::string payload;
  if (!EncodeTensor(t, options, &spec, &payload).ok())
    state.SkipWithError("encode failed");
  for (auto _ : state) {
    auto decoded = DecodeTensor(spec, payload, DecodeLimits{});
    if (!decoded.ok()) state.SkipWithError("decode failed");
    benchmark::DoNotOptimize(decoded->data_ptr());
  }
  state.SetBytesProcessed(state.iterations() * t.nbytes());
  SetLabel(state, options, payload.size(), t.nbytes());
}

// Args: megabytes, encoding, compression, per_channel.
void Cases(benchmark::internal::Benchmark* b) {
  b->ArgNames({"MB", "enc", "zstd", "per_ch"});
  for (int mb : {1, 10}) {
    b->Args({mb, ENCODING_RAW, COMPRESSION_NONE, 0});
    b->Args({mb, ENCODING_FP16, COMPRESSION_NONE, 0});
    b->Args({mb, ENCODING_AFFINE_UINT8, COMPRESSION_NONE, 0});
    b->Args({mb, ENCODING_AFFINE_UINT8, COMPRESSION_NONE, 1});
    b->Args({mb, ENCODING_RAW, COMPRESSION_ZSTD, 0});
    b->Args({mb, ENCODING_AFFINE_UINT8, COMPRESSION_ZSTD, 0});
  }
  b->UseRealTime()->Unit(benchmark::kMicrosecond);
}

BENCHMARK(BM_Encode)->Apply(Cases);
BENCHMARK(BM_Decode)->Apply(Cases);

// What refusing NaN and infinity costs: each element pass of the codec with
// the finiteness check folded in (checked = 1) against the same pass without
// it (checked = 0), on the same data in the same run.
enum Pass { kCopy, kToHalf, kFromHalf };

void BM_FiniteCheckCost(benchmark::State& state) {
  const torch::Tensor t = Activation(state.range(0));
  const size_t n = t.numel();
  const float* in = t.data_ptr<float>();
  const bool checked = state.range(2) != 0;
  std::vector<float> floats(n);
  std::vector<uint16_t> halves(n);
  FloatToHalf(in, halves.data(), n);
  bool finite = true;
  for (auto _ : state) {
    switch (state.range(1)) {
      case kCopy:
        if (checked) {
          finite = CopyFinite(in, floats.data(), n);
        } else {
          std::memcpy(floats.data(), in, n * sizeof(float));
        }
        break;
      case kToHalf:
        if (checked) {
          finite = FloatToHalfFinite(in, halves.data(), n);
        } else {
          FloatToHalf(in, halves.data(), n);
        }
        break;
      case kFromHalf:
        if (checked) {
          finite = HalfToFloatFinite(halves.data(), floats.data(), n);
        } else {
          HalfToFloat(halves.data(), floats.data(), n);
        }
        break;
    }
    benchmark::DoNotOptimize(floats.data());
    benchmark::DoNotOptimize(halves.data());
    benchmark::ClobberMemory();
  }
  if (!finite) state.SkipWithError("activation is not finite");
  state.SetBytesProcessed(state.iterations() * t.nbytes());
  const char* names[] = {"raw copy", "fp32->fp16", "fp16->fp32"};
  state.SetLabel(std::string(names[state.range(1)]) +
                 (checked ? " +finite check" : ""));
}
BENCHMARK(BM_FiniteCheckCost)
    ->ArgNames({"MB", "pass", "checked"})
    ->ArgsProduct({{1, 10}, {kCopy, kToHalf, kFromHalf}, {0, 1}})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace tandem

int main(int argc, char** argv) {
  torch::set_num_threads(1);  // GB/s per core.
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
