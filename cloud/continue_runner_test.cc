#include "cloud/continue_runner.h"

#include <torch/torch.h>

#include <filesystem>
#include <string>
#include <vector>

#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "models/tensor_codec.h"
#include "models/testing/tiny_model.h"

namespace tandem {
namespace {

namespace fs = std::filesystem;
using ::tandem::testing::IsOk;
using ::tandem::testing::StatusIs;
using ::testing::HasSubstr;

class ContinueRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ =
        fs::temp_directory_path() / ("tandem_cr_" + std::to_string(::getpid()));
    fs::create_directories(root_);
    testing::WritePackage(root_, {});
    auto repo = ModelRepository::Load(root_.string(), {});
    ASSERT_TRUE(repo.ok()) << repo.status();
    ASSERT_OK_AND_ASSIGN(const ProgressiveModel* model, (*repo)->Get("tiny"));
    model_ = model;
    runner_.SetRepository(*std::move(repo));
  }
  void TearDown() override { fs::remove_all(root_); }

  // A request for the input of `block`, computed locally from `x`.
  tandem::v1::ContinueRequest RequestAt(int block, const torch::Tensor& x) {
    tandem::v1::ContinueRequest request;
    request.set_model_name("tiny");
    request.set_id("r1");
    request.set_start_block(block);
    request.set_top_k(2);
    auto input = model_->RunBlocks(x, 0, block);
    EXPECT_TRUE(input.ok());
    EXPECT_TRUE(EncodeTensor(*input, {}, request.add_inputs(),
                             request.add_raw_input_contents())
                    .ok());
    return request;
  }

  fs::path root_;
  const ProgressiveModel* model_ = nullptr;
  ContinueRunner runner_{DecodeLimits{}};
};

TEST_F(ContinueRunnerTest, EverySplitGivesTheLocalAnswer) {
  const torch::Tensor x = torch::randn({1, 4});
  auto local = model_->RunBlocks(x, 0, 3);
  ASSERT_TRUE(local.ok());
  ASSERT_OK_AND_ASSIGN(ExitEvaluation want, model_->EvaluateExit(2, *local));
  for (int k = 0; k < 3; ++k) {
    SCOPED_TRACE(k);
    ASSERT_OK_AND_ASSIGN(
        auto response,
        runner_.Run(RequestAt(k, x), absl::Now(), absl::InfiniteFuture()));
    EXPECT_EQ(response.id(), "r1");
    EXPECT_EQ(response.exit_block(), 2);
    ASSERT_EQ(response.top_k_size(), 2);
    EXPECT_EQ(response.top_k(0).index(), want.predicted[0]);
    EXPECT_NEAR(response.top_k(0).probability(), want.confidence[0], 1e-6);
    EXPECT_GE(response.compute_us(), 0);
  }
}

TEST_F(ContinueRunnerTest, RequestedExitsAnswerEarly) {
  tandem::v1::ContinueRequest request = RequestAt(0, torch::randn({1, 4}));
  (*request.mutable_exit_thresholds())[0] = 0.0f;
  ASSERT_OK_AND_ASSIGN(
      auto response, runner_.Run(request, absl::Now(), absl::InfiniteFuture()));
  EXPECT_EQ(response.exit_block(), 0);
}

TEST_F(ContinueRunnerTest, BadRequestsGetPreciseCodes) {
  const torch::Tensor x = torch::randn({1, 4});
  const absl::Time later = absl::InfiniteFuture();
  auto request = RequestAt(1, x);
  request.set_model_name("nope");
  EXPECT_THAT(runner_.Run(request, absl::Now(), later),
              StatusIs(absl::StatusCode::kNotFound));
  request = RequestAt(1, x);
  request.set_start_block(3);
  EXPECT_THAT(
      runner_.Run(request, absl::Now(), later),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("start_block")));
  request = RequestAt(0, x);  // The input of block 0 sent as block 1's.
  request.set_start_block(1);
  EXPECT_THAT(runner_.Run(request, absl::Now(), later),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("input of block 1")));
  request = RequestAt(1, x);
  request.mutable_raw_input_contents(0)->pop_back();
  EXPECT_THAT(runner_.Run(request, absl::Now(), later),
              StatusIs(absl::StatusCode::kInvalidArgument));
  request = RequestAt(1, x);
  request.add_raw_input_contents();
  EXPECT_THAT(runner_.Run(request, absl::Now(), later),
              StatusIs(absl::StatusCode::kInvalidArgument));
  request = RequestAt(1, torch::randn({2, 4}));
  EXPECT_THAT(
      runner_.Run(request, absl::Now(), later),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("one sample")));
  EXPECT_THAT(
      runner_.Run(RequestAt(1, x), absl::Now(), absl::Now() - absl::Seconds(1)),
      StatusIs(absl::StatusCode::kDeadlineExceeded));
}

TEST_F(ContinueRunnerTest, ProfileReportsMeasuredBlocks) {
  for (int i = 0; i < 3; ++i) {
    ASSERT_THAT(runner_.Run(RequestAt(0, torch::randn({1, 4})), absl::Now(),
                            absl::InfiniteFuture()),
                IsOk());
  }
  ASSERT_OK_AND_ASSIGN(auto profile, runner_.Profile("tiny"));
  ASSERT_EQ(profile.blocks_size(), 3);
  EXPECT_EQ(profile.blocks(0).output_elements(), 6);
  EXPECT_EQ(profile.blocks(2).output_elements(), 5);
  EXPECT_GT(profile.blocks(2).latency_us(), 0);
  EXPECT_EQ(profile.samples(), 3);
}

TEST_F(ContinueRunnerTest, BatchedRowsGetTheirOwnExitsAndAnswers) {
  // Four requests at block 0 in one batch: the first may leave at the exit
  // after block 0 (threshold 0), the others go on to the final exit. Each
  // answer is the one the request gets alone.
  std::vector<tandem::v1::ContinueRequest> requests;
  for (int i = 0; i < 4; ++i) {
    requests.push_back(RequestAt(0, torch::randn({1, 4})));
    requests.back().set_id("r" + std::to_string(i));
  }
  (*requests[0].mutable_exit_thresholds())[0] = 0.0f;
  std::vector<ContinueRunner::Row> rows;
  for (const auto& request : requests)
    rows.push_back({&request, absl::Now(), absl::InfiniteFuture()});
  const auto batched = runner_.RunBatch(rows);
  ASSERT_EQ(batched.size(), 4u);
  for (int i = 0; i < 4; ++i) {
    SCOPED_TRACE(i);
    ASSERT_THAT(batched[i], IsOk());
    ASSERT_OK_AND_ASSIGN(auto alone, runner_.Run(requests[i], absl::Now(),
                                                 absl::InfiniteFuture()));
    EXPECT_EQ(batched[i]->id(), requests[i].id());
    EXPECT_EQ(batched[i]->exit_block(), i == 0 ? 0 : 2);
    EXPECT_EQ(batched[i]->exit_block(), alone.exit_block());
    EXPECT_EQ(batched[i]->top_k(0).index(), alone.top_k(0).index());
    EXPECT_NEAR(batched[i]->confidence(), alone.confidence(), 1e-5);
    EXPECT_EQ(batched[i]->batch_size(), 4);
    EXPECT_EQ(alone.batch_size(), 1);
  }
}

TEST_F(ContinueRunnerTest, ARowThatFailsFailsAlone) {
  std::vector<tandem::v1::ContinueRequest> requests;
  for (int i = 0; i < 4; ++i)
    requests.push_back(RequestAt(1, torch::randn({1, 4})));
  requests[1].mutable_raw_input_contents(0)->pop_back();  // Short tensor.
  std::vector<ContinueRunner::Row> rows;
  for (const auto& request : requests)
    rows.push_back({&request, absl::Now(), absl::InfiniteFuture()});
  rows[2].deadline = absl::Now() - absl::Seconds(1);  // Late.
  const auto results = runner_.RunBatch(rows);
  ASSERT_EQ(results.size(), 4u);
  EXPECT_THAT(results[0], IsOk());
  EXPECT_THAT(results[1].status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(results[2].status(),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  ASSERT_THAT(results[3], IsOk());
  EXPECT_EQ(results[3]->batch_size(), 2);  // The two rows that ran.
}

TEST(ContinueRunnerNotReady, AnswersUnavailable) {
  ContinueRunner runner{DecodeLimits{}};
  tandem::v1::ContinueRequest request;
  request.set_model_name("tiny");
  EXPECT_FALSE(runner.ready());
  EXPECT_THAT(runner.Precheck(request),
              StatusIs(absl::StatusCode::kUnavailable));
}

}  // namespace
}  // namespace tandem
