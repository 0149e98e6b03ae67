// Serves a MetricsRegistry over HTTP for Prometheus: GET /metrics answers
// the text exposition format (0.0.4); anything else is 404. Plain HTTP on its
// own port, as Prometheus scrapes it, separate from the daemons' gRPC port.
//
//   ASSIGN_OR_RETURN(auto server, MetricsServer::Start("0.0.0.0:8502", &reg));
//   ... server->port() ...
//   server.reset();  // Stops serving.
//
// Thread-safe; the registry must outlive the server.
#ifndef TANDEM_COMMON_METRICS_SERVER_H_
#define TANDEM_COMMON_METRICS_SERVER_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/metrics.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace tandem {

class MetricsServer {
 public:
  // `listen`: HOST:PORT ("[::]:8502" for IPv6; port 0 picks a free one).
  // INVALID_ARGUMENT for a malformed address, UNAVAILABLE when it cannot be
  // bound.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(
      absl::string_view listen, const MetricsRegistry* registry);
  ~MetricsServer();  // Stops serving and joins the listener.
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  int port() const { return port_; }

 private:
  MetricsServer();

  std::unique_ptr<httplib::Server> http_;
  std::thread listener_;
  int port_ = 0;
};

}  // namespace tandem

#endif  // TANDEM_COMMON_METRICS_SERVER_H_
