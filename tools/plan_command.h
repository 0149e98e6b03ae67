// `tandem plan`: what the partitioner decides for a model and why, with every
// alternative it weighed. Live (--edge: the agent's own estimates, or what-if
// values from the flags) or offline (--profile: a file `tandem profile` saved).
//
//   tandem plan --edge=unix:/run/tandem/edge.sock --model=fmnist_branchy
//   tandem plan --profile=fmnist.pbtxt --bandwidth=5.85mbit --rtt=20ms
//   --objective=latency
//
// `tandem profile --edge=ADDR --model=NAME --out=FILE` saves the profile.
#ifndef TANDEM_TOOLS_PLAN_COMMAND_H_
#define TANDEM_TOOLS_PLAN_COMMAND_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tandem/v1/profile.pb.h"

namespace tandem {

absl::Status RunPlanCommandFromFlags();
absl::Status RunProfileCommandFromFlags();

// "5.85mbit", "5.85Mbit/s", "500kbit", "5.85" (Mbit/s) -> Mbit/s.
absl::StatusOr<double> ParseRate(const std::string& text);
// "20ms", "0.02s", "20" (ms) -> milliseconds.
absl::StatusOr<double> ParseMillis(const std::string& text);

// The table `tandem plan` prints: every alternative, best first by the
// plan's objective, the chosen one marked, then the reason.
std::string FormatPlanTable(const tandem::v1::Plan& plan);

}  // namespace tandem

#endif  // TANDEM_TOOLS_PLAN_COMMAND_H_
