// Process plumbing shared by the two daemons: signals handled on a thread of
// their own (never in a signal handler: gRPC's Shutdown must not run there),
// the port file tests and scripts read, and systemd's readiness protocol.
#ifndef TANDEM_COMMON_DAEMON_H_
#define TANDEM_COMMON_DAEMON_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace tandem {

// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread and every thread it
// starts later. Call first thing in main(), before any thread exists.
void BlockTerminationSignals();

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
  if (config->worker_threads() <= 0) config->set_worker_threads(2);
  if (config->intra_op_threads() <= 0) config->set_intra_op_threads(1);
  if (config->max_queue_size() <= 0) config->set_max_queue_size(256);
  if (config->warmup_runs() <= 0) config->set_warmup_runs(3);
  if (config->drain_timeout_ms() <= 0) config->set_drain_timeout_ms(10000);
}

// sd_notify(3) without libsystemd: sends `state` ("READY=1", "STOPPING=1",
// "RELOADING=1", "STATUS=...") as one datagram to $NOTIFY_SOCKET. Does
// nothing and returns OK when the variable is unset (not under systemd).
absl::Status NotifySystemd(absl::string_view state);

}  // namespace tandem

#endif  // TANDEM_COMMON_DAEMON_H_
