#include "tandem/client.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <utility>

#include "absl/base/config.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "edge/sdk/wire_conversion.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/support/channel_arguments.h"

#if !defined(ABSL_IS_LITTLE_ENDIAN)
#error "InputTensor::Fp32 copies host floats: the wire is little-endian"
#endif

namespace tandem {
namespace {

using SteadyTime = std::chrono::steady_clock::time_point;

int64_t NumElements(const std::vector<int64_t>& shape) {
  int64_t count = 1;
  for (int64_t dim : shape) count *= dim > 0 ? dim : 0;
  return count;
}

absl::Duration SinceSteady(SteadyTime start) {
  return absl::FromChrono(std::chrono::steady_clock::now() - start);
}

// The result of a finished Infer call that started at `start`.
// The least time one connection attempt is given (gRPC's default: 20 s).
constexpr int kMinConnectTimeoutMs = 2000;

absl::StatusOr<InferResult> FinishedInfer(
    const grpc::Status& status, const tandem::v1::InferResponse& response,
    SteadyTime start) {
  const absl::Duration latency = SinceSteady(start);
  // The SDK never cancels an Infer call, so CANCELLED comes from the other
  // side: gRPC cancels the calls a server had not started when it shuts down
  // (an agent restarting). For the application that is UNAVAILABLE, the code
  // it retries on.
  if (status.error_code() == grpc::StatusCode::CANCELLED) {
    return absl::UnavailableError(
        absl::StrCat("the edge agent cancelled the call (shutting down?): ",
                     status.error_message()));
  }
  if (!status.ok()) return FromGrpcStatus(status);
  InferResult result = client_internal::ToInferResult(response);
  result.client_latency = latency;
  return result;
}

// All an InferAsync call needs until its callback has run.
struct AsyncInferCall {
  grpc::ClientContext context;
  tandem::v1::InferRequest request;
  tandem::v1::InferResponse response;
  SteadyTime start;
  Client::InferCallback done;
};

}  // namespace

InputTensor InputTensor::Fp32(std::vector<int64_t> shape, const float* values) {
  InputTensor tensor;
  tensor.datatype = "FP32";
  tensor.data.assign(reinterpret_cast<const char*>(values),
                     NumElements(shape) * sizeof(float));
  tensor.shape = std::move(shape);
  tensor.encoding = tandem::v1::ENCODING_RAW;
  return tensor;
}

InputTensor InputTensor::Pixels(std::vector<int64_t> shape,
                                const uint8_t* pixels) {
  InputTensor tensor;
  tensor.datatype = "FP32";
  tensor.data.assign(reinterpret_cast<const char*>(pixels), NumElements(shape));
  tensor.shape = std::move(shape);
  tensor.encoding = tandem::v1::ENCODING_AFFINE_UINT8;
  tensor.scale = {1.0f / 255.0f};
  tensor.zero_point = {0};
  return tensor;
}

absl::string_view SiteName(InferResult::Site site) {
  switch (site) {
    case InferResult::Site::kEdge:
      return "edge";
    case InferResult::Site::kCloud:
      return "cloud";
    case InferResult::Site::kUnknown:
      break;
  }
  return "unknown";
}

absl::StatusOr<std::unique_ptr<Client>> Client::Connect(
    const std::string& address, const ClientOptions& options) {
  if (address.empty()) {
    return absl::InvalidArgumentError("empty edge agent address");
  }
  if (options.max_message_bytes <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_message_bytes must be positive, got ", options.max_message_bytes));
  }
  grpc::ChannelArguments args;
  args.SetMaxSendMessageSize(options.max_message_bytes);
  args.SetMaxReceiveMessageSize(options.max_message_bytes);
  if (options.max_reconnect_backoff <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_reconnect_backoff must be positive, got ",
                     absl::FormatDuration(options.max_reconnect_backoff)));
  }
  // At least 1 ms, at most an hour (an infinite backoff included).
  const int max_backoff_ms = static_cast<int>(std::clamp<int64_t>(
      absl::ToInt64Milliseconds(options.max_reconnect_backoff), 1, 3600000));
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
              std::min(100, max_backoff_ms));
  // Despite its name, the least time one connection attempt is given: an
  // agent busy starting up may take a while to complete the handshake.
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, kMinConnectTimeoutMs);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, max_backoff_ms);
  if (options.own_connection)
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  if (!options.tls_server_name.empty())
    args.SetSslTargetNameOverride(options.tls_server_name);
  std::shared_ptr<grpc::ChannelCredentials> credentials =
      options.credentials != nullptr ? options.credentials
                                     : grpc::InsecureChannelCredentials();
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateCustomChannel(address, credentials, args);
  if (!channel->WaitForConnected(
          absl::ToChronoTime(absl::Now() + options.connect_timeout))) {
    return absl::UnavailableError(
        absl::StrCat("edge agent at ", address, " not ready within ",
                     absl::FormatDuration(options.connect_timeout)));
  }
  return std::unique_ptr<Client>(new Client(std::move(channel), options));
}

Client::Client(std::shared_ptr<grpc::Channel> channel,
               const ClientOptions& options)
    : channel_(std::move(channel)),
      stub_(tandem::v1::EdgeService::NewStub(channel_)),
      bearer_token_(options.bearer_token),
      rpc_timeout_(options.rpc_timeout),
      watcher_([this] { WatchConnection(); }) {}

Client::~Client() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  watcher_.join();
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](int* outstanding) { return *outstanding == 0; },
      &outstanding_async_calls_));
}

void Client::WatchConnection() {
  // Also how long the destructor may wait for this thread.
  constexpr absl::Duration kPoll = absl::Milliseconds(100);
  for (;;) {
    const grpc_connectivity_state state =
        channel_->GetState(/*try_to_connect=*/false);
    if (state == GRPC_CHANNEL_SHUTDOWN) return;
    if (state == GRPC_CHANNEL_CONNECTING ||
        state == GRPC_CHANNEL_TRANSIENT_FAILURE) {
      // Returns at a change of state or at the deadline, polling meanwhile.
      channel_->WaitForStateChange(state,
                                   absl::ToChronoTime(absl::Now() + kPoll));
    }
    absl::MutexLock lock(&mu_);
    // Idle or ready: the calls themselves poll; look again in a while.
    if (state != GRPC_CHANNEL_CONNECTING &&
        state != GRPC_CHANNEL_TRANSIENT_FAILURE) {
      mu_.AwaitWithTimeout(absl::Condition(&stopping_), kPoll);
    }
    if (stopping_) return;
  }
}

void Client::PrepareContext(grpc::ClientContext* context,
                            absl::Duration deadline) const {
  if (deadline != absl::InfiniteDuration()) {
    context->set_deadline(absl::ToChronoTime(absl::Now() + deadline));
  }
  if (!bearer_token_.empty()) {
    context->AddMetadata("authorization",
                         absl::StrCat("Bearer ", bearer_token_));
  }
}

absl::StatusOr<InferResult> Client::Infer(const std::string& model,
                                          const InputTensor& input,
                                          const InferOptions& options) {
  const SteadyTime start = std::chrono::steady_clock::now();
  grpc::ClientContext context;
  PrepareContext(&context, options.deadline);
  const tandem::v1::InferRequest request =
      client_internal::BuildInferRequest(model, input, options);
  tandem::v1::InferResponse response;
  const grpc::Status status = stub_->Infer(&context, request, &response);
  return FinishedInfer(status, response, start);
}

void Client::InferAsync(const std::string& model, const InputTensor& input,
                        const InferOptions& options, InferCallback done) {
  // Shared because gRPC may copy the callback that keeps it alive.
  auto call = std::make_shared<AsyncInferCall>();
  call->start = std::chrono::steady_clock::now();
  call->done = std::move(done);
  PrepareContext(&call->context, options.deadline);
  call->request = client_internal::BuildInferRequest(model, input, options);
  {
    absl::MutexLock lock(&mu_);
    ++outstanding_async_calls_;
  }
  AsyncInferCall* raw_call = call.get();
  stub_->async()->Infer(
      &raw_call->context, &raw_call->request, &raw_call->response,
      [this, call](grpc::Status status) mutable {
        absl::StatusOr<InferResult> result =
            FinishedInfer(status, call->response, call->start);
        InferCallback done = std::move(call->done);
        call.reset();  // Frees the context and messages before `done` runs.
        done(std::move(result));
        FinishAsyncCall();  // Last touch of `this`: ~Client may proceed.
      });
}

void Client::FinishAsyncCall() {
  absl::MutexLock lock(&mu_);
  --outstanding_async_calls_;
}

absl::StatusOr<std::vector<ModelInfo>> Client::ListModels() {
  grpc::ClientContext context;
  PrepareContext(&context, rpc_timeout_);
  tandem::v1::ListModelsResponse response;
  const grpc::Status status =
      stub_->ListModels(&context, tandem::v1::ListModelsRequest(), &response);
  if (!status.ok()) return FromGrpcStatus(status);
  std::vector<ModelInfo> models;
  models.reserve(response.models_size());
  for (const tandem::v1::ModelSummary& summary : response.models()) {
    models.push_back(client_internal::ToModelInfo(summary));
  }
  return models;
}

absl::StatusOr<tandem::v1::Plan> Client::GetPlan(const std::string& model) {
  tandem::v1::GetPlanRequest request;
  request.set_model_name(model);
  return GetPlan(request);
}

absl::StatusOr<tandem::v1::Plan> Client::GetPlan(
    const tandem::v1::GetPlanRequest& request) {
  grpc::ClientContext context;
  PrepareContext(&context, rpc_timeout_);
  tandem::v1::GetPlanResponse response;
  const grpc::Status status = stub_->GetPlan(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return std::move(*response.mutable_plan());
}

absl::StatusOr<tandem::v1::SavedProfile> Client::GetProfile(
    const std::string& model) {
  grpc::ClientContext context;
  PrepareContext(&context, rpc_timeout_);
  tandem::v1::GetEdgeProfileRequest request;
  request.set_model_name(model);
  tandem::v1::SavedProfile response;
  const grpc::Status status = stub_->GetProfile(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

}  // namespace tandem
