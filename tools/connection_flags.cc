#include "tools/connection_flags.h"

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "common/access_control.h"
#include "common/grpc_tls.h"
#include "common/status_macros.h"

ABSL_FLAG(std::string, edge, "",
          "Edge agent address: unix:/path/to.sock or host:port");
ABSL_FLAG(std::string, token, "",
          "Bearer token sent as 'authorization' metadata; empty for none");
ABSL_FLAG(std::string, token_file, "",
          "File holding the bearer token (keeps it out of the command line)");
ABSL_FLAG(std::string, tls_ca, "",
          "PEM CA that signed the agent's certificate: connect over TLS");
ABSL_FLAG(std::string, tls_client_cert, "",
          "PEM certificate to present to the agent (mutual TLS)");
ABSL_FLAG(std::string, tls_client_key, "",
          "PEM private key of --tls_client_cert");
ABSL_FLAG(std::string, tls_server_name, "",
          "Name the agent's certificate must carry, if not --edge's host");
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
  if (!absl::GetFlag(FLAGS_token_file).empty()) {
    if (!options.bearer_token.empty()) {
      return absl::InvalidArgumentError(
          "give --token or --token_file, not both");
    }
    ASSIGN_OR_RETURN(options.bearer_token,
                     ReadBearerToken(absl::GetFlag(FLAGS_token_file)));
  }
  ClientTlsFiles tls;
  tls.ca = absl::GetFlag(FLAGS_tls_ca);
  tls.cert = absl::GetFlag(FLAGS_tls_client_cert);
  tls.key = absl::GetFlag(FLAGS_tls_client_key);
  if (tls.enabled()) {
    grpc::ChannelArguments unused;
    ASSIGN_OR_RETURN(options.credentials, TlsChannelCredentials(tls, &unused));
    options.tls_server_name = absl::GetFlag(FLAGS_tls_server_name);
  } else if (!tls.cert.empty() || !tls.key.empty()) {
    return absl::InvalidArgumentError(
        "--tls_client_cert/--tls_client_key need --tls_ca");
  }
  options.connect_timeout =
      absl::Milliseconds(absl::GetFlag(FLAGS_connect_timeout_ms));
  return Client::Connect(address, options);
}

}  // namespace tandem
