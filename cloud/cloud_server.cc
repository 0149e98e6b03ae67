#include "cloud/cloud_server.h"

#include <ATen/Parallel.h>

#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cloud/cloud_metrics.h"
#include "cloud/cloud_service.h"
#include "cloud/continue_runner.h"
#include "cloud/dynamic_batcher.h"
#include "common/daemon.h"
#include "common/grpc_server.h"
#include "common/logging.h"
#include "common/metrics_server.h"
#include "common/status_macros.h"
#include "grpcpp/server_builder.h"
#include "models/model_repository.h"
#include "models/profiler.h"

namespace tandem {

namespace {

ModelLoadOptions LoadOptions(const tandem::v1::CloudConfig& config) {
  ModelLoadOptions options;
  options.warmup_runs = config.warmup_runs();
  return options;
}

}  // namespace

tandem::v1::CloudConfig WithCloudDefaults(tandem::v1::CloudConfig config) {
  if (config.listen().empty()) config.set_listen("0.0.0.0:8500");
  FillDaemonDefaults(&config);
  return config;
}

absl::StatusOr<std::unique_ptr<CloudServer>> CloudServer::Start(
    tandem::v1::CloudConfig config) {
  config = WithCloudDefaults(std::move(config));
  if (config.model_repository().empty()) {
    return absl::InvalidArgumentError("model_repository is not set");
  }
  std::unique_ptr<CloudServer> server(new CloudServer());
  server->config_ = config;
  ASSIGN_OR_RETURN(server->access_,
                   AccessControl::Create(AccessOptionsOf(config)));
  ASSIGN_OR_RETURN(
      std::shared_ptr<grpc::ServerCredentials> credentials,
      ListenerCredentials(config.listen(), ServerTlsFilesOf(config)));
  at::set_num_threads(config.intra_op_threads());

  DecodeLimits limits;
  limits.max_tensor_bytes = config.limits().max_tensor_bytes();
  server->runner_ = std::make_unique<ContinueRunner>(limits);
  ASSIGN_OR_RETURN(DynamicBatcher::Options batching,
                   DynamicBatcher::OptionsFrom(config));
  ContinueRunner* runner = server->runner_.get();
  batching.model_max_batch = [runner](const tandem::v1::ContinueRequest& r) {
    return runner->ModelMaxBatch(r);
  };
  AddProcessMetrics(&server->registry_);
  server->metrics_ = std::make_unique<CloudMetrics>(
      &server->registry_, [batcher = &server->batcher_] {
        return *batcher == nullptr
                   ? 0.0
                   : static_cast<double>((*batcher)->queue_depth());
      });
  CloudMetrics* metrics = server->metrics_.get();
  server->model_ready_ = server->registry_.AddGauge(
      "tandem_cloud_model_ready",
      "1 for each model version loaded, warmed and taking requests.",
      {"model", "version"});
  server->batcher_ = std::make_unique<DynamicBatcher>(
      std::move(batching),
      [runner, metrics](const std::vector<DynamicBatcher::Item>& batch) {
        const absl::Time start = absl::Now();
        std::vector<ContinueRunner::Row> rows;
        rows.reserve(batch.size());
        absl::Duration queued;
        for (const DynamicBatcher::Item& item : batch) {
          rows.push_back({item.request.get(), item.queued_at, item.deadline});
          queued += start - item.queued_at;
        }
        std::vector<DynamicBatcher::Result> results = runner->RunBatch(rows);
        const tandem::v1::ContinueRequest& first = *batch.front().request;
        metrics->OnBatch(
            CloudMetrics::KeyOf(first, runner->ResolvedVersion(first),
                                /*checked=*/true),
            static_cast<int>(batch.size()), queued, absl::Now() - start);
        return results;
      });
  server->service_ = std::make_unique<CloudServiceImpl>(
      server->runner_.get(), server->batcher_.get(), metrics,
      server->access_.get(), CloudServiceImpl::Options{});

  std::unique_ptr<grpc::ServerBuilder> builder_owner =
      NewServerBuilder(config.limits().max_message_bytes(),
                       config.limits().max_concurrent_streams());
  grpc::ServerBuilder& builder = *builder_owner;
  // Let edges keep idle connections warm with pings every 10 s.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(
      GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 5000);
  if (config.max_connection_age_s() > 0) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS,
                               config.max_connection_age_s() * 1000);
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
                               config.drain_timeout_ms());
  }
  const bool unix_socket = absl::StartsWith(config.listen(), "unix:");
  builder.AddListeningPort(config.listen(), credentials,
                           unix_socket ? nullptr : &server->port_);
  builder.RegisterService(server->service_.get());
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || (!unix_socket && server->port_ == 0)) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", config.listen()));
  }
  RETURN_IF_ERROR(
      SetUnixSocketMode(config.listen(), config.security().unix_socket_mode()));
  SetReady(server->server_.get(), tandem::v1::CloudService::service_full_name(),
           false);
  if (!config.metrics_listen().empty()) {
    ASSIGN_OR_RETURN(
        server->metrics_server_,
        MetricsServer::Start(config.metrics_listen(), &server->registry_));
    TANDEM_LOG(INFO) << "metrics on http://" << config.metrics_listen()
                     << "/metrics (port " << server->metrics_server_->port()
                     << ")";
  }
  TANDEM_LOG(INFO) << "tandem-cloud listening on " << config.listen()
                   << " (port " << server->port_ << ", "
                   << SecuritySummary(config) << "), loading models from "
                   << config.model_repository();

  ASSIGN_OR_RETURN(
      std::shared_ptr<const ModelRepository> repository,
      ModelRepository::Load(config.model_repository(), LoadOptions(config)));
  std::vector<std::string> ids;
  for (const ProgressiveModel* model : repository->models()) {
    ids.push_back(absl::StrCat(model->name(), ":", model->version()));
  }
  RETURN_IF_ERROR(server->Profile(*repository, ids));
  server->runner_->SetRepository(repository);
  server->PublishModels(*repository, nullptr);
  SetReady(server->server_.get(), tandem::v1::CloudService::service_full_name(),
           true);
  TANDEM_LOG(INFO) << "tandem-cloud ready";
  return server;
}

absl::Status CloudServer::Profile(const ModelRepository& repository,
                                  const std::vector<std::string>& ids) {
  ProfileOptions options;
  options.runs = 10;
  for (const std::string& id : ids) {
    const size_t colon = id.rfind(':');
    ASSIGN_OR_RETURN(const ProgressiveModel* model,
                     repository.Get(id.substr(0, colon), id.substr(colon + 1)));
    // The newest version's latencies stand for the model in GetProfile.
    if (repository.Get(model->name()).value() != model) continue;
    ASSIGN_OR_RETURN(tandem::v1::ModelProfile profile,
                     ProfileModel(*model, options));
    runner_->SeedProfile(profile);
  }
  return absl::OkStatus();
}

void CloudServer::PublishModels(const ModelRepository& repository,
                                const ModelRepository* before) {
  std::set<std::string> serving;
  model_ready_->Clear();
  for (const ProgressiveModel* model : repository.all_versions()) {
    serving.insert("model/" + model->name());
    serving.insert("model/" + model->name() + "/" + model->version());
    model_ready_->Set({model->name(), model->version()}, 1);
  }
  if (before != nullptr) {
    for (const ProgressiveModel* model : before->all_versions()) {
      for (const std::string& name :
           {"model/" + model->name(),
            "model/" + model->name() + "/" + model->version()}) {
        if (serving.count(name) == 0) SetServing(server_.get(), name, false);
      }
    }
  }
  for (const std::string& name : serving) SetServing(server_.get(), name, true);
}

absl::Status CloudServer::ReloadModels() {
  absl::MutexLock lock(&reload_mu_);
  std::shared_ptr<const ModelRepository> before = runner_->repository();
  if (before == nullptr) return absl::UnavailableError("models are loading");
  ModelRepository::ReloadReport report;
  ASSIGN_OR_RETURN(
      std::shared_ptr<const ModelRepository> next,
      ModelRepository::Reload(*before, LoadOptions(config_), &report));
  RETURN_IF_ERROR(Profile(*next, report.loaded));
  // Requests queued for a removed version had until the drain timeout.
  runner_->SetRepository(next, absl::Milliseconds(config_.drain_timeout_ms()));
  PublishModels(*next, before.get());
  std::map<std::string, std::string> errors;
  for (const auto& [name, status] : report.errors) {
    errors[name] = std::string(status.message());
  }
  service_->SetLoadErrors(std::move(errors));
  TANDEM_LOG(INFO) << "models reloaded: loaded ["
                   << absl::StrJoin(report.loaded, ", ") << "], unloaded ["
                   << absl::StrJoin(report.unloaded, ", ") << "], kept ["
                   << absl::StrJoin(report.kept, ", ") << "]";
  if (report.errors.empty()) return absl::OkStatus();
  std::vector<std::string> failed;
  for (const auto& [name, status] : report.errors) {
    failed.push_back(absl::StrCat(name, ": ", status.message()));
  }
  return absl::FailedPreconditionError(
      absl::StrCat("kept the old versions of models that failed to load: ",
                   absl::StrJoin(failed, "; ")));
}

CloudServer::~CloudServer() { Shutdown(); }

void CloudServer::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  if (server_ != nullptr) {
    SetReady(server_.get(), tandem::v1::CloudService::service_full_name(),
             false);
    server_->Shutdown(std::chrono::system_clock::now() +
                      std::chrono::milliseconds(config_.drain_timeout_ms()));
  }
  if (batcher_ != nullptr) batcher_->Shutdown();
  if (server_ != nullptr) server_->Wait();
  // Last, so that a final scrape can see the drain.
  metrics_server_.reset();
}

absl::Status CloudServer::ReloadSecurity() {
  return tandem::ReloadSecurity(*access_, ServerTlsFilesOf(config_));
}

int CloudServer::metrics_port() const {
  return metrics_server_ == nullptr ? 0 : metrics_server_->port();
}

int64_t CloudServer::continue_requests() const {
  return service_->continue_requests();
}

}  // namespace tandem
