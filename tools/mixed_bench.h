// The pieces of `tandem bench --scenario=mixed` that do not touch processes:
// the task set, the release schedule, the edge config the bench writes, the
// open-loop sender (over a connected Client), and the report computed from
// the per-request records. bench_command.cc runs the daemons and the link.
//
//   std::vector<MixedTask> tasks = DefaultMixedTasks();
//   for (MixedTask& t : tasks) t.cost_ms = ...;  // Measured.
//   ASSIGN_OR_RETURN(std::vector<TaskTiming> timings,
//                    TimingsAtLoad(tasks, 0.95));
//   std::vector<Release> releases =
//       MakeReleaseSchedule(tasks, timings, 10'000, /*seed=*/1, /*stream=*/0);
#ifndef TANDEM_TOOLS_MIXED_BENCH_H_
#define TANDEM_TOOLS_MIXED_BENCH_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tandem/client.h"

namespace tandem {

// One real-time stream of the mix. Its period at load L is
// cost_ms / (share * L): the stream alone would keep the edge busy for a
// `share * L` of its time in its default setting.
struct MixedTask {
  std::string name;
  std::string model;
  int criticality = 0;  // Larger is more critical.
  double share = 0;     // Of the mix's utilization.
  // Bursty Poisson arrivals (bursts of 1 to kMaxBurst requests, uniformly,
  // kBurstSpacingMs apart; Poisson burst starts) instead of a period; the
  // period is then the mean gap between requests.
  bool sporadic = false;
  // Relative deadline: `deadline_periods` periods of the task `deadline_of`
  // (empty: this one) at the same load.
  double deadline_periods = 1;
  std::string deadline_of;
  float min_accuracy = 0;  // 0: none.
  std::string input;       // For the agent's config: "fashion_mnist", "noise".
  // C_i: what one job costs the emulated edge in its default setting (edge
  // only, its exits and floor), measured by the bench (mixed_runner.cc,
  // MeasureCost).
  double cost_ms = 0;
};

constexpr int kMaxBurst = 4;
constexpr double kMeanBurstSize = (1 + kMaxBurst) / 2.0;
constexpr double kBurstSpacingMs = 1;

// obstacle (fmnist_branchy, periodic, criticality 2, share 0.3), camera
// (camera_branchy, periodic, criticality 1, share 0.4), audit
// (fmnist_branchy, criticality 0, deadline 4 periods, share 0.15) and burst
// (fmnist_branchy, sporadic, criticality 1, deadline 3 obstacle periods,
// share 0.15). The fmnist tasks' accuracy floor is 0.9. Costs are 0 until
// measured.
std::vector<MixedTask> DefaultMixedTasks();

struct TaskTiming {
  double period_ms = 0;  // Sporadic: the mean gap between requests.
  double deadline_ms = 0;
};

// Every task's period and deadline at `load`, in the tasks' order.
// INVALID_ARGUMENT for a load, share or cost that is not positive, or an
// unknown `deadline_of`.
absl::StatusOr<std::vector<TaskTiming>> TimingsAtLoad(
    const std::vector<MixedTask>& tasks, double load);

// One request to send.
struct Release {
  double t_ms = 0;     // Since the load's start.
  int task = 0;        // Index into the tasks.
  uint32_t image = 0;  // Which input (the sender takes it modulo its count).
};

// The releases within [0, duration_ms), by time. Periodic tasks start at a
// random phase within their first period; sporadic ones as MixedTask says.
// A function of (seed, stream) alone, the same on every platform: every
// policy sees the same times, tasks and images. Each task draws from a
// stream of its own, so one task's draws do not move another's.
std::vector<Release> MakeReleaseSchedule(const std::vector<MixedTask>& tasks,
                                         const std::vector<TaskTiming>& timings,
                                         double duration_ms, uint64_t seed,
                                         int stream);

// A job's cost from measured jobs, keyed by the exit each took: per exit,
// the median of its times, weighted by how often it was taken. A stalled
// request moves a median, not the cost; a model whose jobs mostly exit
// early costs what those jobs cost. 0 without samples.
double CostFromExitSamples(std::map<int, std::vector<double>> ms_by_exit);

// The seven scheduling policies of the agent, in the bench's order; the
// last, tandem_rt, is the agent's own.
std::vector<std::string> MixedPolicyNames();

// "0.6,0.95,1.4"-style loads, each positive; policies among
// MixedPolicyNames(), without repeats. INVALID_ARGUMENT otherwise.
absl::StatusOr<std::vector<double>> ParseLoads(
    const std::vector<std::string>& texts);
absl::Status CheckPolicies(const std::vector<std::string>& policies);

// The tandem-edge config (text proto) for one daemon: the policy, admission
// "log" (an overloaded set runs anyway), the CPU, the tasks at `timings`, and
// with a cloud the adaptive partitioner for every model the tasks name.
std::string MixedEdgeConfig(const std::vector<MixedTask>& tasks,
                            const std::vector<TaskTiming>& timings,
                            const std::string& policy, bool with_cloud);

// What happened to one release.
struct MixedRecord {
  int load = 0;  // Index into MixedReportOptions::loads.
  bool cloud = false;
  int policy = 0;  // Index into MixedReportOptions::policies.
  int task = 0;    // Index into the tasks.
  double release_ms = 0;
  double deadline_ms = 0;
  bool ok = false;
  int status_code = 0;    // absl::StatusCode.
  double latency_ms = 0;  // Client latency; for failures, until the error.
  bool has_label = false;
  bool correct = false;
  int scaling_level = 0;
  int batch_size = 1;
  bool cut_short = false;
  std::string answered_by;  // "edge", "cloud", "unknown"; empty on failure.
  // Of an answer: its time in the agent's scheduler and on edge blocks.
  double edge_queue_ms = 0;
  double edge_compute_ms = 0;
  std::string error;  // The failure's message; empty for an answer.
};

// A request of `task` with `deadline_ms` (also its gRPC deadline).
InferOptions MixedTaskOptions(const MixedTask& task, double deadline_ms);

// The inputs of one model, ready to send.
struct ModelInputs {
  std::vector<InputTensor> tensors;
  std::vector<int> labels;  // Per tensor; empty without labels.
};

struct SentLoad {
  // One per release, in the releases' order; load, cloud and policy are the
  // caller's to fill.
  std::vector<MixedRecord> records;
  int unanswered = 0;       // Still outstanding when the wait ended.
  double worst_lag_ms = 0;  // The sender's worst lateness behind a release.
};

// Sends `releases` open loop from the calling thread: each at its time
// (from now), with InferAsync, whatever is outstanding; then waits up to
// `drain_timeout` for every answer. `inputs` holds every task's model.
SentLoad SendReleases(Client& client, const std::vector<MixedTask>& tasks,
                      const std::vector<TaskTiming>& timings,
                      const std::vector<Release>& releases,
                      const std::map<std::string, ModelInputs>& inputs,
                      absl::Duration drain_timeout);

// Failed (any error), or answered after its deadline.
bool Missed(const MixedRecord& record);
// Misses over releases; 0 for none.
double MissRate(const std::vector<const MixedRecord*>& records);

struct MixedReportOptions {
  double edge_slowdown = 4;
  double duration_s = 10;  // Per load: throughput is in-time answers / this.
  std::vector<double> loads;
  std::vector<bool> clouds;  // The cloud settings that ran (true: with).
  std::vector<std::string> policies;
  // Inserted after the opening brace, e.g. "\"seed\": 1, ".
  std::string header_fields;
  // Targets of tandem_rt, per (load, cloud) cell.
  std::string subject = "tandem_rt";
  double max_miss_ratio = 0.5;  // Over the best other policy's miss rate.
  double max_accuracy_gap_points = 1.7;
  double nominal_load = 0.95;  // Up to here the most critical task never
                               // misses; above it, below this rate:
  double max_critical_miss_rate = 0.005;
  double overload_load = 1.4;         // From here, with a cloud, throughput
  double min_throughput_ratio = 0.9;  // at least this of the best baseline's.
};

// The JSON report (README, "Mixed real-time benchmark"). Records of one
// (load, cloud, policy) are taken in release order.
std::string MixedReportJson(const std::vector<MixedTask>& tasks,
                            const std::vector<MixedRecord>& records,
                            const MixedReportOptions& options);

// One line per record: load,cloud,policy,task,release_ms,deadline_ms,ok,
// status,latency_ms,missed,has_label,correct,scaling_level,batch_size,
// cut_short,answered_by,edge_queue_ms,edge_compute_ms,error (quoted).
std::string MixedRequestsCsv(const std::vector<MixedTask>& tasks,
                             const std::vector<MixedRecord>& records,
                             const MixedReportOptions& options);

}  // namespace tandem

#endif  // TANDEM_TOOLS_MIXED_BENCH_H_
