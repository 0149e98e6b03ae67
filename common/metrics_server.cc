#include "common/metrics_server.h"

#include <httplib.h>
#include <sys/socket.h>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace tandem {
namespace {

constexpr char kContentType[] = "text/plain; version=0.0.4; charset=utf-8";

// Scrapes are few and small: two threads answer them.
constexpr int kThreads = 2;
constexpr size_t kMaxBody = 4096;

}  // namespace

MetricsServer::MetricsServer() : http_(std::make_unique<httplib::Server>()) {}

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    absl::string_view listen, const MetricsRegistry* registry) {
  const size_t colon = listen.rfind(':');
  int port = -1;
  if (colon == absl::string_view::npos ||
      !absl::SimpleAtoi(listen.substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics address is not HOST:PORT: '", listen, "'"));
  }
  std::string host(listen.substr(0, colon));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty()) host = "0.0.0.0";

  std::unique_ptr<MetricsServer> server(new MetricsServer());
  httplib::Server& http = *server->http_;
  // SO_REUSEADDR only: httplib's default adds SO_REUSEPORT, with which a
  // second daemon on the same port would bind too and take half the scrapes.
  http.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  http.new_task_queue = [] { return new httplib::ThreadPool(kThreads); };
  // A scrape carries no body: anything larger than this is refused (413)
  // before it is read, and a client that stalls is dropped.
  http.set_payload_max_length(kMaxBody);
  http.set_read_timeout(5, 0);
  http.Get("/metrics",
           [registry](const httplib::Request&, httplib::Response& response) {
             response.set_content(registry->Render(), kContentType);
           });
  if (port == 0) {
    port = http.bind_to_any_port(host);
  } else if (!http.bind_to_port(host, port)) {
    port = -1;
  }
  if (port <= 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen for metrics on ", listen));
  }
  server->port_ = port;
  server->listener_ = std::thread([&http] { http.listen_after_bind(); });
  // stop() only takes effect once the listener runs: wait for it, so that
  // the destructor cannot miss it.
  while (!http.is_running()) absl::SleepFor(absl::Milliseconds(1));
  return server;
}

MetricsServer::~MetricsServer() {
  http_->stop();
  if (listener_.joinable()) listener_.join();
}

}  // namespace tandem
