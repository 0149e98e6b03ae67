#include "tools/connection_flags.h"

#include "absl/flags/flag.h"
#include "absl/status/status.h"

ABSL_FLAG(std::string, edge, "",
          "Edge agent address: unix:/path/to.sock or host:port");
ABSL_FLAG(std::string, token, "",
          "Bearer token sent as 'authorization' metadata; empty for none");
ABSL_FLAG(int, connect_timeout_ms, 5000,
          "How long to wait for the edge agent to become ready");
ABSL_FLAG(std::string, model, "", "Model name, as the agent lists it");
ABSL_FLAG(bool, json, false, "Print one JSON object to stdout");

namespace tandem {

absl::StatusOr<std::unique_ptr<Client>> ConnectFromFlags() {
  const std::string address = absl::GetFlag(FLAGS_edge);
  if (address.empty()) {
    return absl::InvalidArgumentError(
        "--edge is required (unix:/path/to.sock or host:port)");
  }
  ClientOptions options;
  options.bearer_token = absl::GetFlag(FLAGS_token);
  options.connect_timeout =
      absl::Milliseconds(absl::GetFlag(FLAGS_connect_timeout_ms));
  return Client::Connect(address, options);
}

}  // namespace tandem
