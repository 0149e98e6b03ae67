#include "models/request_checks.h"

#include "absl/strings/str_cat.h"

namespace tandem {
namespace {

absl::Status CheckOneInput(int inputs, int contents) {
  if (inputs != 1 || contents != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "expected one input tensor with one raw_input_contents entry; got ",
        inputs, " and ", contents));
  }
  return absl::OkStatus();
}

absl::Status CheckTopK(int32_t top_k) {
  if (top_k < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("top_k ", top_k, " is negative (0 means 1)"));
  }
  return absl::OkStatus();
}

bool HasExitHead(const tandem::v1::ModelConfig& config, int block) {
  for (const tandem::v1::ExitConfig& exit : config.exits()) {
    if (exit.block() == block) return true;
  }
  return false;
}

}  // namespace

absl::Status CheckInferRequest(const tandem::v1::InferRequest& request,
                               const tandem::v1::ModelConfig& config) {
  absl::Status status =
      CheckOneInput(request.inputs_size(), request.raw_input_contents_size());
  if (!status.ok()) return status;
  // Written so that NaN fails too.
  if (!(request.min_accuracy() >= 0 && request.min_accuracy() <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "min_accuracy ", request.min_accuracy(), " is outside [0, 1]"));
  }
  status = CheckTopK(request.top_k());
  if (!status.ok()) return status;
  const int n = config.num_blocks();
  if (request.has_split_point() &&
      (request.split_point() < 0 || request.split_point() > n)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "split_point ", request.split_point(), " is outside [0, ", n, "]"));
  }
  if (request.has_encoding() &&
      !tandem::v1::Encoding_IsValid(request.encoding())) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown encoding ", request.encoding()));
  }
  return absl::OkStatus();
}

absl::Status CheckContinueRequest(const tandem::v1::ContinueRequest& request,
                                  const tandem::v1::ModelConfig& config) {
  const int n = config.num_blocks();
  if (request.start_block() < 0 || request.start_block() >= n) {
    return absl::InvalidArgumentError(absl::StrCat(
        "start_block ", request.start_block(), " is outside [0, ", n, ")"));
  }
  absl::Status status =
      CheckOneInput(request.inputs_size(), request.raw_input_contents_size());
  if (!status.ok()) return status;
  status = CheckTopK(request.top_k());
  if (!status.ok()) return status;
  if (request.deadline_remaining_us() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("deadline_remaining_us ", request.deadline_remaining_us(),
                     " is negative (0: none)"));
  }
  for (const auto& [block, threshold] : request.exit_thresholds()) {
    if (block < request.start_block() || !HasExitHead(config, block)) {
      return absl::InvalidArgumentError(
          absl::StrCat("exit_thresholds names block ", block,
                       ", which has no exit head at or after start_block ",
                       request.start_block()));
    }
    if (!(threshold >= 0 && threshold <= 1)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "exit_thresholds[", block, "] = ", threshold, " is outside [0, 1]"));
    }
  }
  return absl::OkStatus();
}

}  // namespace tandem
