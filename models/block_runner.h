// Runs a range of a progressive model's blocks with early exits: the shared
// inner loop of the edge agent and the cloud server.
//
//   ASSIGN_OR_RETURN(BlockRun run,
//                    RunBlocksWithExits(model, x, 0, k, thresholds));
//   if (run.exited) {
//     ASSIGN_OR_RETURN(const ExitEvaluation* exit, AnsweringExit(run));
//     TopK(*exit, 0, 3, model.config(), &scores);
//   } else {
//     Offload(run.output);
//   }
//
// Thread-safe as ProgressiveModel is.
#ifndef TANDEM_MODELS_BLOCK_RUNNER_H_
#define TANDEM_MODELS_BLOCK_RUNNER_H_

#include <ATen/core/Tensor.h>

#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "google/protobuf/repeated_field.h"
#include "models/progressive_model.h"
#include "tandem/v1/inference.pb.h"

namespace tandem {

// Confidence (max softmax probability) needed to leave at an exit, by the
// block the exit follows. Exits absent here are not evaluated, except the
// final exit when the range reaches the last block: it always answers.
using ExitThresholds = std::map<int, float>;

struct BlockRun {
  // True when an exit answered; `exit_block` and `exit` say which and what.
  bool exited = false;
  int exit_block = -1;
  // The last exit evaluated (answering or not): the best answer so far.
  std::optional<ExitEvaluation> exit;
  int best_block = -1;  // The block `exit` follows.
  // When not exited: the input of block `end`.
  at::Tensor output;
  int blocks_run = 0;
  std::vector<absl::Duration>
      block_times;  // Per block run, exit heads included.
  absl::Duration compute_time;
};

// Runs blocks [begin, end) of `model` on `input` (the input of block
// `begin`), evaluating after each block the exits in `thresholds` and the
// final exit, and stops at the first exit whose confidence reaches its
// threshold. Batches answer together: an exit is taken when every sample in
// the batch is confident. When `end` is the last block the final exit always
// answers, so such a run has `exited` set. An exit head whose confidence is
// NaN or infinite (an activation overflowed) is INTERNAL naming the block.
// Block boundaries are where a late request stops: once `deadline` has
// passed, the next block is not started (DEADLINE_EXCEEDED), so work whose
// answer would come too late does not hold the worker.
absl::StatusOr<BlockRun> RunBlocksWithExits(
    const ProgressiveModel& model, const at::Tensor& input, int begin, int end,
    const ExitThresholds& thresholds,
    absl::Time deadline = absl::InfiniteFuture());

// One row of RunRowsWithExits.
struct RowOutcome {
  // OK: the exit after `exit_block` answered. DEADLINE_EXCEEDED: the row's
  // deadline passed before a block it needed. INTERNAL: its exit head's
  // confidence was not finite.
  absl::Status status;
  int exit_block = -1;
  // The evaluation that answered, holding this row at `exit_row`.
  std::shared_ptr<const ExitEvaluation> exit;
  int exit_row = 0;
};

struct RowsRun {
  std::vector<RowOutcome> rows;
  // Per block run: its time (exit head included) and the rows it ran on.
  std::vector<absl::Duration> block_times;
  std::vector<int> block_rows;
  absl::Duration compute_time;
};

// Runs blocks [begin, N) of `model` on `batch` (rows of the input of block
// `begin`) where every row has its own exit thresholds and deadline, for
// batches of unrelated requests. After each block, the rows whose exit is
// confident enough (the final exit always is) answer and leave; the others go
// on as a smaller batch. A row whose deadline has passed is dropped before
// the next block. Rows fail alone (see RowOutcome); the returned status is
// an error only when the whole batch failed (a bad range, a block that would
// not run).
absl::StatusOr<RowsRun> RunRowsWithExits(
    const ProgressiveModel& model, const at::Tensor& batch, int begin,
    const std::vector<ExitThresholds>& thresholds,
    const std::vector<absl::Time>& deadlines);

// The exit that answered `run`, or INTERNAL when none did. Callers read exits
// only through these two, never by dereferencing `run.exit` themselves.
absl::StatusOr<const ExitEvaluation*> AnsweringExit(const BlockRun& run);
// The last exit evaluated (for allow_partial answers), or FAILED_PRECONDITION.
absl::StatusOr<const ExitEvaluation*> BestExitSoFar(const BlockRun& run);

// The `k` most probable classes of sample `sample`, with labels from the
// config when it has them.
void TopK(const ExitEvaluation& exit, int sample, int k,
          const tandem::v1::ModelConfig& config,
          google::protobuf::RepeatedPtrField<tandem::v1::ClassScore>* out);

}  // namespace tandem

#endif  // TANDEM_MODELS_BLOCK_RUNNER_H_
