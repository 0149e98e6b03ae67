// End to end: the SDK talks to a real edge agent over a unix socket, which
// talks to a real cloud server on localhost:0, both serving the trained
// fmnist_branchy package on real Fashion-MNIST test images.
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "cloud/cloud_server.h"
#include "common/subprocess.h"
#include "common/testing/status_matchers.h"
#include "edge/edge_server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "models/fashion_mnist.h"
#include "models/progressive_model.h"
#include "tandem/client.h"

namespace tandem {
namespace {

using ::tandem::testing::IsOk;
using ::tandem::testing::StatusIs;
using ::testing::HasSubstr;

constexpr char kModel[] = "fmnist_branchy";
constexpr int kImages = 12;

std::string Repository() {
  const char* dir = std::getenv("TANDEM_MODEL_REPOSITORY");
  return dir == nullptr ? "model_repository" : dir;
}

class SplitInferenceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto data = ReadFashionMnist(kDefaultFashionMnistDir,
                                 FashionMnistSplit::kTest, 200);
    ASSERT_TRUE(data.ok()) << data.status();
    data_ = new ImageDataset(*std::move(data));
    auto model = ProgressiveModel::Load(Repository() + "/" + kModel, {});
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = model->release();

    tandem::v1::CloudConfig cloud_config;
    cloud_config.set_listen("127.0.0.1:0");
    cloud_config.set_model_repository(Repository());
    cloud_config.mutable_limits()->set_max_message_bytes(1 << 20);
    auto cloud = CloudServer::Start(cloud_config);
    ASSERT_TRUE(cloud.ok()) << cloud.status();
    cloud_ = cloud->release();

    dir_ = new std::string(MakeTempDir("split"));
    tandem::v1::EdgeConfig edge_config;
    edge_config.add_listen("unix:" + *dir_ + "/edge.sock");
    edge_config.set_cloud("127.0.0.1:" + std::to_string(cloud_->port()));
    edge_config.set_model_repository(Repository());
    edge_config.mutable_limits()->set_max_message_bytes(1 << 20);
    tandem::v1::EdgeModelPolicy* policy = edge_config.add_models();
    policy->set_model_name(kModel);
    policy->set_split_point(2);
    auto edge = EdgeServer::Start(edge_config);
    ASSERT_TRUE(edge.ok()) << edge.status();
    edge_ = edge->release();
    auto client = Client::Connect("unix:" + *dir_ + "/edge.sock");
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = client->release();
  }

  static void TearDownTestSuite() {
    delete client_;
    delete edge_;
    delete cloud_;
    delete model_;
    delete data_;
    std::filesystem::remove_all(*dir_);
    delete dir_;
  }

  static InputTensor Image(int i) {
    return InputTensor::Pixels({1, 1, 28, 28}, data_->image(i));
  }

  // The local full-model answer: probabilities of the final exit.
  static torch::Tensor LocalProbabilities(int i) {
    const torch::Tensor x =
        torch::from_blob(const_cast<uint8_t*>(data_->image(i)), {1, 1, 28, 28},
                         torch::kUInt8)
            .to(torch::kFloat32)
            .div(255.0);
    auto out = model_->RunBlocks(x, 0, model_->num_blocks());
    EXPECT_TRUE(out.ok());
    auto exit = model_->EvaluateExit(model_->num_blocks() - 1, *out);
    EXPECT_TRUE(exit.ok());
    return exit->probabilities[0];
  }

  static ImageDataset* data_;
  static ProgressiveModel* model_;
  static CloudServer* cloud_;
  static EdgeServer* edge_;
  static Client* client_;
  static std::string* dir_;
};

ImageDataset* SplitInferenceTest::data_ = nullptr;
ProgressiveModel* SplitInferenceTest::model_ = nullptr;
CloudServer* SplitInferenceTest::cloud_ = nullptr;
EdgeServer* SplitInferenceTest::edge_ = nullptr;
Client* SplitInferenceTest::client_ = nullptr;
std::string* SplitInferenceTest::dir_ = nullptr;

TEST_F(SplitInferenceTest, EverySplitAndEncodingGivesTheLocalAnswer) {
  struct EncodingCase {
    tandem::v1::Encoding encoding;
    float tolerance;  // On probabilities, from the codec's error bound.
  };
  const EncodingCase encodings[] = {{tandem::v1::ENCODING_RAW, 1e-5f},
                                    {tandem::v1::ENCODING_FP16, 5e-3f},
                                    {tandem::v1::ENCODING_AFFINE_UINT8, 5e-2f}};
  const int n = model_->num_blocks();
  for (const EncodingCase& e : encodings) {
    for (int k = 0; k <= n; ++k) {
      for (int i = 0; i < kImages; ++i) {
        SCOPED_TRACE(absl::StrCat(tandem::v1::Encoding_Name(e.encoding),
                                  " split ", k, " image ", i));
        InferOptions options;
        options.split_point = k;
        options.encoding = e.encoding;
        options.disable_early_exits = true;
        options.top_k = 3;
        ASSERT_OK_AND_ASSIGN(InferResult result,
                             client_->Infer(kModel, Image(i), options));
        const torch::Tensor want = LocalProbabilities(i);
        EXPECT_EQ(result.split_point, k);
        EXPECT_EQ(result.exit_block, n - 1);
        EXPECT_EQ(result.answered_by, k == n ? InferResult::Site::kEdge
                                             : InferResult::Site::kCloud);
        EXPECT_EQ(result.bytes_sent > 0, k < n);
        EXPECT_TRUE(result.fallback_reason.empty()) << result.fallback_reason;
        ASSERT_EQ(result.top_k.size(), 3u);
        EXPECT_EQ(result.top_k[0].index, want.argmax().item<int64_t>());
        for (const auto& score : result.top_k) {
          EXPECT_NEAR(score.probability, want[score.index].item<float>(),
                      e.tolerance);
        }
      }
    }
  }
}

TEST_F(SplitInferenceTest, ConfidentEdgeExitNeverContactsTheCloud) {
  // Find test images the first exit is sure of, at the calibrated threshold.
  int edge_answers = 0;
  for (int i = 0; i < 100 && edge_answers < 5; ++i) {
    const int64_t cloud_before = cloud_->continue_requests();
    InferOptions options;
    options.split_point = 2;
    ASSERT_OK_AND_ASSIGN(InferResult result,
                         client_->Infer(kModel, Image(i), options));
    if (result.exit_block < 2) {
      ++edge_answers;
      EXPECT_EQ(result.answered_by, InferResult::Site::kEdge);
      EXPECT_EQ(result.bytes_sent, 0);
      EXPECT_EQ(cloud_->continue_requests(), cloud_before) << "image " << i;
    }
  }
  EXPECT_EQ(edge_answers, 5);
}

TEST_F(SplitInferenceTest, CloudSideExitsStopTheCloudEarly) {
  int early = 0;
  for (int i = 0; i < 50; ++i) {
    InferOptions options;
    options.split_point = 0;  // Everything in the cloud, its exits included.
    ASSERT_OK_AND_ASSIGN(InferResult result,
                         client_->Infer(kModel, Image(i), options));
    EXPECT_EQ(result.answered_by, InferResult::Site::kCloud);
    if (result.exit_block < model_->num_blocks() - 1) ++early;
  }
  EXPECT_GT(early, 10);  // The calibrated first exit lets most images out.
}

TEST_F(SplitInferenceTest, BadRequestsGetPreciseCodesAndServingGoesOn) {
  const InputTensor good = Image(0);
  EXPECT_THAT(client_->Infer("no_such_model", good),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(client_->Infer(
                  kModel, InputTensor::Pixels({1, 1, 27, 27}, data_->image(0))),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("input of block 0")));
  InputTensor wrong_type = good;
  wrong_type.datatype = "INT32";
  EXPECT_THAT(client_->Infer(kModel, wrong_type),
              StatusIs(absl::StatusCode::kInvalidArgument));
  InputTensor truncated = good;
  truncated.data.pop_back();
  EXPECT_THAT(client_->Infer(kModel, truncated),
              StatusIs(absl::StatusCode::kInvalidArgument));
  std::vector<float> big(600 * 1024, 0.0f);  // 2.4 MB, over the 1 MiB limit.
  EXPECT_THAT(
      client_->Infer(kModel, InputTensor::Fp32({1, 600, 1024}, big.data())),
      StatusIs(absl::StatusCode::kResourceExhausted));
  // The camera-sized model takes far longer than 1 ms on these CPUs, so the
  // deadline surely passes while the request is in the agent.
  InferOptions expired;
  expired.deadline = absl::Milliseconds(1);
  std::vector<float> camera_input(3 * 224 * 224, 0.5f);
  EXPECT_THAT(
      client_->Infer("camera_branchy",
                     InputTensor::Fp32({1, 3, 224, 224}, camera_input.data()),
                     expired),
      StatusIs(absl::StatusCode::kDeadlineExceeded));
  InferOptions bad_split;
  bad_split.split_point = 9;
  EXPECT_THAT(
      client_->Infer(kModel, good, bad_split),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("split_point")));
  EXPECT_THAT(client_->Infer(kModel, good), IsOk());
}

TEST_F(SplitInferenceTest, ListModelsAndPlanDescribeTheAgent) {
  ASSERT_OK_AND_ASSIGN(std::vector<ModelInfo> models, client_->ListModels());
  bool found = false;
  for (const ModelInfo& m : models) {
    if (m.name != kModel) continue;
    found = true;
    EXPECT_EQ(m.num_blocks, model_->num_blocks());
    EXPECT_EQ(m.input_shape, (std::vector<int64_t>{-1, 1, 28, 28}));
  }
  EXPECT_TRUE(found);
  ASSERT_OK_AND_ASSIGN(tandem::v1::Plan plan, client_->GetPlan(kModel));
  EXPECT_EQ(plan.split_point(), 2);
}

}  // namespace
}  // namespace tandem
