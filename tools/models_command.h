// `tandem models`: the models an edge agent serves.
#ifndef TANDEM_TOOLS_MODELS_COMMAND_H_
#define TANDEM_TOOLS_MODELS_COMMAND_H_

#include <ostream>
#include <vector>

#include "absl/status/status.h"
#include "tandem/client.h"

namespace tandem {

// One line per model, or with `json` one object {"models": [...]}.
void PrintModels(const std::vector<ModelInfo>& models, bool json,
                 std::ostream& out);

// Connects as the flags say (--edge, --json) and prints the models.
absl::Status RunModelsCommandFromFlags();

}  // namespace tandem

#endif  // TANDEM_TOOLS_MODELS_COMMAND_H_
