// The pieces of `tandem bench --scenario=trace` that do not touch processes:
// the policies compared, the rate trace, and the report computed from the
// per-request records. bench_command.cc runs the daemons and the link.
#ifndef TANDEM_TOOLS_TRACE_BENCH_H_
#define TANDEM_TOOLS_TRACE_BENCH_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tandem/client.h"

namespace tandem {

// One way of running requests. Fixed policies force a split and encoding;
// `adaptive` leaves both to the agent's partitioner.
struct BenchPolicy {
  std::string name;
  InferOptions options;
  bool fixed = true;     // A fixed plan: an oracle candidate.
  bool reported = true;  // Named in the report (else only an oracle candidate).
};

// edge_only, cloud_only (FP32 input), cloud_only_uint8 (8-bit pixels),
// adaptive, and the other fixed splits (INT8 and FP16) as oracle candidates.
// static_split is added once the first plan is known.
std::vector<BenchPolicy> TracePolicies(int num_blocks, absl::Duration deadline);

struct TraceStep {
  double start_s = 0;
  double rate_mbit = 0;
};

// CSV "seconds,rate_mbit" lines; '#' comments and blank lines ignored.
absl::StatusOr<std::vector<TraceStep>> ParseTrace(const std::string& csv);
// 50 -> 18.9 -> 5.85 -> 1.1 -> 0.13 -> 18.9 Mbit/s, `step_s` each.
std::vector<TraceStep> DefaultTrace(double step_s);

struct BenchRecord {
  int step = 0;
  int policy = 0;         // Index into the policies.
  int index_in_step = 0;  // Among this policy's requests in this step.
  double t_s = 0;         // Since the trace started.
  bool ok = false;
  double latency_ms = 0;
  int split = -1;
  bool has_label = false;
  bool correct = false;
  double energy_mj = 0;
  int64_t bytes = 0;
};

// The JSON report: {"policies": {NAME: {...}}, "steps": [...], ...} as the
// README documents. Step figures skip each policy's first `skip` requests of
// the step; whole-trace figures count every request. `oracle` is, per step,
// the fixed policy with the lowest step mean, and over the trace the
// concatenation of those choices.
std::string TraceReportJson(const std::vector<BenchPolicy>& policies,
                            const std::vector<TraceStep>& steps,
                            const std::vector<BenchRecord>& records, int skip,
                            const std::string& header_fields);

}  // namespace tandem

#endif  // TANDEM_TOOLS_TRACE_BENCH_H_
