#include "tools/infer_command.h"

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "grpcpp/server_context.h"
#include "gtest/gtest.h"
#include "models/fashion_mnist.h"
#include "tandem/v1/edge_service.grpc.pb.h"

namespace tandem {
namespace {

using ::tandem::testing::IsOk;
using ::tandem::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int kCount = 20;
constexpr const char* kLabels[] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

// Stands in for the agent. It knows the Fashion-MNIST labels, so its answers
// are right for even test images and wrong for odd ones (accuracy 0.5); every
// fourth answer comes from the edge. Thread-safe.
class LabelledFakeAgent final : public tandem::v1::EdgeService::Service {
 public:
  explicit LabelledFakeAgent(std::vector<uint8_t> labels)
      : labels_(std::move(labels)) {}

  grpc::Status Infer(grpc::ServerContext* context,
                     const tandem::v1::InferRequest* request,
                     tandem::v1::InferResponse* response) override {
    absl::MutexLock lock(&mu_);
    requests_.push_back(*request);
    // Requests that are not test images (an image file) get class 0.
    int index = -1;
    absl::string_view id = request->id();
    if (!absl::ConsumePrefix(&id, "fashion-mnist-test-") ||
        !absl::SimpleAtoi(id, &index) || index < 0 ||
        index >= static_cast<int>(labels_.size())) {
      index = -1;
    }
    if (index >= 0 && index == failing_index_) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "cloud is down");
    }
    int answer = 0;
    if (index >= 0) {
      answer = index % 2 == 0 ? labels_[index] : (labels_[index] + 1) % 10;
    }
    tandem::v1::ClassScore* score = response->add_top_k();
    score->set_index(answer);
    score->set_label(kLabels[answer]);
    score->set_probability(0.9f);
    const bool on_edge = index % 4 == 0;  // -1 % 4 != 0: the cloud.
    response->set_answered_by(on_edge ? tandem::v1::SITE_EDGE
                                      : tandem::v1::SITE_CLOUD);
    response->set_exit_block(on_edge ? 0 : 2);
    response->set_split_point(
        request->has_split_point() ? request->split_point() : 1);
    response->set_bytes_sent(on_edge ? 0 : 1000);
    response->mutable_timings()->set_total_us(1500);
    response->set_id(request->id());
    return grpc::Status::OK;
  }

  grpc::Status ListModels(grpc::ServerContext* context,
                          const tandem::v1::ListModelsRequest* request,
                          tandem::v1::ListModelsResponse* response) override {
    tandem::v1::ModelSummary* model = response->add_models();
    model->set_name("fmnist_branchy");
    model->set_version("1");
    model->set_num_blocks(3);
    for (int64_t dim : {1, 1, 28, 28}) model->add_input_shape(dim);
    model->set_input_datatype("FP32");
    return grpc::Status::OK;
  }

  void FailIndex(int index) {
    absl::MutexLock lock(&mu_);
    failing_index_ = index;
  }
  std::vector<tandem::v1::InferRequest> requests() {
    absl::MutexLock lock(&mu_);
    return requests_;
  }

 private:
  const std::vector<uint8_t> labels_;
  absl::Mutex mu_;
  int failing_index_ ABSL_GUARDED_BY(mu_) = -1;
  std::vector<tandem::v1::InferRequest> requests_ ABSL_GUARDED_BY(mu_);
};

class InferCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<ImageDataset> dataset = ReadFashionMnist(
        kDefaultFashionMnistDir, FashionMnistSplit::kTest, kCount);
    if (absl::IsNotFound(dataset.status())) {
      GTEST_SKIP() << "no Fashion-MNIST: " << dataset.status();
    }
    ASSERT_THAT(dataset, IsOk());
    dataset_ = *std::move(dataset);
    agent_ = std::make_unique<LabelledFakeAgent>(dataset_.labels);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(agent_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_OK_AND_ASSIGN(client_,
                         Client::Connect(absl::StrCat("127.0.0.1:", port)));
  }

  void TearDown() override {
    client_.reset();
    if (server_ != nullptr) server_->Shutdown();
  }

  static InferCommandOptions FashionMnistOptions() {
    InferCommandOptions options;
    options.model = "fmnist_branchy";
    options.fashion_mnist_count = kCount;
    options.fashion_mnist_dir = kDefaultFashionMnistDir;
    options.json = true;
    return options;
  }

  ImageDataset dataset_;
  std::unique_ptr<LabelledFakeAgent> agent_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<Client> client_;
  std::ostringstream out_;
  std::ostringstream err_;
};

TEST_F(InferCommandTest, FashionMnistJsonSummary) {
  InferCommandOptions options = FashionMnistOptions();
  options.infer.split_point = 1;
  options.infer.encoding = tandem::v1::ENCODING_AFFINE_UINT8;
  ASSERT_THAT(RunInferCommand(*client_, options, out_, err_), IsOk());

  const std::string json = out_.str();
  EXPECT_THAT(json, HasSubstr("{\"model\":\"fmnist_branchy\",\"count\":20,"
                              "\"accuracy\":0.5,"));
  EXPECT_THAT(json, HasSubstr("\"bytes_per_request\":750,"
                              "\"edge_share\":0.25,\"errors\":0,"));
  EXPECT_THAT(json, HasSubstr("\"total\":1.5}"));
  EXPECT_EQ(json.back(), '\n');
  EXPECT_EQ(json.find('\n'), json.size() - 1);  // One object, one line.
  EXPECT_THAT(err_.str(), HasSubstr("infer: 2/20 (10%), 0 failed"));
  EXPECT_THAT(err_.str(), HasSubstr("infer: 20/20 (100%), 0 failed"));

  const std::vector<tandem::v1::InferRequest> requests = agent_->requests();
  ASSERT_EQ(requests.size(), static_cast<size_t>(kCount));
  for (int i = 0; i < kCount; ++i) {
    const tandem::v1::InferRequest& request = requests[i];
    EXPECT_EQ(request.id(), absl::StrCat("fashion-mnist-test-", i));
    EXPECT_EQ(request.split_point(), 1);
    EXPECT_EQ(request.encoding(), tandem::v1::ENCODING_AFFINE_UINT8);
    ASSERT_EQ(request.inputs_size(), 1);
    EXPECT_THAT(request.inputs(0).shape(), ElementsAre(1, 1, 28, 28));
    EXPECT_EQ(request.inputs(0).encoding(), tandem::v1::ENCODING_AFFINE_UINT8);
    EXPECT_EQ(
        request.raw_input_contents(0),
        std::string(reinterpret_cast<const char*>(dataset_.image(i)), 28 * 28));
  }
}

TEST_F(InferCommandTest, FashionMnistText) {
  InferCommandOptions options = FashionMnistOptions();
  options.json = false;
  ASSERT_THAT(RunInferCommand(*client_, options, out_, err_), IsOk());
  EXPECT_THAT(out_.str(), HasSubstr("requests       20 (0 failed)"));
  EXPECT_THAT(out_.str(), HasSubstr("accuracy       50.00%"));
  EXPECT_THAT(out_.str(), HasSubstr("on the edge    25.0%"));
}

TEST_F(InferCommandTest, FailedRequestsAreCountedAndFailTheRun) {
  agent_->FailIndex(3);
  EXPECT_THAT(RunInferCommand(*client_, FashionMnistOptions(), out_, err_),
              StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr("1 of 20 requests failed")));
  EXPECT_THAT(out_.str(), HasSubstr("\"count\":20,"));
  EXPECT_THAT(out_.str(), HasSubstr("\"errors\":1,"));
  EXPECT_THAT(err_.str(), HasSubstr("request 3 failed: UNAVAILABLE"));
}

TEST_F(InferCommandTest, ImageFile) {
  const std::string path = absl::StrCat(
      ::testing::TempDir(), "/infer_command_test_", getpid(), ".pgm");
  std::ofstream(path, std::ios::binary) << "P5 56 56 255\n"
                                        << std::string(56 * 56, '\x80');
  absl::Cleanup remove = [&] { std::remove(path.c_str()); };
  InferCommandOptions options;
  options.model = "fmnist_branchy";
  options.image = path;
  options.invert = true;
  ASSERT_THAT(RunInferCommand(*client_, options, out_, err_), IsOk());
  EXPECT_THAT(out_.str(), HasSubstr("1. T-shirt/top"));
  EXPECT_THAT(out_.str(), HasSubstr("on the cloud"));
  const std::vector<tandem::v1::InferRequest> requests = agent_->requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_THAT(requests[0].inputs(0).shape(), ElementsAre(1, 1, 28, 28));
  EXPECT_EQ(requests[0].raw_input_contents(0), std::string(28 * 28, '\x7f'));
}

TEST_F(InferCommandTest, UnreadableImageIsNotFound) {
  InferCommandOptions options;
  options.model = "fmnist_branchy";
  options.image = "/nonexistent/picture.png";
  EXPECT_THAT(RunInferCommand(*client_, options, out_, err_),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(InferCommandTest, UnknownModelIsNotFound) {
  InferCommandOptions options = FashionMnistOptions();
  options.model = "resnet";
  EXPECT_THAT(RunInferCommand(*client_, options, out_, err_),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("serves: fmnist_branchy:1")));
}

TEST_F(InferCommandTest, NeedsExactlyOneSource) {
  InferCommandOptions options = FashionMnistOptions();
  options.image = "shoe.png";
  EXPECT_THAT(RunInferCommand(*client_, options, out_, err_),
              StatusIs(absl::StatusCode::kInvalidArgument));
  options.image.clear();
  options.fashion_mnist_count = 0;
  EXPECT_THAT(RunInferCommand(*client_, options, out_, err_),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(GeometryFromInputShapeTest, AcceptsImageShapes) {
  ASSERT_OK_AND_ASSIGN(ModelInputGeometry nchw,
                       GeometryFromInputShape({1, 3, 224, 224}));
  EXPECT_EQ(nchw.channels, 3);
  EXPECT_EQ(nchw.height, 224);
  EXPECT_EQ(nchw.width, 224);
  ASSERT_OK_AND_ASSIGN(ModelInputGeometry chw,
                       GeometryFromInputShape({1, 28, 28}));
  EXPECT_EQ(chw.channels, 1);
  EXPECT_EQ(chw.height, 28);
  ASSERT_OK_AND_ASSIGN(ModelInputGeometry hw, GeometryFromInputShape({5, 7}));
  EXPECT_EQ(hw.channels, 1);
  EXPECT_EQ(hw.width, 7);
}

TEST(GeometryFromInputShapeTest, RejectsOthers) {
  for (const std::vector<int64_t>& shape :
       std::vector<std::vector<int64_t>>{{},
                                         {784},
                                         {1, 1, 1, 28, 28},
                                         {1, 0, 28, 28},
                                         {1, 2, 28, 28},
                                         {1, 1, -1, 28}}) {
    EXPECT_THAT(GeometryFromInputShape(shape),
                StatusIs(absl::StatusCode::kInvalidArgument));
  }
}

TEST(ParseEncodingNameTest, Names) {
  EXPECT_THAT(ParseEncodingName("raw"), IsOk());
  ASSERT_OK_AND_ASSIGN(tandem::v1::Encoding fp16, ParseEncodingName("FP16"));
  EXPECT_EQ(fp16, tandem::v1::ENCODING_FP16);
  ASSERT_OK_AND_ASSIGN(tandem::v1::Encoding int8, ParseEncodingName("int8"));
  EXPECT_EQ(int8, tandem::v1::ENCODING_AFFINE_UINT8);
  EXPECT_THAT(ParseEncodingName("bf16"),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace tandem
