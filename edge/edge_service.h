// The gRPC face of the edge agent: EdgeService on the callback API. Infer
// requests are prepared and handed to the agent's block scheduler; the
// handlers never block gRPC's threads.
//
// Every call but health is authenticated, and Infer admitted, by the
// server's AccessControl: UNAUTHENTICATED, PERMISSION_DENIED (a token
// without the model) and RESOURCE_EXHAUSTED (the caller's or the tensor
// budget) before any work.
//
// Thread-safe. Borrows the agent and the access control, which must
// outlive it.
#ifndef TANDEM_EDGE_EDGE_SERVICE_H_
#define TANDEM_EDGE_EDGE_SERVICE_H_

#include "common/access_control.h"
#include "edge/edge_agent.h"
#include "tandem/v1/edge_service.grpc.pb.h"

namespace tandem {

class EdgeServiceImpl final : public tandem::v1::EdgeService::CallbackService {
 public:
  EdgeServiceImpl(EdgeAgent* agent, AccessControl* access);

  grpc::ServerUnaryReactor* Infer(grpc::CallbackServerContext* context,
                                  const tandem::v1::InferRequest* request,
                                  tandem::v1::InferResponse* response) override;
  grpc::ServerUnaryReactor* ListModels(
      grpc::CallbackServerContext* context,
      const tandem::v1::ListModelsRequest* request,
      tandem::v1::ListModelsResponse* response) override;
  grpc::ServerUnaryReactor* GetPlan(
      grpc::CallbackServerContext* context,
      const tandem::v1::GetPlanRequest* request,
      tandem::v1::GetPlanResponse* response) override;
  grpc::ServerUnaryReactor* GetProfile(
      grpc::CallbackServerContext* context,
      const tandem::v1::GetEdgeProfileRequest* request,
      tandem::v1::SavedProfile* response) override;

 private:
  EdgeAgent* const agent_;
  AccessControl* const access_;
};

}  // namespace tandem

#endif  // TANDEM_EDGE_EDGE_SERVICE_H_
