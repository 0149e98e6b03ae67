// Time per partitioner decision: 20 blocks x 10 cascade thresholds x 3
// encodings (plus the forced early exits), the size the partitioner must
// decide within 50 us.
//
//   build/bench/planner_bench --benchmark_repetitions=5
//   --benchmark_report_aggregates_only=true
#include "benchmark/benchmark.h"
#include "partitioner/planner.h"

namespace tandem {
namespace {

struct Synthetic {
  tandem::v1::ModelConfig config;
  tandem::v1::ModelProfile edge, cloud;
};

Synthetic MakeSynthetic(int blocks, int thresholds, int exits) {
  Synthetic s;
  s.config.set_name("synthetic");
  s.config.set_trained(true);
  s.config.set_num_blocks(blocks);
  for (int e = 0; e < exits; ++e) {
    auto* exit = s.config.add_exits();
    exit->set_block(e + 1 == exits ? blocks - 1 : (e + 1) * blocks / exits - 1);
    exit->set_test_accuracy(0.8f + 0.15f * e / exits);
  }
  for (int t = 0; t < thresholds; ++t) {
    auto* point = s.config.add_cascade_calibration();
    point->set_threshold(t + 1 == thresholds ? 1.01f : 0.5f + 0.05f * t);
    float left = 1.0f;
    for (int e = 0; e < exits; ++e) {
      const float rate = e + 1 == exits ? left : left * (0.5f - 0.04f * t);
      point->add_exit_rates(rate);
      left -= rate;
    }
    point->set_accuracy(0.85f + 0.01f * t);
  }
  auto add_sizes = [](auto* sizes, int64_t fp32) {
    for (auto [encoding, bytes] :
         {std::pair{tandem::v1::ENCODING_RAW, fp32},
          std::pair{tandem::v1::ENCODING_FP16, fp32 / 2},
          std::pair{tandem::v1::ENCODING_AFFINE_UINT8, fp32 / 4}}) {
      auto* size = sizes->Add();
      size->set_encoding(encoding);
      size->set_bytes(bytes);
    }
  };
  for (int b = 0; b < blocks; ++b) {
    auto* block = s.edge.add_blocks();
    block->set_latency_us(1000 + 100 * b);
    block->set_exit_latency_us(50);
    add_sizes(block->mutable_output_sizes(), 800000 >> (b / 4));
    auto* cloud_block = s.cloud.add_blocks();
    cloud_block->set_latency_us(100 + 10 * b);
    cloud_block->set_exit_latency_us(5);
  }
  add_sizes(s.edge.mutable_input_sizes(), 600000);
  return s;
}

void BM_ChoosePlan(benchmark::State& state) {
  const Synthetic s = MakeSynthetic(state.range(0), state.range(1), 4);
  PlannerInput input;
  input.config = &s.config;
  input.edge = &s.edge;
  input.cloud = &s.cloud;
  input.network.set_uplink_mbit(5.85);
  input.network.set_rtt_ms(20);
  input.energy.device = {10, 1.5};
  input.energy.radio = {438.39, 1288.04};
  PlanConstraints constraints;
  constraints.deadline = absl::Milliseconds(200);
  constraints.min_accuracy = 0.86;
  constraints.explain = state.range(2) != 0;
  for (auto _ : state) {
    auto plan = ChoosePlan(input, constraints);
    if (!plan.ok()) state.SkipWithError("no plan");
    benchmark::DoNotOptimize(plan);
  }
  state.SetLabel(constraints.explain ? "with explanation" : "decision only");
}

// Args: blocks, thresholds, explain.
BENCHMARK(BM_ChoosePlan)
    ->Args({20, 10, 0})
    ->Args({20, 10, 1})
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace tandem

BENCHMARK_MAIN();
