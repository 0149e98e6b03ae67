// tandem-cloud: finishes split inferences for edge agents.
//
//   tandem-cloud --listen=0.0.0.0:8500 --model_repository=/models
//                [--config=cloud.pbtxt] [--port_file=PATH]
//                [--max_batch_size=8 --preferred_batch_size=4,8
//                 --max_queue_delay_us=500]
//                [--metrics_listen=0.0.0.0:8502 [--metrics_port_file=PATH]]
//                [--tls_cert=PEM --tls_key=PEM [--tls_client_ca=PEM]]
//                [--auth_tokens=FILE]
//
// Flags override the config file (protobuf text, tandem.v1.CloudConfig).
// SIGHUP rescans the model repository (new, changed and removed versions),
// re-reads the bearer tokens and checks the TLS files; SIGTERM or SIGINT
// drain and exit 0.
#include <signal.h>

#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "cloud/cloud_server.h"
#include "common/daemon.h"
#include "common/logging.h"
#include "common/security_flags.h"
#include "common/text_proto.h"

ABSL_FLAG(std::string, listen, "",
          "HOST:PORT or unix:PATH (default 0.0.0.0:8500)");
ABSL_FLAG(std::string, model_repository, "", "Model repository directory");
ABSL_FLAG(std::string, config, "", "CloudConfig in protobuf text format");
ABSL_FLAG(std::string, port_file, "", "Write the bound port here once serving");
ABSL_FLAG(std::string, metrics_listen, "",
          "HOST:PORT of the Prometheus /metrics endpoint (empty: off)");
ABSL_FLAG(std::string, metrics_port_file, "",
          "Write the bound metrics port here once serving");
ABSL_FLAG(int64_t, max_message_bytes, 0,
          "Largest gRPC message (default 64 MiB)");
ABSL_FLAG(int32_t, worker_threads, 0, "LibTorch executor threads (default 2)");
ABSL_FLAG(int32_t, intra_op_threads, 0, "Threads per LibTorch op (default 1)");
ABSL_FLAG(int32_t, max_queue_size, 0,
          "Queued requests before RESOURCE_EXHAUSTED (default 256)");
ABSL_FLAG(int32_t, drain_timeout_ms, 0,
          "Time calls in flight get on SIGTERM (default 10000)");
ABSL_FLAG(int32_t, max_connection_age_s, -1,
          "Close connections after this age (0: never)");
ABSL_FLAG(int32_t, max_batch_size, -1,
          "Continue requests run as one batch, at most (0 or 1: no batching)");
ABSL_FLAG(std::vector<std::string>, preferred_batch_size, {},
          "Batch sizes that run as soon as they fill (ascending)");
ABSL_FLAG(int64_t, max_queue_delay_us, -1,
          "How long a request may wait for a batch to fill, in microseconds");

namespace tandem {
namespace {

absl::StatusOr<tandem::v1::CloudConfig> ConfigFromFlags() {
  tandem::v1::CloudConfig config;
  if (!absl::GetFlag(FLAGS_config).empty()) {
    absl::Status status =
        ReadTextProtoFile(absl::GetFlag(FLAGS_config), &config);
    if (!status.ok()) return status;
  }
  if (!absl::GetFlag(FLAGS_listen).empty())
    config.set_listen(absl::GetFlag(FLAGS_listen));
  std::string error;
  if (!ApplySecurityFlags(config.mutable_security(), &error))
    return absl::InvalidArgumentError(error);
  if (!absl::GetFlag(FLAGS_model_repository).empty()) {
    config.set_model_repository(absl::GetFlag(FLAGS_model_repository));
  }
  if (!absl::GetFlag(FLAGS_metrics_listen).empty()) {
    config.set_metrics_listen(absl::GetFlag(FLAGS_metrics_listen));
  }
  if (absl::GetFlag(FLAGS_max_message_bytes) > 0) {
    config.mutable_limits()->set_max_message_bytes(
        absl::GetFlag(FLAGS_max_message_bytes));
  }
  if (absl::GetFlag(FLAGS_worker_threads) > 0) {
    config.set_worker_threads(absl::GetFlag(FLAGS_worker_threads));
  }
  if (absl::GetFlag(FLAGS_intra_op_threads) > 0) {
    config.set_intra_op_threads(absl::GetFlag(FLAGS_intra_op_threads));
  }
  if (absl::GetFlag(FLAGS_max_queue_size) > 0) {
    config.set_max_queue_size(absl::GetFlag(FLAGS_max_queue_size));
  }
  if (absl::GetFlag(FLAGS_drain_timeout_ms) > 0) {
    config.set_drain_timeout_ms(absl::GetFlag(FLAGS_drain_timeout_ms));
  }
  if (absl::GetFlag(FLAGS_max_connection_age_s) >= 0) {
    config.set_max_connection_age_s(absl::GetFlag(FLAGS_max_connection_age_s));
  }
  if (absl::GetFlag(FLAGS_max_batch_size) >= 0) {
    config.set_max_batch_size(absl::GetFlag(FLAGS_max_batch_size));
  }
  if (!absl::GetFlag(FLAGS_preferred_batch_size).empty()) {
    auto* sizes =
        config.mutable_dynamic_batching()->mutable_preferred_batch_size();
    sizes->Clear();
    for (const std::string& text : absl::GetFlag(FLAGS_preferred_batch_size)) {
      int size = 0;
      if (!absl::SimpleAtoi(text, &size)) {
        return absl::InvalidArgumentError(
            "--preferred_batch_size: not a number: " + text);
      }
      sizes->Add(size);
    }
  }
  if (absl::GetFlag(FLAGS_max_queue_delay_us) >= 0) {
    config.mutable_dynamic_batching()->set_max_queue_delay_microseconds(
        absl::GetFlag(FLAGS_max_queue_delay_us));
  }
  return config;
}

int Main() {
  absl::StatusOr<tandem::v1::CloudConfig> config = ConfigFromFlags();
  if (!config.ok()) {
    TANDEM_LOG(ERROR) << config.status();
    return 2;
  }
  absl::StatusOr<std::unique_ptr<CloudServer>> server =
      CloudServer::Start(*std::move(config));
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
  while (true) {
    const int signal = WaitForTerminationSignal();
    if (signal == SIGHUP) {
      // Models, tokens and TLS files: other settings need a restart.
      absl::Status status = (*server)->ReloadModels();
      status.Update((*server)->ReloadSecurity());
      if (!status.ok()) TANDEM_LOG(ERROR) << "SIGHUP: " << status;
      continue;
    }
    TANDEM_LOG(INFO) << "signal " << signal << ": draining";
    break;
  }
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
      "Finishes split inferences for Tandem edge agents.");
  absl::ParseCommandLine(argc, argv);
  return tandem::Main();
}
