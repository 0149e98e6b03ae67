// `tandem plan --model=NAME`: the plan an edge agent uses for a model.
#ifndef TANDEM_TOOLS_PLAN_COMMAND_H_
#define TANDEM_TOOLS_PLAN_COMMAND_H_

#include "absl/status/status.h"

namespace tandem {

// Connects as the flags say (--edge, --model, --json) and prints the plan in
// protobuf text format, or as JSON.
absl::Status RunPlanCommandFromFlags();

}  // namespace tandem

#endif  // TANDEM_TOOLS_PLAN_COMMAND_H_
