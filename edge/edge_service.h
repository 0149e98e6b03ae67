// The gRPC face of the edge agent: EdgeService on the callback API. Infer
// requests are prepared and handed to the agent's block scheduler; the
// handlers never block gRPC's threads.
//
// Thread-safe. Borrows the agent, which must outlive it.
#ifndef TANDEM_EDGE_EDGE_SERVICE_H_
#define TANDEM_EDGE_EDGE_SERVICE_H_

#include "edge/edge_agent.h"
#include "tandem/v1/edge_service.grpc.pb.h"

namespace tandem {

class EdgeServiceImpl final : public tandem::v1::EdgeService::CallbackService {
 public:
  explicit EdgeServiceImpl(EdgeAgent* agent);

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
};

}  // namespace tandem

#endif  // TANDEM_EDGE_EDGE_SERVICE_H_
