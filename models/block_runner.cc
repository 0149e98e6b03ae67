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

absl::StatusOr<RowsRun> RunRowsWithExits(
    const ProgressiveModel& model, const at::Tensor& batch, int begin,
    const std::vector<ExitThresholds>& thresholds,
    const std::vector<absl::Time>& deadlines) {
  const int n = static_cast<int>(batch.size(0));
  if (begin < 0 || begin >= model.num_blocks()) {
    return absl::InvalidArgumentError("block range outside the model");
  }
  if (static_cast<int>(thresholds.size()) != n ||
      static_cast<int>(deadlines.size()) != n) {
    return absl::InvalidArgumentError(
        "one threshold set and one deadline per row");
  }
  RowsRun run;
  run.rows.resize(n);
  std::vector<int> active(n);  // Rows of `batch` still in `x`, in order.
  for (int r = 0; r < n; ++r) active[r] = r;
  at::Tensor x = batch;
  // Keeps the rows of `x` at `positions` (indices into `active`).
  auto keep = [&x, &active](const std::vector<int64_t>& positions) {
    if (positions.size() == active.size()) return;
    std::vector<int> rows;
    rows.reserve(positions.size());
    for (int64_t p : positions) rows.push_back(active[p]);
    active = std::move(rows);
    if (!active.empty()) {
      x = x.index_select(0,
                         torch::tensor(positions, torch::kLong).to(x.device()));
    }
  };
  Clock* clock = RealClock();
  const absl::Time start = clock->Now();
  for (int b = begin; b < model.num_blocks() && !active.empty(); ++b) {
    const absl::Time block_start = clock->Now();
    std::vector<int64_t> on_time;
    for (size_t i = 0; i < active.size(); ++i) {
      if (block_start < deadlines[active[i]]) {
        on_time.push_back(static_cast<int64_t>(i));
      } else {
        run.rows[active[i]].status = absl::DeadlineExceededError(absl::StrCat(
            "deadline passed before block ", b, " of '", model.name(), "'"));
      }
    }
    keep(on_time);
    if (active.empty()) break;
    ASSIGN_OR_RETURN(x, model.RunBlocks(x, b, b + 1));
    run.block_rows.push_back(static_cast<int>(active.size()));
    const bool final_exit = b == model.num_blocks() - 1;
    bool evaluate = final_exit;
    for (int r : active) evaluate |= thresholds[r].count(b) > 0;
    if (model.HasExit(b) && evaluate) {
      ASSIGN_OR_RETURN(ExitEvaluation evaluation, model.EvaluateExit(b, x));
      auto exit = std::make_shared<const ExitEvaluation>(std::move(evaluation));
      std::vector<int64_t> going_on;
      for (size_t i = 0; i < active.size(); ++i) {
        RowOutcome& row = run.rows[active[i]];
        const float confidence = exit->confidence[i];
        if (!std::isfinite(confidence)) {
          row.status = absl::InternalError(absl::StrCat(
              "model '", model.name(), "': the exit head after block ", b,
              " produced a non-finite confidence (an activation of blocks [",
              begin, ", ", b, "] overflowed or is NaN)"));
          continue;
        }
        const auto threshold = thresholds[active[i]].find(b);
        if (final_exit || (threshold != thresholds[active[i]].end() &&
                           confidence >= threshold->second)) {
          row.exit_block = b;
          row.exit = exit;
          row.exit_row = static_cast<int>(i);
        } else {
          going_on.push_back(static_cast<int64_t>(i));
        }
      }
      keep(going_on);
    }
    run.block_times.push_back(clock->Now() - block_start);
  }
  run.compute_time = clock->Now() - start;
  for (int r : active) {
    run.rows[r].status = absl::InternalError(absl::StrCat(
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
