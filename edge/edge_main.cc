// tandem-edge: the edge agent daemon.
//
//   tandem-edge --listen=unix:/run/tandem/edge.sock,127.0.0.1:8600
//               --cloud=cloud.example:8500
//               --model_repository=/var/lib/tandem/models
//               [--config=/etc/tandem/edge.pbtxt] [--port_file=PATH]
//               [--tls_cert=PEM --tls_key=PEM [--tls_client_ca=PEM]]
//               [--auth_tokens=FILE] [--cloud_tls_ca=PEM
//               [--cloud_tls_cert=PEM --cloud_tls_key=PEM]]
//               [--cloud_token_file=FILE]
//
// Flags override the config file (protobuf text, tandem.v1.EdgeConfig).
// SIGTERM/SIGINT drain and exit 0; SIGHUP reloads the per-model policies
// from --config, keeping the old ones when the new file is invalid, re-reads
// the bearer tokens and checks the TLS files. Speaks
// systemd's notify protocol (READY, RELOADING, STOPPING) when NOTIFY_SOCKET
// is set.
#include <signal.h>

#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_split.h"
#include "common/daemon.h"
#include "common/logging.h"
#include "common/security_flags.h"
#include "common/text_proto.h"
#include "edge/edge_agent.h"
#include "edge/edge_server.h"

ABSL_FLAG(std::string, listen, "",
          "Comma-separated unix:PATH and/or HOST:PORT addresses");
ABSL_FLAG(std::string, cloud, "", "Cloud server address (empty: edge-only)");
ABSL_FLAG(std::string, model_repository, "", "Model repository directory");
ABSL_FLAG(std::string, config, "",
          "EdgeConfig in protobuf text format (re-read on SIGHUP)");
ABSL_FLAG(std::string, port_file, "",
          "Write the first bound TCP port here once serving");
ABSL_FLAG(std::string, metrics_listen, "",
          "HOST:PORT of the Prometheus /metrics endpoint (empty: off)");
ABSL_FLAG(std::string, metrics_port_file, "",
          "Write the bound metrics port here once serving");
ABSL_FLAG(int32_t, worker_threads, 0, "Inference threads (default 2)");
ABSL_FLAG(int32_t, intra_op_threads, 0, "Threads per LibTorch op (default 1)");
ABSL_FLAG(double, emulated_slowdown, 0,
          "Benchmarks only: emulate a device this many times slower");
ABSL_FLAG(int32_t, cloud_timeout_ms, 0,
          "Cloud call timeout without a request deadline");
ABSL_FLAG(std::string, scheduling_policy, "",
          "Block scheduler order: tandem_rt (default), fifo, edf_request, "
          "fixed_priority, edf_early_drop, least_slack, imprecise_edf");
ABSL_FLAG(std::string, device, "", "Where blocks run: cpu (default), cuda:N");
ABSL_FLAG(std::string, cloud_tls_ca, "",
          "PEM CA that signed the cloud's certificate: TLS to the cloud");
ABSL_FLAG(std::string, cloud_tls_cert, "",
          "PEM certificate the edge presents to the cloud (mutual TLS)");
ABSL_FLAG(std::string, cloud_tls_key, "",
          "PEM private key of --cloud_tls_cert");
ABSL_FLAG(std::string, cloud_tls_server_name, "",
          "Name the cloud's certificate must carry, if not the --cloud host");
ABSL_FLAG(std::string, cloud_token_file, "",
          "File with the bearer token the edge sends the cloud");
ABSL_FLAG(std::vector<std::string>, split, {},
          "Per-model split points, e.g. fmnist_branchy=2,camera_branchy=3 (-1: "
          "edge-only)");

namespace tandem {
namespace {

absl::StatusOr<tandem::v1::EdgeConfig> ConfigFromFlags() {
  tandem::v1::EdgeConfig config;
  if (!absl::GetFlag(FLAGS_config).empty()) {
    absl::Status status =
        ReadTextProtoFile(absl::GetFlag(FLAGS_config), &config);
    if (!status.ok()) return status;
  }
  if (!absl::GetFlag(FLAGS_listen).empty()) {
    config.clear_listen();
    for (absl::string_view address :
         absl::StrSplit(absl::GetFlag(FLAGS_listen), ',', absl::SkipEmpty())) {
      config.add_listen(std::string(address));
    }
  }
  if (!absl::GetFlag(FLAGS_cloud).empty())
    config.set_cloud(absl::GetFlag(FLAGS_cloud));
  std::string error;
  if (!ApplySecurityFlags(config.mutable_security(), &error))
    return absl::InvalidArgumentError(error);
  tandem::v1::ClientTls* cloud_tls = config.mutable_cloud_tls();
  if (!absl::GetFlag(FLAGS_cloud_tls_ca).empty())
    cloud_tls->set_ca(absl::GetFlag(FLAGS_cloud_tls_ca));
  if (!absl::GetFlag(FLAGS_cloud_tls_cert).empty())
    cloud_tls->set_cert(absl::GetFlag(FLAGS_cloud_tls_cert));
  if (!absl::GetFlag(FLAGS_cloud_tls_key).empty())
    cloud_tls->set_key(absl::GetFlag(FLAGS_cloud_tls_key));
  if (!absl::GetFlag(FLAGS_cloud_tls_server_name).empty())
    cloud_tls->set_server_name(absl::GetFlag(FLAGS_cloud_tls_server_name));
  if (!absl::GetFlag(FLAGS_cloud_token_file).empty())
    config.set_cloud_token_file(absl::GetFlag(FLAGS_cloud_token_file));
  if (!absl::GetFlag(FLAGS_metrics_listen).empty())
    config.set_metrics_listen(absl::GetFlag(FLAGS_metrics_listen));
  if (!absl::GetFlag(FLAGS_model_repository).empty()) {
    config.set_model_repository(absl::GetFlag(FLAGS_model_repository));
  }
  if (absl::GetFlag(FLAGS_worker_threads) > 0) {
    config.set_worker_threads(absl::GetFlag(FLAGS_worker_threads));
  }
  if (absl::GetFlag(FLAGS_intra_op_threads) > 0) {
    config.set_intra_op_threads(absl::GetFlag(FLAGS_intra_op_threads));
  }
  if (absl::GetFlag(FLAGS_emulated_slowdown) > 0) {
    config.set_emulated_slowdown(absl::GetFlag(FLAGS_emulated_slowdown));
  }
  if (absl::GetFlag(FLAGS_cloud_timeout_ms) > 0) {
    config.set_cloud_timeout_ms(absl::GetFlag(FLAGS_cloud_timeout_ms));
  }
  if (!absl::GetFlag(FLAGS_scheduling_policy).empty()) {
    config.set_scheduling_policy(absl::GetFlag(FLAGS_scheduling_policy));
  }
  if (!absl::GetFlag(FLAGS_device).empty())
    config.set_device(absl::GetFlag(FLAGS_device));
  for (const std::string& entry : absl::GetFlag(FLAGS_split)) {
    std::pair<std::string, std::string> parts = absl::StrSplit(entry, '=');
    int split;
    if (parts.first.empty() || !absl::SimpleAtoi(parts.second, &split)) {
      return absl::InvalidArgumentError("--split wants MODEL=K entries, got '" +
                                        entry + "'");
    }
    tandem::v1::EdgeModelPolicy* policy = nullptr;
    for (auto& existing : *config.mutable_models()) {
      if (existing.model_name() == parts.first) policy = &existing;
    }
    if (policy == nullptr) {
      policy = config.add_models();
      policy->set_model_name(parts.first);
    }
    policy->set_split_point(split);
  }
  return config;
}

void Reload(EdgeServer& server) {
  (void)NotifySystemd("RELOADING=1");
  absl::StatusOr<tandem::v1::EdgeConfig> config = ConfigFromFlags();
  absl::Status status =
      config.ok() ? server.agent()->Reload(*config) : config.status();
  if (status.ok()) {
    TANDEM_LOG(INFO) << "SIGHUP: configuration reloaded";
  } else {
    TANDEM_LOG(ERROR) << "SIGHUP: keeping the old configuration: " << status;
  }
  // Tokens and TLS files as the daemon started with (the paths do not
  // change on reload; their contents do).
  status = server.ReloadSecurity();
  if (!status.ok()) TANDEM_LOG(ERROR) << "SIGHUP: " << status;
  (void)NotifySystemd("READY=1");
}

int Main() {
  absl::StatusOr<tandem::v1::EdgeConfig> config = ConfigFromFlags();
  if (!config.ok()) {
    TANDEM_LOG(ERROR) << config.status();
    return 2;
  }
  absl::StatusOr<std::unique_ptr<EdgeServer>> server =
      EdgeServer::Start(*std::move(config));
  if (!server.ok()) {
    TANDEM_LOG(ERROR) << "cannot start: " << server.status();
    return 1;
  }
  if (!absl::GetFlag(FLAGS_port_file).empty()) {
    absl::Status status =
        WritePortFile(absl::GetFlag(FLAGS_port_file), (*server)->port());
    if (!status.ok()) TANDEM_LOG(ERROR) << status;
  }
  if (!absl::GetFlag(FLAGS_metrics_port_file).empty()) {
    absl::Status status = WritePortFile(absl::GetFlag(FLAGS_metrics_port_file),
                                        (*server)->metrics_port());
    if (!status.ok()) TANDEM_LOG(ERROR) << status;
  }
  (void)NotifySystemd("READY=1\nSTATUS=serving");
  while (true) {
    const int signal = WaitForTerminationSignal();
    if (signal == SIGHUP) {
      Reload(**server);
      continue;
    }
    TANDEM_LOG(INFO) << "signal " << signal << ": draining";
    break;
  }
  (void)NotifySystemd("STOPPING=1");
  (*server)->Shutdown();
  TANDEM_LOG(INFO) << "stopped";
  return 0;
}

}  // namespace
}  // namespace tandem

int main(int argc, char** argv) {
  tandem::DisableMutexDeadlockDetection();
  tandem::BlockTerminationSignals();
  absl::SetProgramUsageMessage(
      "The Tandem edge agent: split inference between edge and cloud.");
  absl::ParseCommandLine(argc, argv);
  return tandem::Main();
}
