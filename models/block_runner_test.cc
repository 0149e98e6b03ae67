#include "models/block_runner.h"

#include <torch/torch.h>

#include <cmath>
#include <filesystem>

#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "models/testing/tiny_model.h"

namespace tandem {
namespace {

namespace fs = std::filesystem;
using ::tandem::testing::StatusIs;

class BlockRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ =
        fs::temp_directory_path() / ("tandem_br_" + std::to_string(::getpid()));
    fs::create_directories(root_);
    auto model = ProgressiveModel::Load(testing::WritePackage(root_, {}), {});
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = *std::move(model);
  }
  void TearDown() override { fs::remove_all(root_); }
  fs::path root_;
  std::unique_ptr<ProgressiveModel> model_;
};

TEST_F(BlockRunnerTest, ConfidentExitStopsEarly) {
  const torch::Tensor x = torch::randn({1, 4});
  ASSERT_OK_AND_ASSIGN(BlockRun run,
                       RunBlocksWithExits(*model_, x, 0, 3, {{0, 0.0f}}));
  EXPECT_TRUE(run.exited);
  EXPECT_EQ(run.exit_block, 0);
  EXPECT_EQ(run.blocks_run, 1);
  EXPECT_EQ(run.block_times.size(), 1u);
}

TEST_F(BlockRunnerTest, UnreachableThresholdRunsToTheFinalExit) {
  const torch::Tensor x = torch::randn({1, 4});
  ASSERT_OK_AND_ASSIGN(BlockRun run,
                       RunBlocksWithExits(*model_, x, 0, 3, {{0, 1.01f}}));
  EXPECT_TRUE(run.exited);
  EXPECT_EQ(run.exit_block, 2);
  EXPECT_EQ(run.blocks_run, 3);
  ASSERT_OK_AND_ASSIGN(torch::Tensor direct, model_->RunBlocks(x, 0, 3));
  ASSERT_OK_AND_ASSIGN(ExitEvaluation want, model_->EvaluateExit(2, direct));
  EXPECT_TRUE(torch::allclose(run.exit->probabilities, want.probabilities));
}

TEST_F(BlockRunnerTest, StopsAtTheSplitWithTheBestExitSoFar) {
  const torch::Tensor x = torch::randn({1, 4});
  ASSERT_OK_AND_ASSIGN(BlockRun run,
                       RunBlocksWithExits(*model_, x, 0, 2, {{0, 1.01f}}));
  EXPECT_FALSE(run.exited);
  EXPECT_EQ(run.best_block, 0);
  ASSERT_TRUE(run.exit.has_value());
  EXPECT_EQ(run.output.sizes(), (std::vector<int64_t>{1, 6}));
  // Exits left out of the thresholds are not evaluated.
  ASSERT_OK_AND_ASSIGN(BlockRun no_exits,
                       RunBlocksWithExits(*model_, x, 0, 2, {}));
  EXPECT_FALSE(no_exits.exit.has_value());
}

TEST_F(BlockRunnerTest, TopKIsSortedAndLabelled) {
  ASSERT_OK_AND_ASSIGN(torch::Tensor out,
                       model_->RunBlocks(torch::randn({1, 4}), 0, 3));
  ASSERT_OK_AND_ASSIGN(ExitEvaluation exit, model_->EvaluateExit(2, out));
  tandem::v1::ModelConfig config = model_->config();
  config.add_labels("a");
  config.add_labels("b");
  config.add_labels("c");
  google::protobuf::RepeatedPtrField<tandem::v1::ClassScore> top;
  TopK(exit, 0, 5, config, &top);  // k is capped at the class count.
  ASSERT_EQ(top.size(), 3);
  EXPECT_GE(top[0].probability(), top[1].probability());
  EXPECT_GE(top[1].probability(), top[2].probability());
  EXPECT_EQ(top[0].index(), exit.predicted[0]);
  EXPECT_EQ(top[0].label(), config.labels(top[0].index()));
}

TEST_F(BlockRunnerTest, RejectsBadRanges) {
  EXPECT_THAT(RunBlocksWithExits(*model_, torch::randn({1, 4}), 2, 1, {}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(BlockRunnerTest, NonFiniteConfidenceIsInternalNamingTheExit) {
  const torch::Tensor x = torch::full({1, 4}, NAN);
  // The early exit after block 0 sees it first...
  EXPECT_THAT(RunBlocksWithExits(*model_, x, 0, 3, {{0, 0.5f}}),
              StatusIs(absl::StatusCode::kInternal,
                       ::testing::HasSubstr("exit head after block 0")));
  // ... and with no early exit the final one does: never "no exit".
  EXPECT_THAT(RunBlocksWithExits(*model_, x, 0, 3, {}),
              StatusIs(absl::StatusCode::kInternal,
                       ::testing::HasSubstr("exit head after block 2")));
}

TEST_F(BlockRunnerTest, OverflowingBlocksAreInternal) {
  testing::TinySpec spec;
  spec.name = "overflow";
  spec.block_gain = 1e30f;
  ASSERT_OK_AND_ASSIGN(auto model, ProgressiveModel::Load(
                                       testing::WritePackage(root_, spec), {}));
  const torch::Tensor x = torch::full({1, 4}, 1e10f);  // Finite input.
  EXPECT_THAT(RunBlocksWithExits(*model, x, 0, 3, {}),
              StatusIs(absl::StatusCode::kInternal,
                       ::testing::HasSubstr("non-finite confidence")));
}

TEST_F(BlockRunnerTest, StopsAtABlockBoundaryOnceTheDeadlinePassed) {
  const torch::Tensor x = torch::randn({1, 4});
  EXPECT_THAT(
      RunBlocksWithExits(*model_, x, 1, 3, {}, absl::Now() - absl::Seconds(1)),
      StatusIs(absl::StatusCode::kDeadlineExceeded,
               ::testing::HasSubstr("before block 1")));
  ASSERT_OK_AND_ASSIGN(
      BlockRun run,
      RunBlocksWithExits(*model_, x, 0, 3, {}, absl::Now() + absl::Hours(1)));
  EXPECT_TRUE(run.exited);
}

TEST_F(BlockRunnerTest, ExitsAreReadOnlyThroughTheirAccessors) {
  const torch::Tensor x = torch::randn({1, 4});
  ASSERT_OK_AND_ASSIGN(BlockRun full, RunBlocksWithExits(*model_, x, 0, 3, {}));
  ASSERT_OK_AND_ASSIGN(const ExitEvaluation* answer, AnsweringExit(full));
  EXPECT_EQ(answer->predicted.size(), 1u);
  // A run that stopped at its split answered nothing: asking is an error,
  // not a dereference of an empty optional.
  ASSERT_OK_AND_ASSIGN(BlockRun head, RunBlocksWithExits(*model_, x, 0, 2, {}));
  EXPECT_THAT(AnsweringExit(head), StatusIs(absl::StatusCode::kInternal));
  EXPECT_THAT(BestExitSoFar(head),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  ASSERT_OK_AND_ASSIGN(BlockRun partial,
                       RunBlocksWithExits(*model_, x, 0, 2, {{0, 1.01f}}));
  ASSERT_OK_AND_ASSIGN(const ExitEvaluation* best, BestExitSoFar(partial));
  EXPECT_EQ(best->confidence.size(), 1u);
}

}  // namespace
}  // namespace tandem
