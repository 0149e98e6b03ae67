#include "common/grpc_server.h"

#include <algorithm>
#include <limits>

#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"

namespace tandem {

std::unique_ptr<grpc::ServerBuilder> NewServerBuilder(
    int64_t max_message_bytes) {
  // Both take effect for builders made afterwards.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  auto builder = std::make_unique<grpc::ServerBuilder>();
  const int max_message = static_cast<int>(
      std::min<int64_t>(max_message_bytes, std::numeric_limits<int>::max()));
  builder->SetMaxReceiveMessageSize(max_message);
  builder->SetMaxSendMessageSize(max_message);
  return builder;
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
