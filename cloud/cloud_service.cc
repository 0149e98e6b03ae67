#include "cloud/cloud_service.h"

#include <deque>
#include <memory>
#include <set>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/grpc_status.h"
#include "models/model_repository.h"

namespace tandem {
namespace {

using tandem::v1::ContinueRequest;
using tandem::v1::ContinueResponse;

absl::Time DeadlineOf(const grpc::CallbackServerContext* context) {
  const auto deadline = context->deadline();
  if (deadline == std::chrono::system_clock::time_point::max())
    return absl::InfiniteFuture();
  return absl::FromChrono(deadline);
}

}  // namespace

// One ContinueStream: each request read is queued on the batcher as soon
// as it arrives; responses are written one at a time, in completion order.
// Deletes itself in OnDone, which gRPC calls only after Finish, and Finish
// waits until no queued work refers to the reactor.
class CloudServiceImpl::StreamReactor
    : public grpc::ServerBidiReactor<ContinueRequest, ContinueResponse> {
 public:
  explicit StreamReactor(CloudServiceImpl* service) : service_(service) {
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      {
        absl::MutexLock lock(&mu_);
        reads_done_ = true;
      }
      Pump();
      return;
    }
    ++service_->continue_requests_;
    auto request = std::make_shared<ContinueRequest>(std::move(request_));
    const absl::Time deadline =
        request->deadline_remaining_us() > 0
            ? RealClock()->Now() +
                  absl::Microseconds(request->deadline_remaining_us())
            : absl::InfiniteFuture();
    {
      absl::MutexLock lock(&mu_);
      ++pending_work_;
    }
    service_->Submit(
        request, deadline,
        [this, id = request->id()](absl::StatusOr<ContinueResponse> result) {
          Complete(id, std::move(result));
        });
    StartRead(&request_);
  }

  void OnWriteDone(bool ok) override {
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok) broken_ = true;
      outbox_.pop_front();
    }
    Pump();
  }

  void OnDone() override {
    // Finish ran only once no queued work referred to this reactor.
    delete this;
  }

 private:
  void Complete(const std::string& id,
                absl::StatusOr<ContinueResponse> result) {
    ContinueResponse response;
    if (result.ok()) {
      response = *std::move(result);
    } else {
      response.set_id(id);
      response.set_status_code(static_cast<int>(result.status().code()));
      response.set_status_message(std::string(result.status().message()));
    }
    {
      absl::MutexLock lock(&mu_);
      if (!broken_) outbox_.push_back(std::move(response));
      --pending_work_;
    }
    Pump();
  }

  // Starts the next write, or finishes the stream once everything is done.
  // gRPC operations start outside the lock: a reaction may run inline.
  void Pump() {
    const ContinueResponse* next = nullptr;
    bool finish = false;
    {
      absl::MutexLock lock(&mu_);
      if (writing_ || finished_) return;
      if (!broken_ && !outbox_.empty()) {
        writing_ = true;
        next = &outbox_.front();  // Deque references survive push_back.
      } else if (reads_done_ && pending_work_ == 0) {
        finished_ = true;
        finish = true;
      }
    }
    if (next != nullptr) StartWrite(next);
    if (finish) Finish(grpc::Status::OK);
  }

  CloudServiceImpl* const service_;
  ContinueRequest request_;  // Filled by the read in flight.
  absl::Mutex mu_;
  std::deque<ContinueResponse> outbox_ ABSL_GUARDED_BY(mu_);
  int pending_work_ ABSL_GUARDED_BY(mu_) = 0;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) =
      false;  // A write failed: the client is gone.
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

CloudServiceImpl::CloudServiceImpl(ContinueRunner* runner,
                                   DynamicBatcher* batcher,
                                   CloudMetrics* metrics, Options options)
    : runner_(runner),
      batcher_(batcher),
      metrics_(metrics),
      options_(options) {}

void CloudServiceImpl::Submit(std::shared_ptr<const ContinueRequest> request,
                              absl::Time deadline, DynamicBatcher::Done done) {
  const absl::Time received = RealClock()->Now();
  std::string version;
  absl::Status status = runner_->Precheck(*request, &version);
  auto key = std::make_shared<const CloudMetrics::Key>(
      CloudMetrics::KeyOf(*request, std::move(version), status.ok()));
  DynamicBatcher::Done counted = [this, key, received, done = std::move(done)](
                                     absl::StatusOr<ContinueResponse> result) {
    metrics_->OnRequest(*key, result.status(), RealClock()->Now() - received);
    done(std::move(result));
  };
  if (status.ok()) {
    // The batcher calls `counted` only when it accepts the request; hand it
    // a forwarder so that a refusal can still call it here.
    auto shared = std::make_shared<DynamicBatcher::Done>(std::move(counted));
    status =
        batcher_->Submit(std::move(request), deadline,
                         [shared](absl::StatusOr<ContinueResponse> result) {
                           (*shared)(std::move(result));
                         });
    if (!status.ok()) (*shared)(status);
    return;
  }
  counted(status);
}

grpc::ServerUnaryReactor* CloudServiceImpl::Continue(
    grpc::CallbackServerContext* context, const ContinueRequest* request,
    ContinueResponse* response) {
  ++continue_requests_;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  // gRPC keeps `request` alive until the reactor finishes, which happens
  // only in `done`: the batcher may borrow it.
  Submit(std::shared_ptr<const ContinueRequest>(request,
                                                [](const ContinueRequest*) {}),
         DeadlineOf(context),
         [response, reactor](absl::StatusOr<ContinueResponse> result) {
           if (result.ok()) *response = *std::move(result);
           reactor->Finish(ToGrpcStatus(result.status()));
         });
  return reactor;
}

grpc::ServerBidiReactor<ContinueRequest, ContinueResponse>*
CloudServiceImpl::ContinueStream(grpc::CallbackServerContext* context) {
  return new StreamReactor(this);
}

grpc::ServerUnaryReactor* CloudServiceImpl::Probe(
    grpc::CallbackServerContext* context,
    const tandem::v1::ProbeRequest* request,
    tandem::v1::ProbeResponse* response) {
  response->set_received_bytes(static_cast<int64_t>(request->payload().size()));
  const int64_t wanted = std::clamp<int64_t>(request->response_bytes(), 0,
                                             options_.max_probe_response_bytes);
  response->mutable_payload()->assign(static_cast<size_t>(wanted), '\0');
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* CloudServiceImpl::GetProfile(
    grpc::CallbackServerContext* context,
    const tandem::v1::GetProfileRequest* request,
    tandem::v1::GetProfileResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<tandem::v1::ModelProfile> profile =
      runner_->Profile(request->model_name());
  if (profile.ok()) {
    *response->mutable_profile() = *std::move(profile);
    response->set_queue_us_ewma(runner_->queue_us_ewma());
    response->set_queue_depth(static_cast<int32_t>(batcher_->queue_depth()));
  }
  reactor->Finish(ToGrpcStatus(profile.status()));
  return reactor;
}

grpc::ServerUnaryReactor* CloudServiceImpl::ListModels(
    grpc::CallbackServerContext* context,
    const tandem::v1::ListCloudModelsRequest* request,
    tandem::v1::ListCloudModelsResponse* response) {
  std::map<std::string, std::string> errors;
  {
    absl::MutexLock lock(&errors_mu_);
    errors = load_errors_;
  }
  std::shared_ptr<const ModelRepository> repository = runner_->repository();
  std::set<std::string> listed;
  if (repository != nullptr) {
    for (const ProgressiveModel* model : repository->all_versions()) {
      tandem::v1::CloudModelState* state = response->add_models();
      state->set_name(model->name());
      state->set_version(model->version());
      state->set_ready(true);
      state->set_num_blocks(model->num_blocks());
      const auto error = errors.find(model->name());
      if (error != errors.end()) state->set_reason(error->second);
      listed.insert(model->name());
    }
  }
  for (const auto& [name, reason] : errors) {
    if (listed.count(name) > 0) continue;
    tandem::v1::CloudModelState* state = response->add_models();
    state->set_name(name);
    state->set_ready(false);
    state->set_reason(reason);
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

void CloudServiceImpl::SetLoadErrors(
    std::map<std::string, std::string> errors) {
  absl::MutexLock lock(&errors_mu_);
  load_errors_ = std::move(errors);
}

}  // namespace tandem
