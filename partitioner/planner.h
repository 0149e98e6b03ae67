// The partitioner's decision: a pure function from a model's calibration, its
// measured profiles, the network state and the request's constraints to a
// Plan (split point, exit threshold, encoding) with every alternative it
// weighed. No I/O, no clocks, no threads: the same inputs give the same plan.
//
// Enumerates split k in [0, N] x one exit threshold per point of the model's
// cascade calibration (early exits off included; for trained models also
// every request forced out at one early exit, Edgent's right-sizing) x
// encodings. For each it
// predicts, with each exit weighted by its calibrated exit probability:
//   edge     = sum over blocks b < k of P(reach b) * (latency_b + exit head)
//   transfer = P(reach k) * (rtt + bytes(k, encoding) / uplink)
//   cloud    = P(reach k) * queue + sum over b >= k of P(reach b) * cloud
//   latency_b energy   = device compute power * edge + radio power * transfer
//              + idle power * cloud
// accuracy from the calibration point, and the tail latency of a request no
// exit takes. The deadline bounds the tail; min_accuracy bounds accuracy.
//
//   ASSIGN_OR_RETURN(tandem::v1::Plan plan, ChoosePlan(input, constraints));
#ifndef TANDEM_PARTITIONER_PLANNER_H_
#define TANDEM_PARTITIONER_PLANNER_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "partitioner/energy_model.h"
#include "tandem/v1/model_config.pb.h"
#include "tandem/v1/profile.pb.h"

namespace tandem {

struct PlannerInput {
  const tandem::v1::ModelConfig* config = nullptr;
  // Edge block latencies, exit head latencies, output and input sizes.
  const tandem::v1::ModelProfile* edge = nullptr;
  // Cloud block latencies; null: the edge's divided by cloud_speedup.
  const tandem::v1::ModelProfile* cloud = nullptr;
  double cloud_speedup = 1.0;
  double cloud_queue_ms = 0;
  tandem::v1::NetworkState network;
  EnergyModel energy;
  bool cloud_available = true;  // False: only k = N.
  // Encodings weighed for offloaded tensors (those the profile has sizes for).
  std::vector<tandem::v1::Encoding> encodings = {
      tandem::v1::ENCODING_RAW, tandem::v1::ENCODING_FP16,
      tandem::v1::ENCODING_AFFINE_UINT8};
  // The model input's size as requests send it (0: unknown). A split-0
  // offload forwards the input unchanged where it is no larger than the
  // plan's encoding would make it (8-bit pixels under an FP16 or FP32 plan):
  // such plans are priced at what travels, and only the most compact of
  // their encodings is weighed, since every one of them sends the same bytes.
  int64_t input_wire_bytes = 0;
};

struct PlanConstraints {
  absl::Duration deadline = absl::InfiniteDuration();
  double min_accuracy = 0;
  tandem::v1::Objective objective = tandem::v1::OBJECTIVE_MIN_LATENCY;
  // Fill Plan.alternatives (the explanation); the decision itself never
  // needs them.
  bool explain = false;
};

// The uplink a transfer of `bytes` is priced at: its size class's measured
// throughput when `network` has one (NetworkState.size_classes), else the
// overall uplink_mbit.
double UplinkMbitFor(const tandem::v1::NetworkState& network, int64_t bytes);

// INVALID_ARGUMENT for inconsistent inputs (profile and config disagree);
// FAILED_PRECONDITION, naming the constraint and the best value reachable,
// when no alternative meets the deadline or the accuracy floor.
absl::StatusOr<tandem::v1::Plan> ChoosePlan(const PlannerInput& input,
                                            const PlanConstraints& constraints);

// The highest calibrated accuracy any exit setting the planner weighs reaches
// (cascade points, exits off, forced early exits). Requests whose floor is
// above it cannot be served. An untrained model's accuracies are unknown: 0.
double BestReachableAccuracy(const tandem::v1::ModelConfig& config);

// "latency", "energy", "accuracy", "cloud" -> Objective; NOT_FOUND otherwise.
absl::StatusOr<tandem::v1::Objective> ParseObjective(absl::string_view name);

}  // namespace tandem

#endif  // TANDEM_PARTITIONER_PLANNER_H_
