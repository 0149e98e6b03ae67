#include "common/grpc_server.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/grpc_tls.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"

namespace tandem {

std::unique_ptr<grpc::ServerBuilder> NewServerBuilder(
    int64_t max_message_bytes, int max_concurrent_streams) {
  // Both take effect for builders made afterwards.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  auto builder = std::make_unique<grpc::ServerBuilder>();
  const int max_message = static_cast<int>(
      std::min<int64_t>(max_message_bytes, std::numeric_limits<int>::max()));
  builder->SetMaxReceiveMessageSize(max_message);
  builder->SetMaxSendMessageSize(max_message);
  if (max_concurrent_streams > 0) {
    builder->AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                                max_concurrent_streams);
  }
  return builder;
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ListenerCredentials(
    absl::string_view address, const ServerTlsFiles& tls) {
  if (absl::StartsWith(address, "unix:") || !tls.enabled())
    return grpc::InsecureServerCredentials();
  return TlsServerCredentials(tls);
}

absl::Status ReloadSecurity(AccessControl& access, const ServerTlsFiles& tls) {
  absl::Status status = access.Reload();
  if (tls.enabled()) status.Update(CheckServerTlsFiles(tls));
  return status;
}

absl::Status SetUnixSocketMode(absl::string_view address, uint32_t mode) {
  if (!absl::StartsWith(address, "unix:")) return absl::OkStatus();
  const std::string path(address.substr(5));
  if (chmod(path.c_str(), static_cast<mode_t>(mode)) != 0) {
    return absl::FailedPreconditionError(
        absl::StrFormat("chmod %o %s: %s", mode, path, std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::StatusOr<AccessControl::Caller> CallerOf(
    const AccessControl& access, const grpc::ServerContextBase& context) {
  const auto& metadata = context.client_metadata();
  const auto it = metadata.find("authorization");
  const absl::string_view authorization =
      it == metadata.end()
          ? absl::string_view()
          : absl::string_view(it->second.data(), it->second.size());
  return access.Authenticate(authorization, context.peer());
}

void SetReady(grpc::Server* server, const char* service_name, bool ready) {
  grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
  for (const char* name : {"", "readiness", service_name})
    health->SetServingStatus(name, ready);
  health->SetServingStatus("liveness", true);
}

void SetServing(grpc::Server* server, const std::string& name, bool serving) {
  server->GetHealthCheckService()->SetServingStatus(name, serving);
}

}  // namespace tandem
