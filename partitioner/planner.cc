#include "partitioner/planner.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace tandem {
namespace {

using tandem::v1::Encoding;
using tandem::v1::ModelConfig;
using tandem::v1::ModelProfile;
using tandem::v1::Objective;

constexpr double kInf = std::numeric_limits<double>::infinity();

// How requests leave the model: a point of the cascade calibration (one
// threshold at every early exit), or every request forced out at one early
// exit (Edgent's right-sizing: the blocks after it never run).
struct ExitSetting {
  float threshold = 0;
  int forced_exit = -1;  // Block of the forced exit; -1: a cascade point.
  int last_block = 0;    // The last block that can run.
  double accuracy = 0;
  std::vector<double> reach;  // reach[b]: P(a sample runs block b); size N + 1.
  std::vector<bool>
      head_runs;  // Whether the exit head after block b is evaluated.
};

// A candidate while deciding: plain numbers, no strings.
struct Candidate {
  int split;
  int setting;
  Encoding encoding;
  int64_t bytes;
  double edge_ms, transfer_ms, cloud_ms, latency_ms, tail_ms, energy_mj,
      accuracy, offload_probability;
  bool meets_accuracy, meets_deadline;
};

int64_t SizeOf(
    const google::protobuf::RepeatedPtrField<tandem::v1::EncodedSize>& sizes,
    Encoding encoding) {
  for (const auto& size : sizes) {
    if (size.encoding() == encoding &&
        size.compression() == tandem::v1::COMPRESSION_NONE) {
      return size.bytes();
    }
  }
  return -1;
}

std::vector<ExitSetting> ExitSettings(const ModelConfig& config) {
  const int n = config.num_blocks();
  std::vector<int> exit_index_of_block(n, -1);
  for (int e = 0; e < config.exits_size(); ++e)
    exit_index_of_block[config.exits(e).block()] = e;
  std::vector<ExitSetting> settings;
  auto add = [&](float threshold, const std::vector<double>& rates,
                 double accuracy) {
    ExitSetting s;
    s.threshold = threshold;
    s.last_block = n - 1;
    s.accuracy = accuracy;
    s.reach.assign(n + 1, 0.0);
    s.head_runs.assign(n, false);
    s.reach[0] = 1.0;
    for (int b = 0; b < n; ++b) {
      const int e = exit_index_of_block[b];
      const bool exits_on = threshold <= 1.0f;
      s.head_runs[b] = e >= 0 && (exits_on || b == n - 1);
      const double leave = (e >= 0 && exits_on && b < n - 1) ? rates[e] : 0.0;
      s.reach[b + 1] = std::max(0.0, s.reach[b] - leave);
    }
    settings.push_back(std::move(s));
  };
  for (const auto& point : config.cascade_calibration()) {
    if (point.exit_rates_size() != config.exits_size()) continue;
    add(point.threshold(),
        std::vector<double>(point.exit_rates().begin(),
                            point.exit_rates().end()),
        point.accuracy());
  }
  bool has_off = false;
  for (const ExitSetting& s : settings) has_off |= s.threshold > 1.0f;
  if (!has_off) {
    // Uncalibrated model: early exits off, accuracy as tested (or unknown).
    const double final_accuracy =
        config.exits_size() > 0 ? config.exits().rbegin()->test_accuracy() : 0;
    add(2.0f, std::vector<double>(config.exits_size(), 0.0), final_accuracy);
  }
  // Forcing requests out early trades accuracy for time; an untrained model's
  // accuracies say nothing, so it keeps its full depth.
  for (const auto& exit : config.exits()) {
    if (exit.block() >= n - 1 || !config.trained()) continue;
    ExitSetting s;
    s.threshold = 0;
    s.forced_exit = exit.block();
    s.last_block = exit.block();
    s.accuracy = exit.test_accuracy();
    s.reach.assign(n + 1, 0.0);
    s.head_runs.assign(n, false);
    for (int b = 0; b <= exit.block(); ++b) s.reach[b] = 1.0;
    s.head_runs[exit.block()] = true;
    settings.push_back(std::move(s));
  }
  return settings;
}

bool Better(const Candidate& a, const Candidate& b, Objective objective) {
  auto key = [objective](const Candidate& c) {
    switch (objective) {
      case tandem::v1::OBJECTIVE_MIN_ENERGY:
        return std::make_tuple(c.energy_mj, c.latency_ms, 0.0);
      case tandem::v1::OBJECTIVE_MAX_ACCURACY:
        return std::make_tuple(-c.accuracy, c.latency_ms, c.energy_mj);
      case tandem::v1::OBJECTIVE_MIN_CLOUD_COMPUTE:
        return std::make_tuple(c.cloud_ms, c.latency_ms, c.energy_mj);
      default:
        return std::make_tuple(c.latency_ms, c.energy_mj, 0.0);
    }
  };
  return key(a) < key(b);
}

std::string EncodingName(Encoding encoding) {
  switch (encoding) {
    case tandem::v1::ENCODING_FP16:
      return "FP16";
    case tandem::v1::ENCODING_AFFINE_UINT8:
      return "INT8";
    default:
      return "FP32";
  }
}

std::string Describe(const Candidate& c,
                     const std::vector<ExitSetting>& settings) {
  const ExitSetting& setting = settings[c.setting];
  const float t = setting.threshold;
  const std::string exits =
      setting.forced_exit >= 0
          ? absl::StrFormat("every request out at exit %d", setting.forced_exit)
      : t > 1.0f ? std::string("early exits off")
                 : absl::StrFormat("exit threshold %.3g", t);
  if (c.split > setting.last_block) return absl::StrCat("edge-only, ", exits);
  return absl::StrFormat("split %d (%s), %s", c.split, EncodingName(c.encoding),
                         exits);
}

tandem::v1::PlanAlternative ToProto(const Candidate& c,
                                    const std::vector<ExitSetting>& settings,
                                    const PlanConstraints& constraints) {
  tandem::v1::PlanAlternative a;
  a.set_split_point(c.split);
  a.set_exit_threshold(settings[c.setting].threshold);
  a.set_forced_exit_block(settings[c.setting].forced_exit);
  a.set_encoding(c.encoding);
  a.set_edge_ms(c.edge_ms);
  a.set_transfer_ms(c.transfer_ms);
  a.set_cloud_ms(c.cloud_ms);
  a.set_latency_ms(c.latency_ms);
  a.set_tail_ms(c.tail_ms);
  a.set_energy_mj(c.energy_mj);
  a.set_accuracy(c.accuracy);
  a.set_offload_probability(c.offload_probability);
  a.set_bytes_sent(c.bytes);
  if (!c.meets_accuracy) {
    a.set_rejected_because(absl::StrFormat(
        "accuracy %.4f < min %.4f", c.accuracy, constraints.min_accuracy));
  } else if (!c.meets_deadline) {
    a.set_rejected_because(
        absl::StrFormat("tail %.2f ms > deadline %.2f ms", c.tail_ms,
                        absl::ToDoubleMilliseconds(constraints.deadline)));
  }
  return a;
}

}  // namespace

double BestReachableAccuracy(const ModelConfig& config) {
  if (!config.trained()) return 0;
  double best = 0;
  for (const ExitSetting& setting : ExitSettings(config))
    best = std::max(best, setting.accuracy);
  return best;
}

absl::StatusOr<Objective> ParseObjective(absl::string_view name) {
  if (name == "latency") return tandem::v1::OBJECTIVE_MIN_LATENCY;
  if (name == "energy") return tandem::v1::OBJECTIVE_MIN_ENERGY;
  if (name == "accuracy") return tandem::v1::OBJECTIVE_MAX_ACCURACY;
  if (name == "cloud") return tandem::v1::OBJECTIVE_MIN_CLOUD_COMPUTE;
  return absl::NotFoundError(absl::StrCat(
      "unknown objective '", name, "' (latency, energy, accuracy, cloud)"));
}

double UplinkMbitFor(const tandem::v1::NetworkState& network, int64_t bytes) {
  for (const auto& size_class : network.size_classes()) {
    if (bytes >= size_class.min_bytes() && bytes <= size_class.max_bytes() &&
        size_class.uplink_mbit() > 0) {
      return size_class.uplink_mbit();
    }
  }
  return network.uplink_mbit();
}

absl::StatusOr<tandem::v1::Plan> ChoosePlan(
    const PlannerInput& input, const PlanConstraints& constraints) {
  if (input.config == nullptr || input.edge == nullptr) {
    return absl::InvalidArgumentError(
        "planner needs a model config and an edge profile");
  }
  const ModelConfig& config = *input.config;
  const ModelProfile& edge = *input.edge;
  const int n = config.num_blocks();
  if (edge.blocks_size() != n ||
      (input.cloud != nullptr && input.cloud->blocks_size() != n)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "profile has ", edge.blocks_size(), " blocks; the model has ", n));
  }
  const ModelProfile& cloud = input.cloud != nullptr ? *input.cloud : edge;
  const double cloud_scale =
      input.cloud != nullptr ? 1.0 : 1.0 / std::max(input.cloud_speedup, 1e-9);
  const std::vector<ExitSetting> settings = ExitSettings(config);
  const double uplink = input.network.uplink_mbit();
  const double rtt = input.network.rtt_ms();
  const double deadline_ms =
      constraints.deadline == absl::InfiniteDuration()
          ? kInf
          : absl::ToDoubleMilliseconds(constraints.deadline);

  // The encoding whose split-0 plan stands for every plan that forwards the
  // input as sent (PlannerInput::input_wire_bytes): the most compact.
  const int64_t forwarded = input.input_wire_bytes;
  Encoding forward_as = tandem::v1::ENCODING_RAW;
  int64_t forward_as_bytes = -1;
  for (Encoding encoding : input.encodings) {
    const int64_t bytes = SizeOf(edge.input_sizes(), encoding);
    if (forwarded > 0 && bytes >= forwarded &&
        (forward_as_bytes < 0 || bytes < forward_as_bytes)) {
      forward_as = encoding;
      forward_as_bytes = bytes;
    }
  }

  std::vector<Candidate> candidates;
  candidates.reserve(settings.size() * (n * input.encodings.size() + 1));
  std::vector<double> edge_prefix(n + 1), edge_tail(n + 1), cloud_suffix(n + 1),
      cloud_tail(n + 1);
  for (int s = 0; s < static_cast<int>(settings.size()); ++s) {
    const ExitSetting& setting = settings[s];
    // Prefix sums over the edge, suffix sums over the cloud: O(1) per split.
    // Blocks after last_block never run: they cost nothing, even in the tail.
    for (int b = 0; b < n; ++b) {
      const auto& eb = edge.blocks(b);
      const double step =
          b > setting.last_block
              ? 0
              : (eb.latency_us() +
                 (setting.head_runs[b] ? eb.exit_latency_us() : 0)) /
                    1e3;
      edge_prefix[b + 1] = edge_prefix[b] + setting.reach[b] * step;
      edge_tail[b + 1] = edge_tail[b] + step;
    }
    cloud_suffix[n] = cloud_tail[n] = 0;
    for (int b = n - 1; b >= 0; --b) {
      const auto& cb = cloud.blocks(b);
      const double step =
          b > setting.last_block
              ? 0
              : cloud_scale *
                    (cb.latency_us() +
                     (setting.head_runs[b] ? cb.exit_latency_us() : 0)) /
                    1e3;
      cloud_suffix[b] = cloud_suffix[b + 1] + setting.reach[b] * step;
      cloud_tail[b] = cloud_tail[b + 1] + step;
    }
    // Splits past the last block that runs are all the same edge-only plan.
    for (int k = 0; k <= setting.last_block + 1; ++k) {
      const bool offloads = k <= setting.last_block;
      if (offloads && (!input.cloud_available || uplink <= 0)) continue;
      for (size_t e = 0; e < (offloads ? input.encodings.size() : 1); ++e) {
        Candidate c{};
        c.split = k;
        c.setting = s;
        c.encoding = offloads ? input.encodings[e] : tandem::v1::ENCODING_RAW;
        c.accuracy = setting.accuracy;
        c.edge_ms = edge_prefix[k];
        c.tail_ms = edge_tail[k];
        if (offloads) {
          c.bytes = k == 0
                        ? SizeOf(edge.input_sizes(), c.encoding)
                        : SizeOf(edge.blocks(k - 1).output_sizes(), c.encoding);
          if (c.bytes < 0) continue;  // No size measured for this encoding.
          if (k == 0 && forwarded > 0 && c.bytes >= forwarded) {
            // The input travels as the request sent it.
            if (c.encoding != forward_as) continue;
            c.bytes = forwarded;
          }
          const double one_transfer =
              rtt +
              c.bytes * 8.0 / (UplinkMbitFor(input.network, c.bytes) * 1e3);
          c.offload_probability = setting.reach[k];
          c.transfer_ms = c.offload_probability * one_transfer;
          c.cloud_ms =
              c.offload_probability * input.cloud_queue_ms + cloud_suffix[k];
          c.tail_ms += one_transfer + input.cloud_queue_ms + cloud_tail[k];
        }
        c.latency_ms = c.edge_ms + c.transfer_ms + c.cloud_ms;
        c.energy_mj =
            input.energy.EnergyMj(c.edge_ms, c.transfer_ms, uplink, c.cloud_ms);
        // Accuracies travel as floats: compare at float precision.
        c.meets_accuracy = c.accuracy + 1e-6 >= constraints.min_accuracy;
        c.meets_deadline = c.tail_ms <= deadline_ms;
        candidates.push_back(c);
      }
    }
  }
  if (candidates.empty())
    return absl::InvalidArgumentError("no alternative to weigh");

  int best = -1, fastest = -1, most_accurate = -1;
  for (int i = 0; i < static_cast<int>(candidates.size()); ++i) {
    const Candidate& c = candidates[i];
    if (most_accurate < 0 || c.accuracy > candidates[most_accurate].accuracy)
      most_accurate = i;
    if (c.meets_accuracy &&
        (fastest < 0 || c.tail_ms < candidates[fastest].tail_ms))
      fastest = i;
    if (c.meets_accuracy && c.meets_deadline &&
        (best < 0 || Better(c, candidates[best], constraints.objective))) {
      best = i;
    }
  }
  if (best < 0) {
    if (fastest < 0) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "min_accuracy %.4f is above every calibrated accuracy (best %.4f)",
          constraints.min_accuracy, candidates[most_accurate].accuracy));
    }
    return absl::FailedPreconditionError(
        absl::StrFormat("deadline %.2f ms is below the fastest plan's tail "
                        "latency %.2f ms (%s)",
                        deadline_ms, candidates[fastest].tail_ms,
                        Describe(candidates[fastest], settings)));
  }

  const Candidate& chosen = candidates[best];
  tandem::v1::Plan plan;
  plan.set_model_name(config.name());
  plan.set_model_version(edge.model_version());
  plan.set_split_point(chosen.split);
  const ExitSetting& setting = settings[chosen.setting];
  if (setting.forced_exit >= 0) {
    (*plan.mutable_exit_thresholds())[setting.forced_exit] = 0.0f;
    plan.set_forced_exit_block(setting.forced_exit);
  } else if (setting.threshold <= 1.0f) {
    for (const auto& exit : config.exits()) {
      if (exit.block() < n - 1)
        (*plan.mutable_exit_thresholds())[exit.block()] = setting.threshold;
    }
  }
  plan.set_encoding(chosen.encoding);
  plan.set_compression(tandem::v1::COMPRESSION_NONE);
  plan.set_predicted_latency_ms(chosen.latency_ms);
  plan.set_predicted_tail_latency_ms(chosen.tail_ms);
  plan.set_predicted_energy_mj(chosen.energy_mj);
  plan.set_predicted_accuracy(chosen.accuracy);
  plan.set_predicted_cloud_ms(chosen.cloud_ms);
  plan.set_objective(constraints.objective);
  *plan.mutable_network() = input.network;
  static constexpr const char* kObjectiveWords[] = {
      "lowest expected latency", "lowest edge energy", "highest accuracy",
      "least cloud compute"};
  plan.set_reason(absl::StrFormat(
      "%s: %s among %d alternatives; expected %.2f ms (tail %.2f ms), %.2f mJ, "
      "accuracy %.4f",
      kObjectiveWords[std::clamp<int>(constraints.objective, 0, 3)],
      Describe(chosen, settings), static_cast<int>(candidates.size()),
      chosen.latency_ms, chosen.tail_ms, chosen.energy_mj, chosen.accuracy));
  if (constraints.explain) {
    for (const Candidate& c : candidates)
      *plan.add_alternatives() = ToProto(c, settings, constraints);
    plan.set_chosen(best);
  }
  return plan;
}

}  // namespace tandem
