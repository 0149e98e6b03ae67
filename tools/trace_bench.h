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
  // Not sent: a fixed policy that failed its last requests at this step's
  // constant rate would fail again, so the bench records the failure (at the
  // deadline) without spending the deadline on it. Counted as failed.
  bool projected = false;
  double latency_ms = 0;  // Of answered requests.
  int split = -1;
  bool has_label = false;
  bool correct = false;
  double energy_mj = 0;
  int64_t bytes = 0;
  // Where the blocks ran: the measured edge/cloud speed ratio compares
  // edge_only's edge compute with cloud_only's cloud compute.
  double edge_compute_ms = 0;
  double cloud_compute_ms = 0;
  // The rest of the agent's time, for seeing where a policy's time goes:
  // waiting in its scheduler, the cloud's queue, the round trip net of the
  // cloud's queue and compute, and receipt to reply in all.
  double edge_queue_ms = 0;
  double cloud_queue_ms = 0;
  double transfer_ms = 0;
  double agent_ms = 0;
};

// Median edge compute of edge_only over median cloud compute of cloud_only:
// the same blocks and exits on the same images, on the two devices. 0 when
// either has no answered request.
double MeasuredSlowdown(const std::vector<BenchPolicy>& policies,
                        const std::vector<BenchRecord>& records);

struct TraceReportOptions {
  // Each policy's first `skip` requests of a step (the reaction window) are
  // left out of the step's figures; whole-trace figures count every request.
  int skip = 3;
  // A step whose reported policies or oracle have fewer settled requests
  // fails its target.
  int min_settled = 20;
  // A failed request counts at the deadline, and as a miss.
  double deadline_ms = 1000;
  // Targets: adaptive within `oracle_margin` of the oracle (whole trace and
  // every step), within `site_margin` of the best single site (edge-only or
  // cloud-only) in every step, and on a good split within `max_reaction`
  // requests of a step's start.
  double oracle_margin = 1.10;
  double site_margin = 1.05;
  int max_reaction = 3;
};

// The fixed policies of `step` out of contention: their mean over their
// settled requests (failures at the deadline) is more than `factor` times
// the lowest such mean of a fixed policy. Policies are ranked once they have
// `min_ranked` settled requests, and a reported one is out only once it has
// `options.min_settled` (its figures are in the report). Their figures are
// known well enough to rank them, so the bench stops re-measuring them for
// the rest of the step and gives their time to the policies still in
// contention (true at a policy's index).
std::vector<bool> OutOfContention(const std::vector<BenchPolicy>& policies,
                                  const std::vector<BenchRecord>& records,
                                  int step, const TraceReportOptions& options,
                                  double factor, int min_ranked);

// The JSON report: {"policies": {NAME: {...}}, "steps": [...], "targets":
// {...}} as the README documents. Latency means count failed requests at the
// deadline. `oracle` is, per step, the fixed policy with the lowest step
// mean among those with enough settled requests, and over the trace the
// concatenation of those choices. A step's reaction counts the adaptive
// requests before it settled on a good split for the rest of the step; a
// step that ends on a bad split counts all of them. A split is good when a
// fixed policy at it is within `oracle_margin` of the oracle, or when
// adaptive's own settled requests at it (at least `min_settled`) are within
// `oracle_margin` of the oracle's requests of the same rounds.
std::string TraceReportJson(const std::vector<BenchPolicy>& policies,
                            const std::vector<TraceStep>& steps,
                            const std::vector<BenchRecord>& records,
                            const TraceReportOptions& options,
                            const std::string& header_fields);

}  // namespace tandem

#endif  // TANDEM_TOOLS_TRACE_BENCH_H_
