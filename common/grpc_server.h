// Set-up shared by the two daemons' gRPC servers (part of tandem::common_grpc).
#ifndef TANDEM_COMMON_GRPC_SERVER_H_
#define TANDEM_COMMON_GRPC_SERVER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/access_control.h"
#include "common/tls_files.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "grpcpp/server_context.h"

namespace tandem {

// A builder for a server with the standard health service and reflection,
// sending and accepting messages up to `max_message_bytes` (larger requests
// get RESOURCE_EXHAUSTED from gRPC itself), with at most
// `max_concurrent_streams` calls open per connection (HTTP/2's setting: a
// client wanting more waits for one to end).
std::unique_ptr<grpc::ServerBuilder> NewServerBuilder(
    int64_t max_message_bytes, int max_concurrent_streams);

// The credentials of one listener: TLS on a TCP address when `tls` is
// enabled (checked first, see CheckServerTlsFiles), plaintext otherwise.
// Unix sockets stay plaintext: their file mode protects them.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ListenerCredentials(
    absl::string_view address, const ServerTlsFiles& tls);

// SIGHUP: re-reads the tokens file (the old tokens stay on an error) and
// checks the TLS files, which the listeners re-read on their own every
// refresh_s (a pair that does not match is not taken).
absl::Status ReloadSecurity(AccessControl& access, const ServerTlsFiles& tls);

// chmod of a "unix:PATH" listener's socket file (nothing for TCP).
absl::Status SetUnixSocketMode(absl::string_view address, uint32_t mode);

// Who is calling: AccessControl::Authenticate on the call's
// 'authorization' metadata and its peer.
absl::StatusOr<AccessControl::Caller> CallerOf(
    const AccessControl& access, const grpc::ServerContextBase& context);

// Health as probes ask for it: `ready` under "", "readiness" and
// `service_name`; "liveness" SERVING while the process runs.
void SetReady(grpc::Server* server, const char* service_name, bool ready);

// The health of one more service name (e.g. "model/NAME").
void SetServing(grpc::Server* server, const std::string& name, bool serving);

}  // namespace tandem

#endif  // TANDEM_COMMON_GRPC_SERVER_H_
