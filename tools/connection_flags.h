// Flags every `tandem` subcommand that talks to an edge agent shares, and the
// connection they describe.
#ifndef TANDEM_TOOLS_CONNECTION_FLAGS_H_
#define TANDEM_TOOLS_CONNECTION_FLAGS_H_

#include <memory>
#include <string>

#include "absl/flags/declare.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tandem/client.h"

ABSL_DECLARE_FLAG(std::string, edge);
ABSL_DECLARE_FLAG(std::string, token);
ABSL_DECLARE_FLAG(std::string, token_file);
ABSL_DECLARE_FLAG(std::string, tls_ca);
ABSL_DECLARE_FLAG(std::string, tls_client_cert);
ABSL_DECLARE_FLAG(std::string, tls_client_key);
ABSL_DECLARE_FLAG(std::string, tls_server_name);
ABSL_DECLARE_FLAG(int, connect_timeout_ms);
ABSL_DECLARE_FLAG(std::string, model);
ABSL_DECLARE_FLAG(bool, json);

namespace tandem {

// Connects to --edge with --token (or --token_file), TLS when --tls_ca is
// set (mutual with --tls_client_cert/--tls_client_key), and
// --connect_timeout_ms. INVALID_ARGUMENT when --edge is empty or a TLS or
// token file is unusable.
absl::StatusOr<std::unique_ptr<Client>> ConnectFromFlags();

}  // namespace tandem

#endif  // TANDEM_TOOLS_CONNECTION_FLAGS_H_
