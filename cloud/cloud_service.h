// The gRPC face of the cloud server: CloudService on the callback API.
// Handlers only validate and queue; LibTorch work runs in the dynamic
// batcher's instances (unary calls and stream messages alike), and the
// reactor finishes when it is done, so gRPC's threads never block.
//
// Every call but health is authenticated by the server's AccessControl
// (UNAUTHENTICATED; a stream at its start), and every Continue request, unary
// or streamed, admitted: PERMISSION_DENIED for a model its token does not
// cover, RESOURCE_EXHAUSTED over the caller's or the tensor budget.
//
// Thread-safe. Borrows the runner, the batcher, the metrics and the access
// control, which must outlive it.
#ifndef TANDEM_CLOUD_CLOUD_SERVICE_H_
#define TANDEM_CLOUD_CLOUD_SERVICE_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <string>

#include "absl/synchronization/mutex.h"
#include "cloud/cloud_metrics.h"
#include "cloud/continue_runner.h"
#include "cloud/dynamic_batcher.h"
#include "common/access_control.h"
#include "tandem/v1/cloud_service.grpc.pb.h"

namespace tandem {

class CloudServiceImpl final
    : public tandem::v1::CloudService::CallbackService {
 public:
  struct Options {
    // Largest Probe response (the rest of a bigger ask is not sent).
    int64_t max_probe_response_bytes = 16 << 20;
    // Requests of one ContinueStream read but not yet answered back; at
    // this many the stream is not read until a response is written, so a
    // client that does not read its responses cannot grow them unbounded.
    int max_stream_backlog = 64;
  };

  CloudServiceImpl(ContinueRunner* runner, DynamicBatcher* batcher,
                   CloudMetrics* metrics, AccessControl* access,
                   Options options);

  grpc::ServerUnaryReactor* Continue(
      grpc::CallbackServerContext* context,
      const tandem::v1::ContinueRequest* request,
      tandem::v1::ContinueResponse* response) override;
  grpc::ServerBidiReactor<tandem::v1::ContinueRequest,
                          tandem::v1::ContinueResponse>*
  ContinueStream(grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* Probe(grpc::CallbackServerContext* context,
                                  const tandem::v1::ProbeRequest* request,
                                  tandem::v1::ProbeResponse* response) override;
  grpc::ServerUnaryReactor* GetProfile(
      grpc::CallbackServerContext* context,
      const tandem::v1::GetProfileRequest* request,
      tandem::v1::GetProfileResponse* response) override;

  grpc::ServerUnaryReactor* ListModels(
      grpc::CallbackServerContext* context,
      const tandem::v1::ListCloudModelsRequest* request,
      tandem::v1::ListCloudModelsResponse* response) override;

  // The last load errors by model name, which ListModels reports.
  void SetLoadErrors(std::map<std::string, std::string> errors)
      ABSL_LOCKS_EXCLUDED(errors_mu_);

  // Continue requests received (unary and stream messages), for tests and
  // metrics.
  int64_t continue_requests() const { return continue_requests_.load(); }

 private:
  class StreamReactor;

  // Admits `request` for `caller`, checks it and queues it on the batcher;
  // `done` gets the result (also when it is refused: then before this
  // returns), and the request's metrics are counted on the way. The
  // admission is held until `done` runs.
  void Submit(const AccessControl::Caller& caller,
              std::shared_ptr<const tandem::v1::ContinueRequest> request,
              absl::Time deadline, DynamicBatcher::Done done);

  ContinueRunner* const runner_;
  DynamicBatcher* const batcher_;
  CloudMetrics* const metrics_;
  AccessControl* const access_;
  const Options options_;
  std::atomic<int64_t> continue_requests_{0};
  absl::Mutex errors_mu_;
  std::map<std::string, std::string> load_errors_ ABSL_GUARDED_BY(errors_mu_);
};

}  // namespace tandem

#endif  // TANDEM_CLOUD_CLOUD_SERVICE_H_
