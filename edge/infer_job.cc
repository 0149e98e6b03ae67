#include "edge/infer_job.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "models/request_checks.h"
#include "models/tensor_codec.h"

namespace tandem {
namespace {

using tandem::v1::ContinueRequest;
using tandem::v1::ContinueResponse;
using tandem::v1::InferResponse;

// Time kept back from the cloud call, beyond the local work, for the job's
// hand-off to a worker and the answer's way home: a twentieth of what is
// left, within [2 ms, 50 ms]. On a loaded device the hand-off alone can take
// milliseconds, and a fallback that starts 2 ms before the deadline misses.
absl::Duration ReplyMargin(absl::Duration left) {
  return std::clamp(left / 20, absl::Milliseconds(2), absl::Milliseconds(50));
}
// Weight of the newest measurement in StepTimes.
constexpr double kStepTimeWeight = 0.2;

int64_t Micros(absl::Duration d) { return absl::ToInt64Microseconds(d); }

// Calibrated accuracy of the exit after `block` classifying alone (0 for
// untrained models and unknown exits).
float ExitAccuracy(const tandem::v1::ModelConfig& config, int block) {
  for (const tandem::v1::ExitConfig& exit : config.exits()) {
    if (exit.block() == block) return exit.test_accuracy();
  }
  return 0;
}

}  // namespace

absl::Duration StepTimes::Predict(const std::string& model, int block, int rows,
                                  absl::Duration single) const {
  absl::MutexLock lock(&mu_);
  const auto it = us_.find({model, block, rows});
  if (it != us_.end()) return absl::Microseconds(it->second);
  if (rows > 1) {
    const auto one = us_.find({model, block, 1});
    if (one != us_.end()) single = absl::Microseconds(one->second);
  }
  return rows * single;
}

void StepTimes::Record(const std::string& model, int block, int rows,
                       absl::Duration took) {
  const double us = absl::ToDoubleMicroseconds(took);
  absl::MutexLock lock(&mu_);
  auto [it, inserted] = us_.try_emplace({model, block, rows}, us);
  if (!inserted)
    it->second = kStepTimeWeight * us + (1 - kStepTimeWeight) * it->second;
}

InferJob::InferJob(const JobServices* services, Params params, Done done)
    : services_(services),
      params_(std::move(params)),
      done_(std::move(done)),
      num_blocks_(params_.model->num_blocks()),
      edge_end_(params_.route.split),
      x_(params_.input) {
  const ProgressiveModel& model = *params_.model;
  response_.set_model_name(model.name());
  response_.set_model_version(model.version());
  response_.set_id(params_.request->id());
  response_.set_split_point(params_.route.split);
  response_.set_fallback_reason(params_.route.fallback_reason);
  response_.set_task(params_.task);
  response_.set_scaling_level(params_.route.scaling_level);
}

InferJob::~InferJob() {
  // Every request gets an answer or an explicit error, even one dropped
  // without a step (which the scheduler never does).
  if (done_) Fail(absl::InternalError("the job was dropped unanswered"));
}

void InferJob::Finish(absl::StatusOr<InferResponse> result) {
  finished_ = true;
  if (!done_) return;
  const bool measured = result.ok() && params_.route.plan != nullptr &&
                        services_->keeper != nullptr;
  const int64_t bytes_sent = result.ok() ? result->bytes_sent() : 0;
  const absl::Duration took = services_->clock->Now() - params_.received;
  Done done = std::move(done_);
  done_ = nullptr;
  done(std::move(result));
  // What following the plan took, for the keeper's next comparison: told
  // after the answer has gone, since the keeper's lock may be held by a
  // re-plan on the planner thread.
  if (measured) {
    services_->keeper->OnAnswered(params_.model->name(), *params_.route.plan,
                                  took, bytes_sent);
  }
}

Job::Next InferJob::Fail(const absl::Status& status) {
  Finish(status);
  return Next::kDone;
}

Job::Next InferJob::Answer(const ExitEvaluation& exit, int row, int block,
                           tandem::v1::Site site) {
  const ProgressiveModel& model = *params_.model;
  TopK(exit, row, EffectiveTopK(params_.request->top_k()), model.config(),
       response_.mutable_top_k());
  response_.set_exit_block(block);
  response_.set_confidence(exit.confidence[row]);
  response_.set_answered_by(site);
  response_.set_batch_size(last_batch_rows_);
  response_.mutable_timings()->set_total_us(
      Micros(services_->clock->Now() - params_.received));
  if (services_->set_energy)
    services_->set_energy(params_.meter_start, &response_);
  Finish(std::move(response_));
  return Next::kDone;
}

Job::Next InferJob::Step() {
  if (AtEdgeBlock()) return StepBatch({}).front();
  if (!started_) {
    started_ = true;
    response_.mutable_timings()->set_edge_queue_us(
        Micros(services_->clock->Now() - params_.received));
  }
  if (offload_ != nullptr) return FinishOffload();
  if (!finished_ && edge_end_ < num_blocks_ && !cloud_failed_)
    return StartOffload();
  return Fail(absl::InternalError("the job has no step left"));
}

std::vector<Job::Next> InferJob::StepBatch(const std::vector<Job*>& others) {
  std::vector<InferJob*> jobs = {this};
  for (Job* other : others) jobs.push_back(static_cast<InferJob*>(other));
  const absl::Time start = services_->clock->Now();
  const bool cpu_time = services_->step_time_is_thread_cpu;
  const absl::Duration cpu_start =
      cpu_time ? ThreadCpuTime() : absl::ZeroDuration();
  bool wants_exit = false;
  for (InferJob* job : jobs) {
    if (!job->started_) {
      job->started_ = true;
      job->response_.mutable_timings()->set_edge_queue_us(
          Micros(start - job->params_.received));
    }
    wants_exit |= job->params_.route.thresholds.count(next_block_) > 0;
  }
  const int block = next_block_;
  const ProgressiveModel& model = *params_.model;
  // The head after `block` is evaluated when any row may leave there; each
  // row then compares its own threshold (the runner's all-rows rule is
  // side-stepped with a threshold no confidence reaches).
  ExitThresholds evaluate;
  if (wants_exit) evaluate[block] = 2.0f;
  absl::StatusOr<BlockRun> run;
  {
    // Device emulation (benchmarks): the step as a whole, as timed below, is
    // the emulated device's work — not only the time inside LibTorch.
    const ProgressiveModel::EmulatedDevice emulated(model);
    at::Tensor batch = x_;
    if (jobs.size() > 1) {
      std::vector<at::Tensor> rows;
      rows.reserve(jobs.size());
      for (InferJob* job : jobs) rows.push_back(job->x_);
      batch = at::cat(rows, 0);
    }
    run = RunBlocksWithExits(model, batch, block, block + 1, evaluate);
  }
  const absl::Duration took = services_->clock->Now() - start;
  const absl::Duration own = cpu_time ? ThreadCpuTime() - cpu_start : took;
  const int rows = static_cast<int>(jobs.size());
  services_->step_times->Record(model.name(), block, rows, own);
  if (rows == 1) {
    services_->keeper->OnLocalBlock(model, block, own,
                                    run.ok() && run->exit.has_value());
  }
  std::shared_ptr<const ExitEvaluation> exit;
  if (run.ok() && run->exit.has_value()) {
    exit = std::make_shared<const ExitEvaluation>(*run->exit);
  }
  std::vector<Next> next;
  next.reserve(jobs.size());
  for (int row = 0; row < rows; ++row) {
    next.push_back(jobs[row]->AfterBlock(run, exit, row, rows, took));
  }
  return next;
}

Job::Next InferJob::AfterBlock(
    const absl::StatusOr<BlockRun>& run,
    const std::shared_ptr<const ExitEvaluation>& exit, int row, int rows,
    absl::Duration took) {
  last_batch_rows_ = rows;
  if (!run.ok()) return Fail(run.status());
  tandem::v1::Timings* timings = response_.mutable_timings();
  timings->set_edge_compute_us(timings->edge_compute_us() + Micros(took));
  const int block = next_block_++;
  x_ = rows == 1 ? run->output : run->output.narrow(0, row, 1);
  if (exit != nullptr) {
    best_ = exit;
    best_row_ = row;
    best_block_ = block;
    const auto threshold = params_.route.thresholds.find(block);
    const bool final_exit = block == num_blocks_ - 1;
    if (final_exit || (threshold != params_.route.thresholds.end() &&
                       exit->confidence[row] >= threshold->second)) {
      return Answer(*exit, row, block, tandem::v1::SITE_EDGE);
    }
  }
  if (next_block_ >= num_blocks_) {
    return Fail(absl::InternalError(
        absl::StrCat("model '", params_.model->name(),
                     "': no exit answered after the last block")));
  }
  return Next::kStep;
}

Job::Next InferJob::StartOffload() {
  const ProgressiveModel& model = *params_.model;
  const tandem::v1::InferRequest& request = *params_.request;
  const Route& route = params_.route;
  Clock* clock = services_->clock;
  ContinueRequest offload;
  offload.set_model_name(model.name());
  offload.set_model_version(model.version());
  offload.set_id(request.id());
  offload.set_start_block(route.split);
  offload.set_top_k(EffectiveTopK(request.top_k()));
  for (const auto& [block, threshold] : route.thresholds) {
    if (block >= route.split)
      (*offload.mutable_exit_thresholds())[block] = threshold;
  }
  const absl::Time encode_start = clock->Now();
  if (route.forward_input) {
    *offload.add_inputs() = request.inputs(0);
    *offload.add_raw_input_contents() = request.raw_input_contents(0);
  } else {
    EncodeOptions encode;
    encode.encoding = route.encoding;
    encode.compression = route.compression;
    encode.name = absl::StrCat("block_", route.split, "_input");
    const absl::Status encoded =
        EncodeTensor(x_.to(at::kCPU), encode, offload.add_inputs(),
                     offload.add_raw_input_contents());
    if (!encoded.ok()) {
      // The tensor is the model's own activation: a fault of the model (an
      // overflow), not of the request.
      return Fail(absl::InternalError(absl::StrCat(
          "model '", model.name(), "': the output of block ", route.split - 1,
          " cannot be offloaded: ", encoded.message())));
    }
  }
  response_.mutable_timings()->set_encode_us(
      Micros(clock->Now() - encode_start));
  response_.set_bytes_sent(
      static_cast<int64_t>(offload.raw_input_contents(0).size()));

  // Keep back enough of the deadline to finish locally should the cloud fail.
  const absl::Time now = clock->Now();
  const absl::Duration local =
      route.local_reserve != absl::InfiniteDuration()
          ? route.local_reserve
          : services_->keeper->EstimateLocal(model, route.split, num_blocks_);
  absl::Time cloud_deadline =
      params_.deadline == absl::InfiniteFuture()
          ? now + services_->cloud_timeout
          : params_.deadline - local - ReplyMargin(params_.deadline - now);
  // A transfer far past its prediction means the link fell: do not let it
  // hold the request hostage.
  cloud_deadline = std::min(cloud_deadline, now + route.offload_bound);
  if (cloud_deadline <= now) {
    cloud_failed_ = true;
    edge_end_ = num_blocks_;
    response_.set_fallback_reason(
        "cloud DEADLINE_EXCEEDED: the deadline leaves no time for the cloud; "
        "finished on the edge");
    return Next::kStep;
  }
  offload.set_deadline_remaining_us(Micros(cloud_deadline - now));
  offload_ = std::make_shared<Offload>();
  offload_->sent = now;
  if (services_->in_flight) services_->in_flight(+1);
  // The callback holds the shared reply slot and the id, never the job: a
  // job cut while waiting is destroyed at once.
  std::shared_ptr<Offload> slot = offload_;
  BlockScheduler* scheduler = services_->scheduler;
  const BlockScheduler::JobId id = id_;
  std::function<void(int)> in_flight = services_->in_flight;
  services_->cloud->ContinueAsync(std::move(offload), cloud_deadline,
                                  [slot, scheduler, id, in_flight, clock](
                                      absl::StatusOr<ContinueResponse> reply) {
                                    const bool answered = reply.ok();
                                    {
                                      absl::MutexLock lock(&slot->mu);
                                      slot->replied = clock->Now();
                                      slot->reply = std::move(reply);
                                    }
                                    // The cloud's answer needs no device
                                    // work: answer it here, not through a
                                    // worker. A failure finishes on the edge.
                                    if (answered) {
                                      scheduler->ResumeHere(id);
                                    } else {
                                      scheduler->Resume(id);
                                    }
                                    if (in_flight) in_flight(-1);
                                  });
  return Next::kWait;
}

Job::Next InferJob::FinishOffload() {
  std::optional<absl::StatusOr<ContinueResponse>> reply;
  absl::Time replied;
  {
    absl::MutexLock lock(&offload_->mu);
    reply = std::move(offload_->reply);
    replied = offload_->replied;
  }
  if (!reply.has_value()) return Next::kWait;  // Resumed before the reply.
  const absl::Duration round_trip = replied - offload_->sent;
  offload_.reset();
  tandem::v1::Timings* timings = response_.mutable_timings();
  PlanKeeper* keeper = services_->keeper;
  if (reply->ok()) {
    const ContinueResponse& cloud = **reply;
    keeper->OnTransfer(
        response_.bytes_sent(),
        round_trip - absl::Microseconds(cloud.queue_us() + cloud.compute_us()),
        /*completed=*/true);
    *response_.mutable_top_k() = cloud.top_k();
    response_.set_exit_block(cloud.exit_block());
    response_.set_confidence(cloud.confidence());
    response_.set_answered_by(tandem::v1::SITE_CLOUD);
    response_.set_batch_size(last_batch_rows_);
    timings->set_cloud_queue_us(cloud.queue_us());
    timings->set_cloud_compute_us(cloud.compute_us());
    timings->set_transfer_us(std::max<int64_t>(
        0, Micros(round_trip) - cloud.queue_us() - cloud.compute_us()));
    timings->set_total_us(Micros(services_->clock->Now() - params_.received));
    if (services_->set_energy)
      services_->set_energy(params_.meter_start, &response_);
    Finish(std::move(response_));
    return Next::kDone;
  }
  const absl::Status& status = reply->status();
  timings->set_transfer_us(Micros(round_trip));
  if (status.code() == absl::StatusCode::kDeadlineExceeded) {
    keeper->OnTransfer(response_.bytes_sent(), round_trip,
                       /*completed=*/false);
  }
  // The cloud failed: finish here, or answer with what we have.
  cloud_failed_ = true;
  if (!params_.route.fallback_thresholds.empty())
    params_.route.thresholds = params_.route.fallback_thresholds;
  const std::string reason =
      absl::StrCat("cloud ", absl::StatusCodeToString(status.code()), ": ",
                   status.message());
  const bool no_time_left =
      params_.deadline != absl::InfiniteFuture() &&
      services_->clock->Now() +
              keeper->EstimateLocal(*params_.model, next_block_, num_blocks_) >
          params_.deadline;
  if (params_.request->allow_partial() && no_time_left && best_ != nullptr) {
    response_.set_fallback_reason(reason +
                                  "; answered by the best exit so far");
    return Answer(*best_, best_row_, best_block_, tandem::v1::SITE_EDGE);
  }
  response_.set_fallback_reason(reason + "; finished on the edge");
  edge_end_ = num_blocks_;
  return Next::kStep;
}

absl::Duration InferJob::RemainingWork() const {
  if (!AtEdgeBlock()) return absl::ZeroDuration();
  return services_->keeper->EstimateLocal(*params_.model, next_block_,
                                          edge_end_);
}

absl::Duration InferJob::MandatoryWork() const {
  if (!AtEdgeBlock() || HasAcceptableAnswer()) return absl::ZeroDuration();
  // Up to the first exit ahead whose answer would be acceptable.
  const ProgressiveModel& model = *params_.model;
  for (int block = next_block_; block < edge_end_; ++block) {
    if (model.HasExit(block) &&
        (params_.route.thresholds.count(block) > 0 ||
         block == num_blocks_ - 1) &&
        ExitAccuracy(model.config(), block) + 1e-6 >= params_.min_accuracy) {
      return services_->keeper->EstimateLocal(model, next_block_, block + 1);
    }
  }
  return RemainingWork();
}

bool InferJob::HasAcceptableAnswer() const {
  return !finished_ && best_ != nullptr &&
         ExitAccuracy(params_.model->config(), best_block_) + 1e-6 >=
             params_.min_accuracy;
}

void InferJob::Cut(const absl::Status& why) {
  if (HasAcceptableAnswer()) {
    response_.set_cut_short(true);
    response_.set_fallback_reason(absl::StrCat(
        response_.fallback_reason(),
        response_.fallback_reason().empty() ? "" : "; ", "cut short (",
        why.message(), "): answered by the exit after block ", best_block_));
    Answer(*best_, best_row_, best_block_, tandem::v1::SITE_EDGE);
    return;
  }
  Fail(why);
}

std::string InferJob::BatchKey() const {
  if (!AtEdgeBlock()) return {};
  return absl::StrCat(params_.model->name(), "/", params_.model->version(), "@",
                      next_block_);
}

absl::Duration InferJob::NextStepTime(int rows) const {
  if (!AtEdgeBlock()) {
    return rows == 1 ? absl::ZeroDuration() : absl::InfiniteDuration();
  }
  const int max_rows = params_.model->config().max_batch_size();
  if (max_rows > 0 && rows > max_rows) return absl::InfiniteDuration();
  const ProgressiveModel& model = *params_.model;
  return services_->step_times->Predict(
      model.name(), next_block_, rows,
      services_->keeper->EstimateLocal(model, next_block_, next_block_ + 1));
}

}  // namespace tandem
