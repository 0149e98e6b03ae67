// Checks the trained package the build produced against its own config's
// claims, on the real Fashion-MNIST test set.
#include <torch/torch.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"
#include "models/fashion_mnist.h"
#include "models/progressive_model.h"

namespace tandem {
namespace {

std::string RepositoryDir() {
  const char* dir = std::getenv("TANDEM_MODEL_REPOSITORY");
  return dir == nullptr ? "model_repository" : dir;
}

torch::Tensor Images(const ImageDataset& data, int64_t begin, int64_t end) {
  return torch::from_blob(const_cast<uint8_t*>(data.image(begin)),
                          {end - begin, 1, data.rows, data.cols}, torch::kUInt8)
      .to(torch::kFloat32)
      .div(255.0);
}

class TrainedModelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto model =
        ProgressiveModel::Load(RepositoryDir() + "/fmnist_branchy", {});
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = model->release();
    auto data =
        ReadFashionMnist(kDefaultFashionMnistDir, FashionMnistSplit::kTest);
    ASSERT_TRUE(data.ok()) << data.status();
    data_ = new ImageDataset(*std::move(data));
  }
  static void TearDownTestSuite() {
    delete model_;
    delete data_;
  }
  static ProgressiveModel* model_;
  static ImageDataset* data_;
};

ProgressiveModel* TrainedModelTest::model_ = nullptr;
ImageDataset* TrainedModelTest::data_ = nullptr;

TEST_F(TrainedModelTest, TestSetIsTheRealOne) {
  ASSERT_EQ(data_->count, 10000);
  ASSERT_EQ(data_->rows, 28);
  std::vector<int> per_class(10, 0);
  for (uint8_t label : data_->labels) {
    ASSERT_LT(label, 10);
    ++per_class[label];
  }
  for (int n : per_class) EXPECT_EQ(n, 1000);
}

// Per-exit accuracy (each head alone) and the cascade at the calibrated
// thresholds must reach what config.pbtxt claims. The claims were measured
// by the Python trainer on the same data; LibTorch may round differently,
// which flips at most a handful of the 10,000 answers: allow 0.2 points.
TEST_F(TrainedModelTest, AccuracyMeetsTheConfigsClaims) {
  const auto& config = model_->config();
  ASSERT_TRUE(config.trained());
  const int exits = config.exits_size();
  std::vector<int64_t> correct_alone(exits, 0), exited(exits, 0),
      cascade_correct(exits, 0);
  constexpr int64_t kBatch = 500;
  for (int64_t begin = 0; begin < data_->count; begin += kBatch) {
    const int64_t end = std::min(begin + kBatch, data_->count);
    torch::Tensor x = Images(*data_, begin, end);
    std::vector<bool> done(end - begin, false);
    int block = 0;
    for (int e = 0; e < exits; ++e) {
      const int exit_block = config.exits(e).block();
      ASSERT_OK_AND_ASSIGN(x, model_->RunBlocks(x, block, exit_block + 1));
      block = exit_block + 1;
      ASSERT_OK_AND_ASSIGN(ExitEvaluation eval,
                           model_->EvaluateExit(exit_block, x));
      for (int64_t i = 0; i < end - begin; ++i) {
        const bool right = eval.predicted[i] == data_->labels[begin + i];
        correct_alone[e] += right;
        const bool last = e == exits - 1;
        if (!done[i] &&
            (last || eval.confidence[i] >= config.exits(e).threshold())) {
          done[i] = true;
          ++exited[e];
          cascade_correct[e] += right;
        }
      }
    }
  }
  const double n = static_cast<double>(data_->count);
  int64_t cascade_total = 0;
  for (int e = 0; e < exits; ++e) {
    const double alone = correct_alone[e] / n;
    std::printf(
        "exit after block %d: alone %.4f (claimed %.4f), cascade exit rate "
        "%.4f\n",
        config.exits(e).block(), alone, config.exits(e).test_accuracy(),
        exited[e] / n);
    EXPECT_GE(alone, config.exits(e).test_accuracy() - 0.002) << "exit " << e;
    if (e < config.cascade_test_exit_rates_size()) {
      EXPECT_NEAR(exited[e] / n, config.cascade_test_exit_rates(e), 0.003)
          << "exit " << e;
    }
    cascade_total += cascade_correct[e];
  }
  std::printf("cascade accuracy %.4f (claimed %.4f)\n", cascade_total / n,
              config.cascade_test_accuracy());
  EXPECT_GE(cascade_total / n, config.cascade_test_accuracy() - 0.002);
  // The floor for the final exit, independent of what the config says.
  EXPECT_GE(correct_alone[exits - 1] / n, 0.91);
}

TEST_F(TrainedModelTest, BlockByBlockEqualsTheFullForwardPass) {
  const torch::Tensor x = Images(*data_, 0, 64);
  ASSERT_OK_AND_ASSIGN(torch::Tensor logits, model_->Forward(x));
  const torch::Tensor want = torch::softmax(logits, 1);
  const int n = model_->num_blocks();
  for (int k = 0; k <= n; ++k) {
    SCOPED_TRACE("split at block " + std::to_string(k));
    ASSERT_OK_AND_ASSIGN(torch::Tensor head, model_->RunBlocks(x, 0, k));
    ASSERT_OK_AND_ASSIGN(torch::Tensor tail, model_->RunBlocks(head, k, n));
    ASSERT_OK_AND_ASSIGN(ExitEvaluation final_exit,
                         model_->EvaluateExit(n - 1, tail));
    EXPECT_TRUE(torch::allclose(final_exit.probabilities, want, /*rtol=*/1e-5,
                                /*atol=*/1e-6));
  }
}

TEST(CameraModel, LoadsWithCameraSizedTensors) {
  ASSERT_OK_AND_ASSIGN(
      auto model,
      ProgressiveModel::Load(RepositoryDir() + "/camera_branchy", {}));
  EXPECT_FALSE(model->config().trained());
  EXPECT_EQ(model->BlockInputShape(0), (std::vector<int64_t>{3, 224, 224}));
  EXPECT_GE(model->exit_blocks().size(), 3u);
  ASSERT_OK_AND_ASSIGN(
      torch::Tensor out,
      model->RunBlocks(torch::rand({1, 3, 224, 224}), 0, model->num_blocks()));
  ASSERT_OK_AND_ASSIGN(ExitEvaluation exit,
                       model->EvaluateExit(model->num_blocks() - 1, out));
  EXPECT_EQ(exit.probabilities.size(1), model->num_classes());
}

}  // namespace
}  // namespace tandem
