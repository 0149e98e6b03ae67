#include "cloud/continue_runner.h"

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/status_macros.h"
#include "models/block_runner.h"
#include "models/request_checks.h"
#include "models/tensor_codec.h"

namespace tandem {
namespace {

constexpr size_t kLatencyWindow = 64;

}  // namespace

ContinueRunner::ContinueRunner(DecodeLimits limits) : limits_(limits) {}

void ContinueRunner::SetRepository(
    std::unique_ptr<ModelRepository> repository) {
  absl::MutexLock lock(&mu_);
  repository_ = std::move(repository);
}

bool ContinueRunner::ready() const {
  absl::MutexLock lock(&mu_);
  return repository_ != nullptr;
}

absl::StatusOr<const ProgressiveModel*> ContinueRunner::Find(
    const std::string& name, const std::string& version) const {
  absl::MutexLock lock(&mu_);
  if (repository_ == nullptr)
    return absl::UnavailableError("models are still loading");
  // Models live as long as the repository, which is never replaced.
  return repository_->Get(name, version);
}

absl::Status ContinueRunner::Precheck(
    const tandem::v1::ContinueRequest& request) const {
  ASSIGN_OR_RETURN(const ProgressiveModel* model,
                   Find(request.model_name(), request.model_version()));
  RETURN_IF_ERROR(CheckContinueRequest(request, model->config()));
  return ValidateTensorSpec(request.inputs(0),
                            request.raw_input_contents(0).size(), limits_)
      .status();
}

absl::StatusOr<tandem::v1::ContinueResponse> ContinueRunner::Run(
    const tandem::v1::ContinueRequest& request, absl::Time queued_at,
    absl::Time deadline) {
  Clock* clock = RealClock();
  const absl::Time start = clock->Now();
  if (start >= deadline) {
    return absl::DeadlineExceededError(
        "deadline passed while the request was queued");
  }
  RETURN_IF_ERROR(Precheck(request));
  ASSIGN_OR_RETURN(const ProgressiveModel* model,
                   Find(request.model_name(), request.model_version()));
  ASSIGN_OR_RETURN(
      at::Tensor input,
      DecodeTensor(request.inputs(0), request.raw_input_contents(0), limits_));
  RETURN_IF_ERROR(model->ValidateBlockInput(request.start_block(), input));
  if (input.size(0) != 1) {
    return absl::InvalidArgumentError(
        "one sample per request (the server batches requests)");
  }
  // Precheck refused thresholds before start_block or outside [0, 1].
  const ExitThresholds thresholds(request.exit_thresholds().begin(),
                                  request.exit_thresholds().end());
  ASSIGN_OR_RETURN(
      BlockRun run,
      RunBlocksWithExits(*model, input, request.start_block(),
                         model->num_blocks(), thresholds, deadline));
  ASSIGN_OR_RETURN(const ExitEvaluation* exit, AnsweringExit(run));
  tandem::v1::ContinueResponse response;
  response.set_id(request.id());
  TopK(*exit, 0, EffectiveTopK(request.top_k()), model->config(),
       response.mutable_top_k());
  response.set_exit_block(run.exit_block);
  response.set_confidence(exit->confidence[0]);
  response.set_queue_us(absl::ToInt64Microseconds(start - queued_at));
  // Compute is the model's (blocks and exit heads), as the edge reports its
  // own; checks and decoding count with the transfer.
  response.set_compute_us(absl::ToInt64Microseconds(run.compute_time));
  Record(*model, request.start_block(), run.block_times, start - queued_at);
  return response;
}

void ContinueRunner::Record(const ProgressiveModel& model, int begin,
                            const std::vector<absl::Duration>& times,
                            absl::Duration queue) {
  absl::MutexLock lock(&mu_);
  std::vector<SampleWindow>& windows = block_latency_us_[model.name()];
  if (windows.empty())
    windows.assign(model.num_blocks(), SampleWindow(kLatencyWindow));
  for (size_t i = 0; i < times.size(); ++i) {
    windows[begin + i].Add(absl::ToDoubleMicroseconds(times[i]));
  }
  queue_us_.Add(absl::ToDoubleMicroseconds(queue));
}

absl::StatusOr<tandem::v1::ModelProfile> ContinueRunner::Profile(
    const std::string& name) const {
  ASSIGN_OR_RETURN(const ProgressiveModel* model, Find(name, ""));
  tandem::v1::ModelProfile profile;
  profile.set_model_name(model->name());
  profile.set_model_version(model->version());
  profile.set_device("cpu");
  profile.set_batch_size(1);
  profile.set_measured_unix_ms(absl::ToUnixMillis(absl::Now()));
  absl::MutexLock lock(&mu_);
  const auto it = block_latency_us_.find(name);
  for (int b = 0; b < model->num_blocks(); ++b) {
    tandem::v1::BlockProfile* block = profile.add_blocks();
    block->set_block(b);
    int64_t elements = 1;
    for (int64_t d : model->BlockInputShape(b + 1)) elements *= d;
    block->set_output_elements(elements);
    if (it != block_latency_us_.end()) {
      block->set_latency_us(it->second[b].Median());
      profile.set_samples(
          std::max<int>(profile.samples(), it->second[b].size()));
    }
  }
  return profile;
}

void ContinueRunner::SeedProfile(const tandem::v1::ModelProfile& profile) {
  absl::MutexLock lock(&mu_);
  std::vector<SampleWindow>& windows = block_latency_us_[profile.model_name()];
  if (windows.empty())
    windows.assign(profile.blocks_size(), SampleWindow(kLatencyWindow));
  for (int b = 0;
       b < profile.blocks_size() && b < static_cast<int>(windows.size()); ++b) {
    windows[b].Add(profile.blocks(b).latency_us() +
                   profile.blocks(b).exit_latency_us());
  }
}

double ContinueRunner::queue_us_ewma() const {
  absl::MutexLock lock(&mu_);
  return queue_us_.value();
}

}  // namespace tandem
