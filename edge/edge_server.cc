#include "edge/edge_server.h"

#include <filesystem>
#include <limits>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/access_control.h"
#include "common/daemon.h"
#include "common/grpc_server.h"
#include "common/logging.h"
#include "common/metrics_server.h"
#include "common/status_macros.h"
#include "edge/edge_agent.h"
#include "edge/edge_service.h"
#include "grpcpp/server_builder.h"

namespace tandem {

absl::StatusOr<std::unique_ptr<EdgeServer>> EdgeServer::Start(
    tandem::v1::EdgeConfig config) {
  config = WithEdgeDefaults(std::move(config));
  std::unique_ptr<EdgeServer> server(new EdgeServer());
  server->config_ = config;
  server->drain_timeout_ms_ = config.drain_timeout_ms();
  // Security first: bad token or TLS files fail the start before the
  // models load.
  ASSIGN_OR_RETURN(server->access_,
                   AccessControl::Create(AccessOptionsOf(config)));
  std::vector<std::shared_ptr<grpc::ServerCredentials>> credentials;
  for (const std::string& address : config.listen()) {
    credentials.emplace_back();
    ASSIGN_OR_RETURN(credentials.back(),
                     ListenerCredentials(address, ServerTlsFilesOf(config)));
  }
  ASSIGN_OR_RETURN(server->agent_, EdgeAgent::Create(config));
  server->service_ = std::make_unique<EdgeServiceImpl>(server->agent_.get(),
                                                       server->access_.get());

  std::unique_ptr<grpc::ServerBuilder> builder_owner =
      NewServerBuilder(config.limits().max_message_bytes(),
                       config.limits().max_concurrent_streams());
  grpc::ServerBuilder& builder = *builder_owner;
  server->ports_.assign(config.listen_size(), 0);
  for (int i = 0; i < config.listen_size(); ++i) {
    const std::string& address = config.listen(i);
    const bool unix_socket = absl::StartsWith(address, "unix:");
    if (unix_socket) {
      // A socket file left by a previous run would make the bind fail.
      std::error_code ignored;
      std::filesystem::remove(address.substr(5), ignored);
    }
    builder.AddListeningPort(address, credentials[i],
                             unix_socket ? nullptr : &server->ports_[i]);
  }
  builder.RegisterService(server->service_.get());
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", absl::StrJoin(config.listen(), ", ")));
  }
  for (const std::string& address : config.listen()) {
    RETURN_IF_ERROR(
        SetUnixSocketMode(address, config.security().unix_socket_mode()));
  }
  if (!config.metrics_listen().empty()) {
    ASSIGN_OR_RETURN(server->metrics_server_,
                     MetricsServer::Start(config.metrics_listen(),
                                          &server->agent_->metrics()));
    TANDEM_LOG(INFO) << "metrics on http://" << config.metrics_listen()
                     << "/metrics (port " << server->metrics_server_->port()
                     << ")";
  }
  const tandem::v1::ListModelsResponse models = server->agent_->ListModels();
  for (const tandem::v1::ModelSummary& model : models.models()) {
    SetServing(server->server_.get(), "model/" + model.name(), true);
    SetServing(server->server_.get(),
               "model/" + model.name() + "/" + model.version(), true);
  }
  SetReady(server->server_.get(), tandem::v1::EdgeService::service_full_name(),
           true);
  TANDEM_LOG(INFO) << "tandem-edge serving on "
                   << absl::StrJoin(config.listen(), ", ") << " ("
                   << SecuritySummary(config) << ")"
                   << (config.cloud().empty() ? " (edge-only)"
                                              : ", cloud at " + config.cloud());
  return server;
}

EdgeServer::~EdgeServer() { Shutdown(); }

absl::Status EdgeServer::ReloadSecurity() {
  return tandem::ReloadSecurity(*access_, ServerTlsFilesOf(config_));
}

int EdgeServer::metrics_port() const {
  return metrics_server_ == nullptr ? 0 : metrics_server_->port();
}

int EdgeServer::port() const {
  for (int port : ports_) {
    if (port != 0) return port;
  }
  return 0;
}

void EdgeServer::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  if (server_ != nullptr) {
    SetReady(server_.get(), tandem::v1::EdgeService::service_full_name(),
             false);
    server_->Shutdown(std::chrono::system_clock::now() +
                      std::chrono::milliseconds(drain_timeout_ms_));
  }
  // Queued and waiting jobs are answered UNAVAILABLE, so the drain ends.
  if (agent_ != nullptr) agent_->Shutdown();
  if (server_ != nullptr) server_->Wait();
  metrics_server_.reset();
}

}  // namespace tandem
