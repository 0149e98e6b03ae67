#include "edge/cloud_link.h"

#include <limits>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/grpc_status.h"
#include "common/grpc_tls.h"
#include "common/status_macros.h"
#include "common/timer_thread.h"
#include "grpcpp/create_channel.h"
#include "tandem/v1/cloud_service.grpc.pb.h"

namespace tandem {
namespace {

int Millis(absl::Duration d) {
  return static_cast<int>(absl::ToInt64Milliseconds(d));
}

// Sets a call's deadline and credentials.
void Prepare(absl::Time deadline, const std::string& authorization,
             grpc::ClientContext* context) {
  if (deadline != absl::InfiniteFuture())
    context->set_deadline(absl::ToChronoTime(deadline));
  if (!authorization.empty())
    context->AddMetadata("authorization", authorization);
}

template <typename Response, typename Call>
absl::StatusOr<Response> Unary(absl::Time deadline,
                               const std::string& authorization, Call call) {
  grpc::ClientContext context;
  Prepare(deadline, authorization, &context);
  Response response;
  const grpc::Status status = call(&context, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

class GrpcCloudLink : public CloudLink {
 public:
  GrpcCloudLink(std::shared_ptr<grpc::Channel> channel,
                const std::string& bearer_token)
      : channel_(std::move(channel)),
        stub_(tandem::v1::CloudService::NewStub(channel_)),
        authorization_(bearer_token.empty() ? "" : "Bearer " + bearer_token) {}

  absl::StatusOr<tandem::v1::ContinueResponse> Continue(
      const tandem::v1::ContinueRequest& request,
      absl::Time deadline) override {
    return Unary<tandem::v1::ContinueResponse>(
        deadline, authorization_, [&](auto* context, auto* response) {
          return stub_->Continue(context, request, response);
        });
  }

  void ContinueAsync(tandem::v1::ContinueRequest request, absl::Time deadline,
                     ContinueCallback done) override {
    // The call's state lives until both gRPC's callback and the guard are
    // done with it; either may outlive the caller's frame.
    auto call = std::make_shared<AsyncCall>(std::move(done));
    Prepare(deadline, authorization_, &call->context);
    call->request = std::move(request);
    // gRPC fails the call at its deadline, but a call whose bytes sit in a
    // stalled socket (a cut link) completes only when TCP gives up on the
    // connection: the guard answers at the deadline whatever the transport
    // does, and cancels the call.
    if (deadline != absl::InfiniteFuture()) {
      guard_.At(deadline, [weak = std::weak_ptr<AsyncCall>(call)] {
        std::shared_ptr<AsyncCall> late = weak.lock();
        if (late == nullptr) return;
        late->Finish(absl::DeadlineExceededError(
            "no answer from the cloud by the call's deadline"));
        late->context.TryCancel();
      });
    }
    AsyncCall* raw = call.get();
    stub_->async()->Continue(&raw->context, &raw->request, &raw->response,
                             [call](grpc::Status status) {
                               if (status.ok()) {
                                 call->Finish(std::move(call->response));
                               } else {
                                 call->Finish(FromGrpcStatus(status));
                               }
                             });
  }

  absl::StatusOr<tandem::v1::ProbeResponse> Probe(
      const tandem::v1::ProbeRequest& request, absl::Time deadline) override {
    return Unary<tandem::v1::ProbeResponse>(
        deadline, authorization_, [&](auto* context, auto* response) {
          return stub_->Probe(context, request, response);
        });
  }

  absl::StatusOr<tandem::v1::GetProfileResponse> GetProfile(
      const std::string& model, absl::Time deadline) override {
    tandem::v1::GetProfileRequest request;
    request.set_model_name(model);
    return Unary<tandem::v1::GetProfileResponse>(
        deadline, authorization_, [&](auto* context, auto* response) {
          return stub_->GetProfile(context, request, response);
        });
  }

 private:
  struct AsyncCall {
    explicit AsyncCall(ContinueCallback callback) : done(std::move(callback)) {}

    grpc::ClientContext context;
    tandem::v1::ContinueRequest request;
    tandem::v1::ContinueResponse response;
    absl::Mutex mu;
    ContinueCallback done ABSL_GUARDED_BY(mu);  // Empty once it has run.

    // Runs `done` with the first result offered; later ones are dropped.
    void Finish(absl::StatusOr<tandem::v1::ContinueResponse> result)
        ABSL_LOCKS_EXCLUDED(mu) {
      ContinueCallback run;
      {
        absl::MutexLock lock(&mu);
        run = std::move(done);
        done = nullptr;
      }
      if (run) run(std::move(result));
    }
  };

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<tandem::v1::CloudService::Stub> stub_;
  const std::string authorization_;  // "Bearer TOKEN", or empty.
  TimerThread guard_;                // Deadline guards of async calls.
};

}  // namespace

absl::StatusOr<std::unique_ptr<CloudLink>> CloudLink::Create(
    const std::string& address, const Options& options) {
  grpc::ChannelArguments args;
  const int max_message = static_cast<int>(std::min<int64_t>(
      options.max_message_bytes, std::numeric_limits<int>::max()));
  args.SetMaxReceiveMessageSize(max_message);
  args.SetMaxSendMessageSize(max_message);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, Millis(options.keepalive_interval));
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, Millis(options.keepalive_timeout));
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
              Millis(options.initial_backoff));
  // Despite its name, the least time one connection attempt is given.
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS,
              Millis(options.min_connect_timeout));
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, Millis(options.max_backoff));
  // Tensors are often over the 256 KiB retry buffer: the agent retries by
  // finishing locally instead.
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  // Every resolved address gets a connection and calls rotate over the
  // ready ones: replicas behind a DNS name (dns:///, or a bare host:port) or
  // a static list (ipv4:ADDR,ADDR,...). "Ready" includes gRPC's client-side
  // health checking: a replica whose CloudService is NOT_SERVING (models
  // still loading after a restart, or draining) gets no calls even though
  // it accepts connections. A replica that dies drops out of the rotation
  // and rejoins once it serves again.
  args.SetServiceConfigJSON(
      absl::StrCat(R"({"loadBalancingConfig": [{"round_robin": {}}],)",
                   R"( "healthCheckConfig": {"serviceName": ")",
                   tandem::v1::CloudService::service_full_name(), R"("}})"));
  std::shared_ptr<grpc::ChannelCredentials> credentials =
      grpc::InsecureChannelCredentials();
  if (options.tls.enabled()) {
    ASSIGN_OR_RETURN(credentials, TlsChannelCredentials(options.tls, &args));
  }
  return std::make_unique<GrpcCloudLink>(
      grpc::CreateCustomChannel(address, credentials, args),
      options.bearer_token);
}

}  // namespace tandem
