#include "models/block_runner.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/status_macros.h"

namespace tandem {

absl::StatusOr<BlockRun> RunBlocksWithExits(const ProgressiveModel& model,
                                            const at::Tensor& input, int begin,
                                            int end,
                                            const ExitThresholds& thresholds,
                                            absl::Time deadline) {
  if (begin < 0 || end > model.num_blocks() || begin > end) {
    return absl::InvalidArgumentError("block range outside the model");
  }
  BlockRun run;
  run.output = input;
  Clock* clock = RealClock();
  const absl::Time start = clock->Now();
  for (int b = begin; b < end; ++b) {
    const absl::Time block_start = clock->Now();
    if (block_start >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "deadline passed before block ", b, " of '", model.name(), "'"));
    }
    ASSIGN_OR_RETURN(run.output, model.RunBlocks(run.output, b, b + 1));
    ++run.blocks_run;
    const bool final_exit = b == model.num_blocks() - 1;
    const auto threshold = thresholds.find(b);
    if (model.HasExit(b) && (final_exit || threshold != thresholds.end())) {
      ASSIGN_OR_RETURN(ExitEvaluation exit, model.EvaluateExit(b, run.output));
      // A non-finite activation anywhere up to here turns the head's softmax
      // into NaN: checking the few confidences covers every block before it.
      if (!std::all_of(exit.confidence.begin(), exit.confidence.end(),
                       [](float c) { return std::isfinite(c); })) {
        return absl::InternalError(absl::StrCat(
            "model '", model.name(), "': the exit head after block ", b,
            " produced a non-finite confidence (an activation of blocks [",
            begin, ", ", b, "] overflowed or is NaN)"));
      }
      // The final exit always answers, whatever its confidence.
      const float needed = final_exit ? 0.0f : threshold->second;
      const bool confident =
          final_exit ||
          std::all_of(exit.confidence.begin(), exit.confidence.end(),
                      [needed](float c) { return c >= needed; });
      run.exit = std::move(exit);
      run.best_block = b;
      if (confident) {
        run.exited = true;
        run.exit_block = b;
      }
    }
    run.block_times.push_back(clock->Now() - block_start);
    if (run.exited) break;
  }
  run.compute_time = clock->Now() - start;
  if (end == model.num_blocks() && !run.exited) {
    return absl::InternalError(absl::StrCat(
        "model '", model.name(), "': no exit answered after the last block"));
  }
  return run;
}

absl::StatusOr<const ExitEvaluation*> AnsweringExit(const BlockRun& run) {
  if (!run.exited || !run.exit.has_value() || run.exit_block < 0) {
    return absl::InternalError("no exit answered the request");
  }
  return &*run.exit;
}

absl::StatusOr<const ExitEvaluation*> BestExitSoFar(const BlockRun& run) {
  if (!run.exit.has_value() || run.best_block < 0) {
    return absl::FailedPreconditionError("no exit has been evaluated yet");
  }
  return &*run.exit;
}

void TopK(const ExitEvaluation& exit, int sample, int k,
          const tandem::v1::ModelConfig& config,
          google::protobuf::RepeatedPtrField<tandem::v1::ClassScore>* out) {
  out->Clear();
  if (sample < 0 || sample >= exit.probabilities.size(0)) return;
  const at::Tensor probabilities = exit.probabilities[sample];
  k = std::max<int>(1, std::min<int64_t>(k, probabilities.size(0)));
  const auto [values, indices] = probabilities.topk(k);
  const auto value = values.accessor<float, 1>();
  const auto index = indices.accessor<int64_t, 1>();
  for (int i = 0; i < k; ++i) {
    tandem::v1::ClassScore* score = out->Add();
    score->set_index(static_cast<int32_t>(index[i]));
    score->set_probability(value[i]);
    if (index[i] < config.labels_size())
      score->set_label(config.labels(index[i]));
  }
}

}  // namespace tandem
