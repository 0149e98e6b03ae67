// Set-up shared by the two daemons' gRPC servers (part of tandem::common_grpc).
#ifndef TANDEM_COMMON_GRPC_SERVER_H_
#define TANDEM_COMMON_GRPC_SERVER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"

namespace tandem {

// A builder for a server with the standard health service and reflection,
// sending and accepting messages up to `max_message_bytes` (larger requests
// get RESOURCE_EXHAUSTED from gRPC itself).
std::unique_ptr<grpc::ServerBuilder> NewServerBuilder(
    int64_t max_message_bytes);

// Health as probes ask for it: `ready` under "", "readiness" and
// `service_name`; "liveness" SERVING while the process runs.
void SetReady(grpc::Server* server, const char* service_name, bool ready);

// The health of one more service name (e.g. "model/NAME").
void SetServing(grpc::Server* server, const std::string& name, bool serving);

}  // namespace tandem

#endif  // TANDEM_COMMON_GRPC_SERVER_H_
