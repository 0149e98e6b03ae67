// `tandem bench --scenario=mixed`: several real-time DNN streams at once on
// the emulated edge (tools/bench_daemons.h), one fresh `tandem-edge` per
// scheduling policy and cloud setting, the same seeded releases for every
// one (tools/mixed_bench.h). Writes mixed_bench.json, mixed_requests.csv
// and a plot per (load, cloud) to the run's out_dir and prints the JSON.
// README, "Mixed real-time benchmark".
#ifndef TANDEM_TOOLS_MIXED_RUNNER_H_
#define TANDEM_TOOLS_MIXED_RUNNER_H_

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace tandem {

// The mixed scenario's settings (flags in bench_command.cc).
struct MixedRun {
  std::string repository;
  double slowdown = 4;
  double rate_mbit = 18.88;
  std::vector<double> loads;
  std::vector<std::string> policies;
  std::vector<bool> clouds;
  uint64_t seed = 1;
  double duration_s = 10;
  int workers = 2;  // Edge worker threads, all on the edge's one core.
  std::filesystem::path out_dir;
};

// Runs the scenario with the link script `linkemu`. Needs root.
absl::Status RunMixed(const MixedRun& run, const std::string& linkemu);

}  // namespace tandem

#endif  // TANDEM_TOOLS_MIXED_RUNNER_H_
