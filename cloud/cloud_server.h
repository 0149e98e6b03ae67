// The cloud server process in one object: gRPC server (CloudService, health,
// reflection), the dynamic batcher LibTorch runs in, and the model repository.
//
// Start() opens the port at once with health NOT_SERVING, loads and warms
// the models, then reports SERVING. Shutdown() drains: readiness goes
// NOT_SERVING, new calls are refused, calls in flight finish (up to the drain
// timeout), then the batcher runs what is queued and stops.
//
//   ASSIGN_OR_RETURN(auto server, CloudServer::Start(options));
//   std::cout << server->port();
//   ...
//   server->Shutdown();
#ifndef TANDEM_CLOUD_CLOUD_SERVER_H_
#define TANDEM_CLOUD_CLOUD_SERVER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/access_control.h"
#include "common/metrics.h"
#include "tandem/v1/daemon_config.pb.h"

namespace grpc {
class Server;
}  // namespace grpc

namespace tandem {

class CloudMetrics;
class CloudServiceImpl;
class ContinueRunner;
class DynamicBatcher;
class MetricsServer;
class ModelRepository;

// Fills unset fields of `config` with the defaults.
tandem::v1::CloudConfig WithCloudDefaults(tandem::v1::CloudConfig config);

class CloudServer {
 public:
  // Health service names besides "" and the service's full name.
  static constexpr char kLiveness[] = "liveness";
  static constexpr char kReadiness[] = "readiness";

  // Returns once the models are loaded and the server is SERVING. Errors:
  // the address cannot be bound (UNAVAILABLE), a model does not load.
  static absl::StatusOr<std::unique_ptr<CloudServer>> Start(
      tandem::v1::CloudConfig config);

  ~CloudServer();  // Shutdown().

  // The bound TCP port (the chosen one when listening on port 0); 0 for unix
  // sockets.
  int port() const { return port_; }
  // Rescans the model repository (SIGHUP): loads and warms new versions
  // (the packages' version_policy decides which), unloads removed ones,
  // and keeps unchanged ones; requests already queued for a removed
  // version still run. Only then does the new set take requests, and
  // health "model/NAME" and "model/NAME/VERSION" follow it. A package that
  // no longer loads keeps its old versions; the error is returned (and
  // listed by ListModels). Other config fields need a restart.
  absl::Status ReloadModels() ABSL_LOCKS_EXCLUDED(reload_mu_);

  // SIGHUP: re-reads the bearer tokens and checks the TLS files (see
  // ReloadSecurity in common/grpc_server.h).
  absl::Status ReloadSecurity();

  // The /metrics port (0 when config.metrics_listen is empty).
  int metrics_port() const;
  void Shutdown();
  int64_t continue_requests() const;
  // What /metrics serves.
  const MetricsRegistry& metrics() const { return registry_; }

 private:
  CloudServer() = default;
  // Profiles the listed "name:version"s of `repository` for GetProfile.
  absl::Status Profile(const ModelRepository& repository,
                       const std::vector<std::string>& ids);
  // Health and the ready gauge for the models of `repository`, NOT_SERVING
  // for those of `before` it lacks.
  void PublishModels(const ModelRepository& repository,
                     const ModelRepository* before);

  tandem::v1::CloudConfig config_;
  MetricsRegistry registry_;
  std::unique_ptr<CloudMetrics> metrics_;
  std::unique_ptr<AccessControl> access_;
  std::unique_ptr<ContinueRunner> runner_;
  std::unique_ptr<DynamicBatcher> batcher_;
  std::unique_ptr<CloudServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<MetricsServer> metrics_server_;
  GaugeFamily* model_ready_ = nullptr;
  absl::Mutex reload_mu_;  // One reload at a time.
  int port_ = 0;
  bool shut_down_ = false;
};

}  // namespace tandem

#endif  // TANDEM_CLOUD_CLOUD_SERVER_H_
