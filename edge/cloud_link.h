// The edge agent's one channel to the cloud: keepalive pings so a dead link
// is noticed while idle, reconnection with exponential backoff, and calls that
// fail fast (UNAVAILABLE) while disconnected so the agent can finish locally.
//
// Thread-safe: gRPC channels and stubs are.
#ifndef TANDEM_EDGE_CLOUD_LINK_H_
#define TANDEM_EDGE_CLOUD_LINK_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/tls_files.h"
#include "tandem/v1/cloud_service.pb.h"

namespace tandem {

// The interface the agent and the plan keeper use; Create makes the gRPC one.
// Tests substitute links that delay, drop or answer from a script.
class CloudLink {
 public:
  struct Options {
    int64_t max_message_bytes = 64 << 20;
    absl::Duration keepalive_interval = absl::Seconds(10);
    // Also the socket's TCP_USER_TIMEOUT (gRPC sets it from this on clients):
    // a cut link with data unacknowledged this long closes the connection,
    // which the channel then re-dials instead of waiting out TCP's backed-off
    // retransmissions. Not a transfer limit: a slow link still acknowledges.
    absl::Duration keepalive_timeout = absl::Seconds(2);
    // Reconnection backs off from initial_backoff to max_backoff: a cloud
    // that comes back is used again within about max_backoff.
    absl::Duration initial_backoff = absl::Milliseconds(100);
    absl::Duration max_backoff = absl::Seconds(1);
    // The least time one connection attempt (TCP and TLS handshakes) gets;
    // an attempt that fails at once (refused, unreachable) does not wait.
    absl::Duration min_connect_timeout = absl::Seconds(2);
    ClientTlsFiles tls;        // TLS when tls.ca is set; mutual with a cert.
    std::string bearer_token;  // Sent as 'authorization: Bearer ...'.
  };

  // Creates the channel; does not wait for a connection. `address` is any
  // gRPC target: "host:port" or "dns:///name:port" (round-robins over the
  // replicas the name resolves to), "ipv4:127.0.0.1:8500,127.0.0.1:8501"
  // (round-robins over the list), "unix:/path". Fails only on TLS files
  // that cannot be read or do not parse.
  static absl::StatusOr<std::unique_ptr<CloudLink>> Create(
      const std::string& address, const Options& options);
  virtual ~CloudLink() = default;

  using ContinueCallback =
      std::function<void(absl::StatusOr<tandem::v1::ContinueResponse>)>;

  // One Continue call that must be answered by `deadline`.
  virtual absl::StatusOr<tandem::v1::ContinueResponse> Continue(
      const tandem::v1::ContinueRequest& request, absl::Time deadline) = 0;
  // The same without holding the calling thread: `done` runs exactly once,
  // on some other thread (or on this one, before returning, when the call
  // fails at once), with the answer or the failure; the deadline is its
  // guard. The agent's block scheduler offloads with this, so a worker runs
  // other jobs while a tensor is in flight. The default calls Continue
  // synchronously (for links that answer at once).
  virtual void ContinueAsync(tandem::v1::ContinueRequest request,
                             absl::Time deadline, ContinueCallback done) {
    done(Continue(request, deadline));
  }
  virtual absl::StatusOr<tandem::v1::ProbeResponse> Probe(
      const tandem::v1::ProbeRequest& request, absl::Time deadline) = 0;
  virtual absl::StatusOr<tandem::v1::GetProfileResponse> GetProfile(
      const std::string& model, absl::Time deadline) = 0;
};

}  // namespace tandem

#endif  // TANDEM_EDGE_CLOUD_LINK_H_
