#include "tools/plan_command.h"

#include <iostream>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"
#include "tandem/client.h"
#include "tools/connection_flags.h"

namespace tandem {

absl::Status RunPlanCommandFromFlags() {
  const std::string model = absl::GetFlag(FLAGS_model);
  if (model.empty()) return absl::InvalidArgumentError("--model is required");
  ASSIGN_OR_RETURN(const std::unique_ptr<Client> client, ConnectFromFlags());
  ASSIGN_OR_RETURN(const tandem::v1::Plan plan, client->GetPlan(model));
  std::string text;
  if (absl::GetFlag(FLAGS_json)) {
    google::protobuf::util::JsonPrintOptions options;
    options.always_print_primitive_fields = true;
    options.preserve_proto_field_names = true;
    const auto status =
        google::protobuf::util::MessageToJsonString(plan, &text, options);
    if (!status.ok()) {
      return absl::InternalError(
          absl::StrCat("plan to JSON: ", status.ToString()));
    }
    text += "\n";
  } else if (!google::protobuf::TextFormat::PrintToString(plan, &text)) {
    return absl::InternalError("cannot print the plan");
  }
  std::cout << text;
  return absl::OkStatus();
}

}  // namespace tandem
