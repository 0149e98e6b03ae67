// Process plumbing shared by the two daemons: signals handled on a thread of
// their own (never in a signal handler: gRPC's Shutdown must not run there),
// the port file tests and scripts read, and systemd's readiness protocol.
#ifndef TANDEM_COMMON_DAEMON_H_
#define TANDEM_COMMON_DAEMON_H_

#include <cstdint>
#include <limits>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "common/access_control.h"
#include "common/tls_files.h"

namespace tandem {

// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread and every thread it
// starts later. Call first thing in main(), before any thread exists.
void BlockTerminationSignals();

// Debian builds Abseil without NDEBUG, so every absl::Mutex acquisition runs
// Abseil's lock-order (deadlock) detector: a global graph of which locks were
// held together, updated under a global lock. The daemons, the CLI and the
// overhead benchmark turn it off first thing in main(); test binaries keep it
// (it reports a lock-order inversion even when the deadlock did not happen).
void DisableMutexDeadlockDetection();

// Waits for one of the blocked signals and returns its number.
int WaitForTerminationSignal();

// Writes `port` and a newline to `path` atomically (temporary file + rename),
// so a reader never sees a half-written file.
absl::Status WritePortFile(const std::string& path, int port);

// Fills the unset limits and executor fields that both daemons' configs
// (tandem.v1.CloudConfig, tandem.v1.EdgeConfig) have, with the defaults.
template <typename DaemonConfig>
void FillDaemonDefaults(DaemonConfig* config) {
  auto* limits = config->mutable_limits();
  if (limits->max_message_bytes() <= 0) limits->set_max_message_bytes(64 << 20);
  if (limits->max_tensor_bytes() <= 0)
    limits->set_max_tensor_bytes(limits->max_message_bytes());
  if (limits->max_inflight_per_client() <= 0)
    limits->set_max_inflight_per_client(256);
  if (limits->max_inflight_tensor_bytes() <= 0) {
    constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
    limits->set_max_inflight_tensor_bytes(limits->max_tensor_bytes() > kMax / 4
                                              ? kMax
                                              : 4 * limits->max_tensor_bytes());
  }
  if (limits->max_concurrent_streams() <= 0)
    limits->set_max_concurrent_streams(100);
  auto* security = config->mutable_security();
  if (security->tls_refresh_s() <= 0) security->set_tls_refresh_s(5);
  if (security->unix_socket_mode() == 0) security->set_unix_socket_mode(0660);
  if (config->worker_threads() <= 0) config->set_worker_threads(2);
  if (config->intra_op_threads() <= 0) config->set_intra_op_threads(1);
  if (config->max_queue_size() <= 0) config->set_max_queue_size(256);
  if (config->warmup_runs() <= 0) config->set_warmup_runs(3);
  if (config->drain_timeout_ms() <= 0) config->set_drain_timeout_ms(10000);
}

// The TLS files and the access options of a daemon's config (filled by
// FillDaemonDefaults).
template <typename DaemonConfig>
ServerTlsFiles ServerTlsFilesOf(const DaemonConfig& config) {
  ServerTlsFiles files;
  files.cert = config.security().tls_cert();
  files.key = config.security().tls_key();
  files.client_ca = config.security().tls_client_ca();
  files.refresh_s = config.security().tls_refresh_s();
  return files;
}
template <typename DaemonConfig>
AccessControl::Options AccessOptionsOf(const DaemonConfig& config) {
  AccessControl::Options options;
  options.tokens_file = config.security().auth_tokens();
  options.max_inflight_per_client = config.limits().max_inflight_per_client();
  options.max_inflight_tensor_bytes =
      config.limits().max_inflight_tensor_bytes();
  return options;
}

// "plaintext", "TLS" or "mutual TLS", and ", bearer tokens" when they are
// on: how a daemon's TCP listeners are protected, for its start-up log.
template <typename DaemonConfig>
std::string SecuritySummary(const DaemonConfig& config) {
  const auto& security = config.security();
  std::string summary = security.tls_cert().empty()        ? "plaintext"
                        : security.tls_client_ca().empty() ? "TLS"
                                                           : "mutual TLS";
  if (!security.auth_tokens().empty()) summary += ", bearer tokens";
  return summary;
}

// sd_notify(3) without libsystemd: sends `state` ("READY=1", "STOPPING=1",
// "RELOADING=1", "STATUS=...") as one datagram to $NOTIFY_SOCKET. Does
// nothing and returns OK when the variable is unset (not under systemd).
absl::Status NotifySystemd(absl::string_view state);

}  // namespace tandem

#endif  // TANDEM_COMMON_DAEMON_H_
