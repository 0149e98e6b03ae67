// One inference request as a job of the block scheduler: a chain of steps,
// each one block of the model (with its exit head) on the device, or one
// offload to the cloud. The agent prepares the job (checks, decoding, the
// route); the scheduler decides which job's step runs next; the job runs it.
//
//   step: block 0 ─ block 1 ─ ... ─ block k-1 ─ offload (kWait) ─ answer
//                     │ exit confident: answer           │ cloud failed:
//                     ▼                                  ▼ blocks k..N-1 here
//
// While the tensor is in flight the job holds no worker: the link's callback
// stores the reply and resumes the job, whose next step answers from it, or
// — the cloud failed, or the deadline guard fired — finishes on the edge
// (or answers from the best exit so far when the request allows it and no
// time is left). Ready jobs of one model at one block may run that block as
// one batch (StepBatch); each row then decides at the exit on its own.
//
// The done callback runs exactly once, with the answer or an explicit error,
// from a worker (or from whoever cuts the job). Not thread-safe on its own:
// the scheduler calls one method at a time.
#ifndef TANDEM_EDGE_INFER_JOB_H_
#define TANDEM_EDGE_INFER_JOB_H_

#include <ATen/core/Tensor.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "edge/block_scheduler.h"
#include "edge/cloud_link.h"
#include "edge/plan_keeper.h"
#include "models/block_runner.h"
#include "models/progressive_model.h"
#include "tandem/v1/edge_service.pb.h"
#include "tandem/v1/profile.pb.h"

namespace tandem {

// What one request will do: split, exits, encoding.
struct Route {
  int split = 0;
  ExitThresholds thresholds;
  tandem::v1::Encoding encoding = tandem::v1::ENCODING_RAW;
  tandem::v1::Compression compression = tandem::v1::COMPRESSION_NONE;
  // The input travels exactly as the application sent it (k = 0, no forced
  // encoding): no decode-encode round, and 8-bit pixels stay 8-bit.
  bool forward_input = false;
  std::string fallback_reason;  // Set when the route had to change.
  // Adaptive routes: the plan they follow, and how long the offload may take
  // before the link is deemed to have fallen (then the edge finishes).
  std::shared_ptr<const tandem::v1::Plan> plan;
  absl::Duration offload_bound = absl::InfiniteDuration();
  int scaling_level = 0;  // ModelScaler's level the route was made at.
  // After a cloud failure the edge finishes with these exits (empty: the
  // route's own), and the offload keeps `local_reserve` of the deadline
  // back for that (InfiniteDuration: the blocks after the split).
  ExitThresholds fallback_thresholds;
  absl::Duration local_reserve = absl::InfiniteDuration();
};

// Measured time of one block at each batch size, for packing decisions:
// unmeasured sizes are predicted as rows x the single-row time (no gain is
// assumed before one is seen). Thread-safe.
class StepTimes {
 public:
  // `single`: the block's single-row time from the profile.
  absl::Duration Predict(const std::string& model, int block, int rows,
                         absl::Duration single) const ABSL_LOCKS_EXCLUDED(mu_);
  void Record(const std::string& model, int block, int rows,
              absl::Duration took) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  mutable absl::Mutex mu_;
  // (model, block, rows) -> smoothed microseconds.
  std::map<std::tuple<std::string, int, int>, double> us_ ABSL_GUARDED_BY(mu_);
};

// What jobs share: the agent's parts they call into. All must outlive the
// jobs (the agent drains in-flight offloads before destroying them).
struct JobServices {
  PlanKeeper* keeper = nullptr;
  CloudLink* cloud = nullptr;  // Null: edge-only.
  BlockScheduler* scheduler = nullptr;
  StepTimes* step_times = nullptr;
  Clock* clock = nullptr;
  // What a step's own time (StepTimes, the plan keeper's block figures) is:
  // the worker thread's CPU time when workers time-share cores and a step's
  // work is its thread's (the CPU device, one intra-op thread), so a step
  // that waited while another worker's ran is not taken for a slow one;
  // else the clock's time.
  bool step_time_is_thread_cpu = false;
  absl::Duration cloud_timeout = absl::Seconds(2);  // Requests without one.
  // Fills the response's energy from the meter reading at the start.
  std::function<void(std::optional<double>, tandem::v1::InferResponse*)>
      set_energy;
  // Counts offloads in flight, so the agent can wait for their callbacks.
  std::function<void(int delta)> in_flight;
};

class InferJob : public Job {
 public:
  using Done = std::function<void(absl::StatusOr<tandem::v1::InferResponse>)>;

  struct Params {
    const ProgressiveModel* model = nullptr;
    // Must outlive `done` (forward_input reads its bytes at the offload).
    const tandem::v1::InferRequest* request = nullptr;
    at::Tensor input;  // Decoded and validated, one sample.
    Route route;
    std::string task;
    // Accuracy an exit must have been calibrated at for its answer to be
    // acceptable when the scheduler cuts the rest (imprecise computation).
    float min_accuracy = 0;
    absl::Time received;
    absl::Time deadline = absl::InfiniteFuture();
    std::optional<double> meter_start;
  };

  InferJob(const JobServices* services, Params params, Done done);
  ~InferJob() override;

  // The scheduler's id of this job, for the offload's Resume.
  void OnSubmitted(BlockScheduler::JobId id) override { id_ = id; }

  Next Step() override;
  absl::Duration RemainingWork() const override;
  absl::Duration MandatoryWork() const override;
  bool HasAcceptableAnswer() const override;
  void Cut(const absl::Status& why) override;
  std::string BatchKey() const override;
  absl::Duration NextStepTime(int rows) const override;
  std::vector<Next> StepBatch(const std::vector<Job*>& others) override;

 private:
  // The cloud's reply, shared with the link's callback (which may outlive
  // the job when the scheduler cuts it while waiting).
  struct Offload {
    absl::Mutex mu;
    std::optional<absl::StatusOr<tandem::v1::ContinueResponse>> reply
        ABSL_GUARDED_BY(mu);
    absl::Time replied ABSL_GUARDED_BY(mu);
    absl::Time sent;
  };

  bool AtEdgeBlock() const { return !finished_ && next_block_ < edge_end_; }
  // After this job's rows of a (batched) block run: exit decision, timings.
  // `exit`: the head evaluated after the block, for every row; null when
  // none was.
  Next AfterBlock(const absl::StatusOr<BlockRun>& run,
                  const std::shared_ptr<const ExitEvaluation>& exit, int row,
                  int rows, absl::Duration took);
  // Encodes and sends the block-split input; kWait, or kStep when the cloud
  // is out of reach (then the edge finishes).
  Next StartOffload();
  // The reply (or failure) has come.
  Next FinishOffload();
  // Answers from exit `row` of `exit` after `block`.
  Next Answer(const ExitEvaluation& exit, int row, int block,
              tandem::v1::Site site);
  Next Fail(const absl::Status& status);
  void Finish(absl::StatusOr<tandem::v1::InferResponse> result);

  const JobServices* const services_;
  Params params_;
  Done done_;
  BlockScheduler::JobId id_ = 0;
  const int num_blocks_;
  int next_block_ = 0;  // The input of this block is `x_`.
  int edge_end_;        // Blocks [next_block_, edge_end_) run here.
  at::Tensor x_;
  bool started_ = false;
  bool finished_ = false;
  bool cloud_failed_ = false;
  std::shared_ptr<Offload> offload_;  // Set while an offload is out.
  // The last exit evaluated: the best answer so far.
  std::shared_ptr<const ExitEvaluation> best_;
  int best_row_ = 0;
  int best_block_ = -1;
  int last_batch_rows_ = 1;
  tandem::v1::InferResponse response_;
};

}  // namespace tandem

#endif  // TANDEM_EDGE_INFER_JOB_H_
