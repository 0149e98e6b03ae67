#include "cloud/cloud_service.h"

#include <deque>
#include <memory>
#include <set>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/grpc_server.h"
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

// A stream refused at its start (its caller did not authenticate).
class RefusedStream
    : public grpc::ServerBidiReactor<ContinueRequest, ContinueResponse> {
 public:
  explicit RefusedStream(const absl::Status& status) {
    Finish(ToGrpcStatus(status));
  }
  void OnDone() override { delete this; }
};

}  // namespace

// One ContinueStream: each request read is queued on the batcher as soon
// as it arrives; responses are written one at a time, in completion order.
// Deletes itself in OnDone, which gRPC calls only after Finish, and Finish
// waits until no queued work refers to the reactor.
class CloudServiceImpl::StreamReactor
    : public grpc::ServerBidiReactor<ContinueRequest, ContinueResponse> {
 public:
  StreamReactor(CloudServiceImpl* service, AccessControl::Caller caller)
      : service_(service), caller_(std::move(caller)) {
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
        caller_, request, deadline,
        [this, id = request->id()](absl::StatusOr<ContinueResponse> result) {
          Complete(id, std::move(result));
        });
    // A client that sends faster than it reads is not read from while its
    // backlog is full: HTTP/2 flow control then holds its writes.
    bool read_next;
    {
      absl::MutexLock lock(&mu_);
      read_paused_ = Backlog() >= service_->options_.max_stream_backlog;
      read_next = !read_paused_;
    }
    if (read_next) StartRead(&request_);
  }

  void OnWriteDone(bool ok) override {
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok) broken_ = true;
      outbox_.pop_front();
    }
    ResumeReadingIfRoom();
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
    ResumeReadingIfRoom();  // A broken stream's backlog shrinks here.
    Pump();
  }

  // Requests read and not yet written back.
  int Backlog() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return pending_work_ + static_cast<int>(outbox_.size());
  }

  void ResumeReadingIfRoom() {
    {
      absl::MutexLock lock(&mu_);
      if (!read_paused_ || Backlog() >= service_->options_.max_stream_backlog)
        return;
      read_paused_ = false;
    }
    StartRead(&request_);
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
  const AccessControl::Caller caller_;
  ContinueRequest request_;  // Filled by the read in flight.
  absl::Mutex mu_;
  std::deque<ContinueResponse> outbox_ ABSL_GUARDED_BY(mu_);
  int pending_work_ ABSL_GUARDED_BY(mu_) = 0;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) =
      false;  // A write failed: the client is gone.
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  // No read in flight: the backlog reached Options::max_stream_backlog.
  bool read_paused_ ABSL_GUARDED_BY(mu_) = false;
};

CloudServiceImpl::CloudServiceImpl(ContinueRunner* runner,
                                   DynamicBatcher* batcher,
                                   CloudMetrics* metrics, AccessControl* access,
                                   Options options)
    : runner_(runner),
      batcher_(batcher),
      metrics_(metrics),
      access_(access),
      options_(options) {}

void CloudServiceImpl::Submit(const AccessControl::Caller& caller,
                              std::shared_ptr<const ContinueRequest> request,
                              absl::Time deadline, DynamicBatcher::Done done) {
  const absl::Time received = RealClock()->Now();
  // The model right first: a token without it learns nothing of the rest.
  absl::StatusOr<AccessControl::Admission> admitted = access_->Admit(
      caller, request->model_name(), DecodedInputBytes(*request));
  std::string version;
  absl::Status status = admitted.status();
  if (status.ok()) status = runner_->Precheck(*request, &version);
  auto key = std::make_shared<const CloudMetrics::Key>(
      CloudMetrics::KeyOf(*request, std::move(version), status.ok()));
  auto admission = std::make_shared<AccessControl::Admission>(
      admitted.ok() ? *std::move(admitted) : AccessControl::Admission());
  DynamicBatcher::Done counted = [this, key, received, admission,
                                  done = std::move(done)](
                                     absl::StatusOr<ContinueResponse> result) {
    *admission = AccessControl::Admission();  // Freed before the answer.
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
  absl::StatusOr<AccessControl::Caller> caller = CallerOf(*access_, *context);
  if (!caller.ok()) {
    reactor->Finish(ToGrpcStatus(caller.status()));
    return reactor;
  }
  // gRPC keeps `request` alive until the reactor finishes, which happens
  // only in `done`: the batcher may borrow it.
  Submit(*caller,
         std::shared_ptr<const ContinueRequest>(request,
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
  absl::StatusOr<AccessControl::Caller> caller = CallerOf(*access_, *context);
  if (!caller.ok()) return new RefusedStream(caller.status());
  return new StreamReactor(this, *std::move(caller));
}

grpc::ServerUnaryReactor* CloudServiceImpl::Probe(
    grpc::CallbackServerContext* context,
    const tandem::v1::ProbeRequest* request,
    tandem::v1::ProbeResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<AccessControl::Caller> caller = CallerOf(*access_, *context);
  if (!caller.ok()) {
    reactor->Finish(ToGrpcStatus(caller.status()));
    return reactor;
  }
  response->set_received_bytes(static_cast<int64_t>(request->payload().size()));
  const int64_t wanted = std::clamp<int64_t>(request->response_bytes(), 0,
                                             options_.max_probe_response_bytes);
  response->mutable_payload()->assign(static_cast<size_t>(wanted), '\0');
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* CloudServiceImpl::GetProfile(
    grpc::CallbackServerContext* context,
    const tandem::v1::GetProfileRequest* request,
    tandem::v1::GetProfileResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<AccessControl::Caller> caller = CallerOf(*access_, *context);
  absl::Status allowed = caller.status();
  if (allowed.ok())
    allowed = AccessControl::CheckModel(*caller, request->model_name());
  if (!allowed.ok()) {
    reactor->Finish(ToGrpcStatus(allowed));
    return reactor;
  }
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
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<AccessControl::Caller> caller = CallerOf(*access_, *context);
  if (!caller.ok()) {
    reactor->Finish(ToGrpcStatus(caller.status()));
    return reactor;
  }
  std::map<std::string, std::string> errors;
  {
    absl::MutexLock lock(&errors_mu_);
    errors = load_errors_;
  }
  std::shared_ptr<const ModelRepository> repository = runner_->repository();
  std::set<std::string> listed;
  if (repository != nullptr) {
    for (const ProgressiveModel* model : repository->all_versions()) {
      if (!AccessControl::CheckModel(*caller, model->name()).ok()) continue;
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
    if (listed.count(name) > 0 ||
        !AccessControl::CheckModel(*caller, name).ok()) {
      continue;
    }
    tandem::v1::CloudModelState* state = response->add_models();
    state->set_name(name);
    state->set_ready(false);
    state->set_reason(reason);
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

void CloudServiceImpl::SetLoadErrors(
    std::map<std::string, std::string> errors) {
  absl::MutexLock lock(&errors_mu_);
  load_errors_ = std::move(errors);
}

}  // namespace tandem
