// The cloud's half of a split inference: decodes a ContinueRequest's tensor,
// runs blocks [start_block, N) with the requested exits and builds the
// response. It also keeps the per-block latencies GetProfile reports.
//
// Thread-safe. Until SetRepository is called every request gets UNAVAILABLE
// (the server is up but its models are still loading).
#ifndef TANDEM_CLOUD_CONTINUE_RUNNER_H_
#define TANDEM_CLOUD_CONTINUE_RUNNER_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/stats.h"
#include "models/model_repository.h"
#include "models/tensor_spec.h"
#include "tandem/v1/cloud_service.pb.h"

namespace tandem {

class ContinueRunner {
 public:
  explicit ContinueRunner(DecodeLimits limits);

  // Installs `repository` for new requests. The one it replaces keeps
  // serving requests already queued for versions the new one lacks, for
  // `retire_after`.
  void SetRepository(std::shared_ptr<const ModelRepository> repository,
                     absl::Duration retire_after = absl::ZeroDuration())
      ABSL_LOCKS_EXCLUDED(mu_);
  std::shared_ptr<const ModelRepository> repository() const
      ABSL_LOCKS_EXCLUDED(mu_);
  bool ready() const ABSL_LOCKS_EXCLUDED(mu_);

  // Cheap checks that need no tensor decoding (model, block, payload sizes),
  // made before a request is queued. `version` (optional) gets the loaded
  // version the request resolves to, also when a later check fails; "" when
  // none matches.
  absl::Status Precheck(const tandem::v1::ContinueRequest& request,
                        std::string* version = nullptr) const;

  // The loaded version `request` resolves to; "" when none matches.
  std::string ResolvedVersion(const tandem::v1::ContinueRequest& request) const
      ABSL_LOCKS_EXCLUDED(mu_);

  // The model's own max_batch_size (0: none, or no such model).
  int ModelMaxBatch(const tandem::v1::ContinueRequest& request) const
      ABSL_LOCKS_EXCLUDED(mu_);

  // Does the work. DEADLINE_EXCEEDED without running anything when
  // `deadline` has passed; `queued_at` dates the queue time reported.
  absl::StatusOr<tandem::v1::ContinueResponse> Run(
      const tandem::v1::ContinueRequest& request, absl::Time queued_at,
      absl::Time deadline) ABSL_LOCKS_EXCLUDED(mu_);

  // One request of a batch.
  struct Row {
    const tandem::v1::ContinueRequest* request = nullptr;
    absl::Time queued_at;
    absl::Time deadline = absl::InfiniteFuture();
  };
  // Runs requests for the same model, version and start block as batches
  // (of at most the model's max_batch_size): each row keeps its own exit
  // thresholds and deadline, leaves the batch at the exit that answers it,
  // and fails alone (a tensor that does not decode, a late row). One result
  // per row, in order; compute_us is the batch's.
  std::vector<absl::StatusOr<tandem::v1::ContinueResponse>> RunBatch(
      const std::vector<Row>& rows) ABSL_LOCKS_EXCLUDED(mu_);

  // Median block latencies seen so far and output sizes, for GetProfile.
  absl::StatusOr<tandem::v1::ModelProfile> Profile(
      const std::string& model) const ABSL_LOCKS_EXCLUDED(mu_);
  double queue_us_ewma() const ABSL_LOCKS_EXCLUDED(mu_);

  // Seeds the block latencies with a start-up profile (blocks and their exit
  // heads), so GetProfile answers for every block before traffic arrives.
  void SeedProfile(const tandem::v1::ModelProfile& profile)
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Retiring {
    std::shared_ptr<const ModelRepository> repository;
    absl::Time until;
  };
  // The model in the current repository, or with `or_retiring`, in one
  // that was replaced recently (for a specific version).
  absl::StatusOr<std::shared_ptr<const ProgressiveModel>> Find(
      const std::string& name, const std::string& version,
      bool or_retiring = false) const ABSL_LOCKS_EXCLUDED(mu_);
  // Precheck against a found model.
  absl::Status Check(const tandem::v1::ContinueRequest& request,
                     const ProgressiveModel& model) const;
  void Record(const ProgressiveModel& model, int begin,
              const std::vector<absl::Duration>& times,
              const std::vector<absl::Duration>& queues)
      ABSL_LOCKS_EXCLUDED(mu_);

  const DecodeLimits limits_;
  mutable absl::Mutex mu_;
  std::shared_ptr<const ModelRepository> repository_ ABSL_GUARDED_BY(mu_);
  std::vector<Retiring> retiring_ ABSL_GUARDED_BY(mu_);
  // Recent per-block latencies by model name.
  std::map<std::string, std::vector<SampleWindow>> block_latency_us_
      ABSL_GUARDED_BY(mu_);
  Ewma queue_us_ ABSL_GUARDED_BY(mu_){0.1};
};

}  // namespace tandem

#endif  // TANDEM_CLOUD_CONTINUE_RUNNER_H_
