// TLS credentials from PEM files for the daemons' listeners and for clients
// (part of tandem::common_grpc; docs/design.md, "Security").
#ifndef TANDEM_COMMON_GRPC_TLS_H_
#define TANDEM_COMMON_GRPC_TLS_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/tls_files.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/support/channel_arguments.h"

namespace tandem {

// Checks that the files can be read and parsed and that the key belongs to
// the certificate: INVALID_ARGUMENT (naming the file and what is wrong),
// NOT_FOUND. Used at start, and on SIGHUP before the watcher picks them up.
absl::Status CheckServerTlsFiles(const ServerTlsFiles& files);

// TLS server credentials that re-read the files every `refresh_s` (gRPC's
// file watcher keeps the last good pair when a new one does not match).
// Checks the files first (CheckServerTlsFiles).
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> TlsServerCredentials(
    const ServerTlsFiles& files);

// Client credentials: TLS verifying the server against `ca` (and presenting
// `cert` when set), with `server_name` set on `args`. Refuses a cert without
// its key and files that do not parse.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> TlsChannelCredentials(
    const ClientTlsFiles& files, grpc::ChannelArguments* args);

}  // namespace tandem

#endif  // TANDEM_COMMON_GRPC_TLS_H_
