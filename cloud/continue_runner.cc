#include "cloud/continue_runner.h"

#include <torch/torch.h>

#include <algorithm>
#include <utility>

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
    std::shared_ptr<const ModelRepository> repository,
    absl::Duration retire_after) {
  const absl::Time now = RealClock()->Now();
  absl::MutexLock lock(&mu_);
  if (repository_ != nullptr && retire_after > absl::ZeroDuration()) {
    retiring_.push_back({std::move(repository_), now + retire_after});
  }
  repository_ = std::move(repository);
  retiring_.erase(
      std::remove_if(retiring_.begin(), retiring_.end(),
                     [now](const Retiring& r) { return r.until <= now; }),
      retiring_.end());
}

std::shared_ptr<const ModelRepository> ContinueRunner::repository() const {
  absl::MutexLock lock(&mu_);
  return repository_;
}

bool ContinueRunner::ready() const {
  absl::MutexLock lock(&mu_);
  return repository_ != nullptr;
}

absl::StatusOr<std::shared_ptr<const ProgressiveModel>> ContinueRunner::Find(
    const std::string& name, const std::string& version,
    bool or_retiring) const {
  absl::MutexLock lock(&mu_);
  if (repository_ == nullptr)
    return absl::UnavailableError("models are still loading");
  absl::StatusOr<std::shared_ptr<const ProgressiveModel>> model =
      repository_->GetShared(name, version);
  if (model.ok() || !or_retiring || version.empty()) return model;
  const absl::Time now = RealClock()->Now();
  for (auto it = retiring_.rbegin(); it != retiring_.rend(); ++it) {
    if (it->until <= now) continue;
    absl::StatusOr<std::shared_ptr<const ProgressiveModel>> old =
        it->repository->GetShared(name, version);
    if (old.ok()) return old;
  }
  return model;
}

absl::Status ContinueRunner::Check(const tandem::v1::ContinueRequest& request,
                                   const ProgressiveModel& model) const {
  RETURN_IF_ERROR(CheckContinueRequest(request, model.config()));
  return ValidateTensorSpec(request.inputs(0),
                            request.raw_input_contents(0).size(), limits_)
      .status();
}

absl::Status ContinueRunner::Precheck(
    const tandem::v1::ContinueRequest& request, std::string* version) const {
  ASSIGN_OR_RETURN(std::shared_ptr<const ProgressiveModel> model,
                   Find(request.model_name(), request.model_version()));
  if (version != nullptr) *version = model->version();
  return Check(request, *model);
}

std::string ContinueRunner::ResolvedVersion(
    const tandem::v1::ContinueRequest& request) const {
  absl::StatusOr<std::shared_ptr<const ProgressiveModel>> model =
      Find(request.model_name(), request.model_version(),
           /*or_retiring=*/true);
  return model.ok() ? (*model)->version() : std::string();
}

int ContinueRunner::ModelMaxBatch(
    const tandem::v1::ContinueRequest& request) const {
  absl::StatusOr<std::shared_ptr<const ProgressiveModel>> model =
      Find(request.model_name(), request.model_version(),
           /*or_retiring=*/true);
  return model.ok() ? std::max(0, (*model)->config().max_batch_size()) : 0;
}

absl::StatusOr<tandem::v1::ContinueResponse> ContinueRunner::Run(
    const tandem::v1::ContinueRequest& request, absl::Time queued_at,
    absl::Time deadline) {
  return std::move(RunBatch({Row{&request, queued_at, deadline}}).front());
}

std::vector<absl::StatusOr<tandem::v1::ContinueResponse>>
ContinueRunner::RunBatch(const std::vector<Row>& rows) {
  Clock* clock = RealClock();
  const absl::Time start = clock->Now();
  std::vector<absl::StatusOr<tandem::v1::ContinueResponse>> results(
      rows.size(), absl::InternalError("not run"));
  // The rows that decode, as one-sample tensors. Rows queued before a
  // reload that removed their version still find it among the retiring
  // repositories; `owner` keeps the model alive while the batch runs.
  std::shared_ptr<const ProgressiveModel> owner;
  const ProgressiveModel* model = nullptr;
  std::vector<int> members;
  std::vector<at::Tensor> inputs;
  for (size_t i = 0; i < rows.size(); ++i) {
    const tandem::v1::ContinueRequest& request = *rows[i].request;
    absl::StatusOr<at::Tensor> input = [&]() -> absl::StatusOr<at::Tensor> {
      if (start >= rows[i].deadline) {
        return absl::DeadlineExceededError(
            "deadline passed while the request was queued");
      }
      ASSIGN_OR_RETURN(std::shared_ptr<const ProgressiveModel> found,
                       Find(request.model_name(), request.model_version(),
                            /*or_retiring=*/true));
      const ProgressiveModel* mine = found.get();
      RETURN_IF_ERROR(Check(request, *mine));
      if (model != nullptr &&
          (mine != model ||
           request.start_block() != rows[members[0]].request->start_block())) {
        return absl::InternalError(
            "batched with requests for another model or block");
      }
      ASSIGN_OR_RETURN(at::Tensor decoded,
                       DecodeTensor(request.inputs(0),
                                    request.raw_input_contents(0), limits_));
      RETURN_IF_ERROR(mine->ValidateBlockInput(request.start_block(), decoded));
      if (decoded.size(0) != 1) {
        return absl::InvalidArgumentError(
            "one sample per request (the server batches requests)");
      }
      model = mine;
      owner = std::move(found);
      return decoded;
    }();
    if (!input.ok()) {
      results[i] = input.status();
      continue;
    }
    members.push_back(static_cast<int>(i));
    inputs.push_back(*std::move(input));
  }
  if (members.empty()) return results;
  const int begin = rows[members[0]].request->start_block();
  const int max_batch = model->config().max_batch_size() > 0
                            ? model->config().max_batch_size()
                            : static_cast<int>(members.size());
  for (size_t first = 0; first < members.size(); first += max_batch) {
    const size_t last = std::min(members.size(), first + max_batch);
    std::vector<at::Tensor> chunk(inputs.begin() + first,
                                  inputs.begin() + last);
    std::vector<ExitThresholds> thresholds;
    std::vector<absl::Time> deadlines;
    std::vector<absl::Duration> queues;
    for (size_t m = first; m < last; ++m) {
      const Row& row = rows[members[m]];
      // Precheck refused thresholds before start_block or outside [0, 1].
      thresholds.emplace_back(row.request->exit_thresholds().begin(),
                              row.request->exit_thresholds().end());
      deadlines.push_back(row.deadline);
      queues.push_back(start - row.queued_at);
    }
    absl::StatusOr<RowsRun> run = RunRowsWithExits(
        *model, chunk.size() == 1 ? chunk[0] : at::cat(chunk, 0), begin,
        thresholds, deadlines);
    for (size_t m = first; m < last; ++m) {
      const int i = members[m];
      if (!run.ok()) {
        results[i] = run.status();
        continue;
      }
      const RowOutcome& outcome = run->rows[m - first];
      if (!outcome.status.ok()) {
        results[i] = outcome.status;
        continue;
      }
      tandem::v1::ContinueResponse response;
      response.set_id(rows[i].request->id());
      TopK(*outcome.exit, outcome.exit_row,
           EffectiveTopK(rows[i].request->top_k()), model->config(),
           response.mutable_top_k());
      response.set_exit_block(outcome.exit_block);
      response.set_confidence(outcome.exit->confidence[outcome.exit_row]);
      response.set_queue_us(
          absl::ToInt64Microseconds(start - rows[i].queued_at));
      // Compute is the model's (blocks and exit heads), as the edge reports
      // its own; checks and decoding count with the transfer.
      response.set_compute_us(absl::ToInt64Microseconds(run->compute_time));
      response.set_batch_size(static_cast<int32_t>(last - first));
      results[i] = std::move(response);
    }
    if (run.ok()) Record(*model, begin, run->block_times, queues);
  }
  return results;
}

void ContinueRunner::Record(const ProgressiveModel& model, int begin,
                            const std::vector<absl::Duration>& times,
                            const std::vector<absl::Duration>& queues) {
  absl::MutexLock lock(&mu_);
  std::vector<SampleWindow>& windows = block_latency_us_[model.name()];
  if (windows.empty())
    windows.assign(model.num_blocks(), SampleWindow(kLatencyWindow));
  for (size_t i = 0; i < times.size(); ++i) {
    windows[begin + i].Add(absl::ToDoubleMicroseconds(times[i]));
  }
  for (absl::Duration queue : queues)
    queue_us_.Add(absl::ToDoubleMicroseconds(queue));
}

absl::StatusOr<tandem::v1::ModelProfile> ContinueRunner::Profile(
    const std::string& name) const {
  ASSIGN_OR_RETURN(std::shared_ptr<const ProgressiveModel> model,
                   Find(name, ""));
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
