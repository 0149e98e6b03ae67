// Measures a ModelProfile on this device and runtime: per-block latency and
// exit-head latency as medians of runs in sequence (blocks measured as they
// run together, not in isolation, after warm-up), and the size of every
// block's output under each encoding (per sample, measured by encoding real
// outputs, zstd included).
//
//   ASSIGN_OR_RETURN(tandem::v1::ModelProfile p, ProfileModel(*model, {}));
#ifndef TANDEM_MODELS_PROFILER_H_
#define TANDEM_MODELS_PROFILER_H_

#include "absl/status/statusor.h"
#include "models/progressive_model.h"
#include "tandem/v1/profile.pb.h"

namespace tandem {

struct ProfileOptions {
  int warmup_runs = 3;
  int runs = 20;  // Median over these.
  int batch_size = 1;
  // "cpu", "cuda:0": recorded in the profile (the model decides where it runs).
  std::string device = "cpu";
};

absl::StatusOr<tandem::v1::ModelProfile> ProfileModel(
    const ProgressiveModel& model, const ProfileOptions& options);

}  // namespace tandem

#endif  // TANDEM_MODELS_PROFILER_H_
