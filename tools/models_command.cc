#include "tools/models_command.h"

#include <iostream>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "tools/connection_flags.h"
#include "tools/infer_report.h"

namespace tandem {

void PrintModels(const std::vector<ModelInfo>& models, bool json,
                 std::ostream& out) {
  if (json) {
    std::vector<std::string> objects;
    for (const ModelInfo& model : models) {
      objects.push_back(absl::StrCat(
          "{\"name\":", JsonQuote(model.name), ",\"version\":",
          JsonQuote(model.version), ",\"num_blocks\":", model.num_blocks,
          ",\"exit_blocks\":[", absl::StrJoin(model.exit_blocks, ","),
          "],\"input_shape\":[", absl::StrJoin(model.input_shape, ","),
          "],\"input_datatype\":", JsonQuote(model.input_datatype),
          ",\"trained\":", model.trained ? "true" : "false", "}"));
    }
    out << "{\"models\":[" << absl::StrJoin(objects, ",") << "]}\n";
    return;
  }
  out << absl::StrFormat("%-24s %-8s %-7s %-12s %-16s %s\n", "MODEL", "VERSION",
                         "BLOCKS", "EXITS", "INPUT", "TRAINED");
  for (const ModelInfo& model : models) {
    out << absl::StrFormat(
        "%-24s %-8s %-7d %-12s %-16s %s\n", model.name, model.version,
        model.num_blocks, absl::StrJoin(model.exit_blocks, ","),
        absl::StrCat(model.input_datatype, "[",
                     absl::StrJoin(model.input_shape, ","), "]"),
        model.trained ? "yes" : "no");
  }
}

absl::Status RunModelsCommandFromFlags() {
  ASSIGN_OR_RETURN(const std::unique_ptr<Client> client, ConnectFromFlags());
  ASSIGN_OR_RETURN(const std::vector<ModelInfo> models, client->ListModels());
  PrintModels(models, absl::GetFlag(FLAGS_json), std::cout);
  return absl::OkStatus();
}

}  // namespace tandem
