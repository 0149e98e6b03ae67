#include "edge/edge_service.h"

#include <memory>
#include <utility>

#include "common/clock.h"
#include "common/grpc_server.h"
#include "common/grpc_status.h"

namespace tandem {
namespace {

// Finishes a call at once (a refusal, or an answer made inline).
grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* context,
                                    const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

}  // namespace

EdgeServiceImpl::EdgeServiceImpl(EdgeAgent* agent, AccessControl* access)
    : agent_(agent), access_(access) {}

grpc::ServerUnaryReactor* EdgeServiceImpl::Infer(
    grpc::CallbackServerContext* context,
    const tandem::v1::InferRequest* request,
    tandem::v1::InferResponse* response) {
  const absl::Time received = RealClock()->Now();
  absl::StatusOr<AccessControl::Caller> caller = CallerOf(*access_, *context);
  if (!caller.ok()) return FinishNow(context, caller.status());
  absl::StatusOr<AccessControl::Admission> admitted = access_->Admit(
      *caller, request->model_name(), DecodedInputBytes(*request));
  if (!admitted.ok()) return FinishNow(context, admitted.status());
  auto admission =
      std::make_shared<AccessControl::Admission>(*std::move(admitted));
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const auto chrono_deadline = context->deadline();
  const absl::Time deadline =
      chrono_deadline == std::chrono::system_clock::time_point::max()
          ? absl::InfiniteFuture()
          : absl::FromChrono(chrono_deadline);
  // The request and response live until Finish, which the callback calls.
  agent_->InferAsync(*request, received, deadline,
                     [response, reactor, admission](
                         absl::StatusOr<tandem::v1::InferResponse> result) {
                       if (result.ok()) *response = *std::move(result);
                       // The caller's slot frees before it sees the answer.
                       *admission = AccessControl::Admission();
                       reactor->Finish(ToGrpcStatus(result.status()));
                     });
  return reactor;
}

grpc::ServerUnaryReactor* EdgeServiceImpl::ListModels(
    grpc::CallbackServerContext* context, const tandem::v1::ListModelsRequest*,
    tandem::v1::ListModelsResponse* response) {
  absl::StatusOr<AccessControl::Caller> caller = CallerOf(*access_, *context);
  if (!caller.ok()) return FinishNow(context, caller.status());
  // Only the models the caller's token covers.
  tandem::v1::ListModelsResponse all = agent_->ListModels();
  for (tandem::v1::ModelSummary& model : *all.mutable_models()) {
    if (AccessControl::CheckModel(*caller, model.name()).ok())
      *response->add_models() = std::move(model);
  }
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* EdgeServiceImpl::GetPlan(
    grpc::CallbackServerContext* context,
    const tandem::v1::GetPlanRequest* request,
    tandem::v1::GetPlanResponse* response) {
  absl::StatusOr<AccessControl::Caller> caller = CallerOf(*access_, *context);
  absl::Status allowed = caller.status();
  if (allowed.ok())
    allowed = AccessControl::CheckModel(*caller, request->model_name());
  if (!allowed.ok()) return FinishNow(context, allowed);
  absl::StatusOr<tandem::v1::Plan> plan = agent_->GetPlan(*request);
  if (plan.ok()) *response->mutable_plan() = *std::move(plan);
  return FinishNow(context, plan.status());
}

grpc::ServerUnaryReactor* EdgeServiceImpl::GetProfile(
    grpc::CallbackServerContext* context,
    const tandem::v1::GetEdgeProfileRequest* request,
    tandem::v1::SavedProfile* response) {
  absl::StatusOr<AccessControl::Caller> caller = CallerOf(*access_, *context);
  absl::Status allowed = caller.status();
  if (allowed.ok())
    allowed = AccessControl::CheckModel(*caller, request->model_name());
  if (!allowed.ok()) return FinishNow(context, allowed);
  absl::StatusOr<tandem::v1::SavedProfile> saved =
      agent_->GetProfile(request->model_name());
  if (saved.ok()) *response = *std::move(saved);
  return FinishNow(context, saved.status());
}

}  // namespace tandem
