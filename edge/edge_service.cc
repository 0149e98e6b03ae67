#include "edge/edge_service.h"

#include "common/clock.h"
#include "common/grpc_status.h"

namespace tandem {

EdgeServiceImpl::EdgeServiceImpl(EdgeAgent* agent) : agent_(agent) {}

grpc::ServerUnaryReactor* EdgeServiceImpl::Infer(
    grpc::CallbackServerContext* context,
    const tandem::v1::InferRequest* request,
    tandem::v1::InferResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const absl::Time received = RealClock()->Now();
  const auto chrono_deadline = context->deadline();
  const absl::Time deadline =
      chrono_deadline == std::chrono::system_clock::time_point::max()
          ? absl::InfiniteFuture()
          : absl::FromChrono(chrono_deadline);
  // The request and response live until Finish, which the callback calls.
  agent_->InferAsync(
      *request, received, deadline,
      [response, reactor](absl::StatusOr<tandem::v1::InferResponse> result) {
        if (result.ok()) *response = *std::move(result);
        reactor->Finish(ToGrpcStatus(result.status()));
      });
  return reactor;
}

grpc::ServerUnaryReactor* EdgeServiceImpl::ListModels(
    grpc::CallbackServerContext* context, const tandem::v1::ListModelsRequest*,
    tandem::v1::ListModelsResponse* response) {
  *response = agent_->ListModels();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* EdgeServiceImpl::GetPlan(
    grpc::CallbackServerContext* context,
    const tandem::v1::GetPlanRequest* request,
    tandem::v1::GetPlanResponse* response) {
  absl::StatusOr<tandem::v1::Plan> plan = agent_->GetPlan(*request);
  if (plan.ok()) *response->mutable_plan() = *std::move(plan);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(plan.status()));
  return reactor;
}

grpc::ServerUnaryReactor* EdgeServiceImpl::GetProfile(
    grpc::CallbackServerContext* context,
    const tandem::v1::GetEdgeProfileRequest* request,
    tandem::v1::SavedProfile* response) {
  absl::StatusOr<tandem::v1::SavedProfile> saved =
      agent_->GetProfile(request->model_name());
  if (saved.ok()) *response = *std::move(saved);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(saved.status()));
  return reactor;
}

}  // namespace tandem
