// The edge agent process in one object: the agent (models, policies, cloud
// link, the block scheduler its inferences run on), and the gRPC server
// applications reach over a unix socket and/or TCP (EdgeService, health,
// reflection).
//
// Start() returns once models are loaded and warmed and the server is
// SERVING. Shutdown() drains like the cloud server's.
#ifndef TANDEM_EDGE_EDGE_SERVER_H_
#define TANDEM_EDGE_EDGE_SERVER_H_

#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tandem/v1/daemon_config.pb.h"

namespace grpc {
class Server;
}  // namespace grpc

namespace tandem {

class AccessControl;
class EdgeAgent;
class EdgeServiceImpl;
class MetricsServer;

class EdgeServer {
 public:
  static absl::StatusOr<std::unique_ptr<EdgeServer>> Start(
      tandem::v1::EdgeConfig config);
  ~EdgeServer();  // Shutdown().

  // Bound TCP ports, in the order of config.listen (0 for unix sockets).
  const std::vector<int>& ports() const { return ports_; }
  // The first TCP port, or 0.
  int port() const;
  // The /metrics port (0 when config.metrics_listen is empty).
  int metrics_port() const;
  EdgeAgent* agent() { return agent_.get(); }
  // SIGHUP: re-reads the bearer tokens and checks the TLS files (see
  // ReloadSecurity in common/grpc_server.h).
  absl::Status ReloadSecurity();
  void Shutdown();

 private:
  EdgeServer() = default;

  tandem::v1::EdgeConfig config_;
  std::unique_ptr<AccessControl> access_;
  std::unique_ptr<EdgeAgent> agent_;
  std::unique_ptr<EdgeServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<MetricsServer> metrics_server_;
  std::vector<int> ports_;
  int drain_timeout_ms_ = 0;
  bool shut_down_ = false;
};

}  // namespace tandem

#endif  // TANDEM_EDGE_EDGE_SERVER_H_
