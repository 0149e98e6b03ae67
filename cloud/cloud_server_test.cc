// The real cloud server on localhost:0 with a tiny model, driven by a plain
// gRPC stub.
#include "cloud/cloud_server.h"

#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <thread>
#include <vector>

#include "cloud/cloud_service.h"
#include "common/grpc_status.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/health_check_service_interface.h"
#include "gtest/gtest.h"
#include "health.grpc.pb.h"
#include "models/tensor_codec.h"
#include "models/testing/tiny_model.h"
#include "tandem/v1/cloud_service.grpc.pb.h"

namespace tandem {
namespace {

namespace fs = std::filesystem;
using ::tandem::testing::IsOk;
using ::tandem::testing::StatusIs;
using tandem::v1::ContinueRequest;
using tandem::v1::ContinueResponse;

class CloudServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new fs::path(fs::temp_directory_path() /
                         ("tandem_cs_" + std::to_string(::getpid())));
    fs::create_directories(*root_);
    testing::WritePackage(*root_, {});
    tandem::v1::CloudConfig config;
    config.set_listen("127.0.0.1:0");
    config.set_model_repository(root_->string());
    config.mutable_limits()->set_max_message_bytes(1 << 20);
    auto server = CloudServer::Start(config);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = server->release();
    channel_ = new std::shared_ptr<grpc::Channel>(
        grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                            grpc::InsecureChannelCredentials()));
  }
  static void TearDownTestSuite() {
    delete channel_;
    delete server_;
    fs::remove_all(*root_);
    delete root_;
  }

  static ContinueRequest Request(int64_t features = 4) {
    ContinueRequest request;
    request.set_model_name("tiny");
    request.set_id("a");
    EXPECT_TRUE(EncodeTensor(torch::randn({1, features}), {},
                             request.add_inputs(),
                             request.add_raw_input_contents())
                    .ok());
    return request;
  }

  absl::StatusOr<ContinueResponse> Call(
      const ContinueRequest& request,
      absl::Duration timeout = absl::Seconds(10)) {
    auto stub = tandem::v1::CloudService::NewStub(*channel_);
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    ContinueResponse response;
    const absl::Status status =
        FromGrpcStatus(stub->Continue(&context, request, &response));
    if (!status.ok()) return status;
    return response;
  }

  static fs::path* root_;
  static CloudServer* server_;
  static std::shared_ptr<grpc::Channel>* channel_;
};

fs::path* CloudServerTest::root_ = nullptr;
CloudServer* CloudServerTest::server_ = nullptr;
std::shared_ptr<grpc::Channel>* CloudServerTest::channel_ = nullptr;

TEST_F(CloudServerTest, HealthIsServingUnderEveryName) {
  auto stub = grpc::health::v1::Health::NewStub(*channel_);
  for (const char* service :
       {"", "liveness", "readiness", "tandem.v1.CloudService"}) {
    grpc::ClientContext context;
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(service);
    grpc::health::v1::HealthCheckResponse response;
    ASSERT_TRUE(stub->Check(&context, request, &response).ok()) << service;
    EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING)
        << service;
  }
}

TEST_F(CloudServerTest, ContinueAnswersAndBadRequestsGetTheirCodes) {
  ASSERT_OK_AND_ASSIGN(ContinueResponse response, Call(Request()));
  EXPECT_EQ(response.exit_block(), 2);
  EXPECT_EQ(response.id(), "a");

  ContinueRequest unknown = Request();
  unknown.set_model_name("nope");
  EXPECT_THAT(Call(unknown), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(Call(Request(5)), StatusIs(absl::StatusCode::kInvalidArgument));
  ContinueRequest bad_type = Request();
  bad_type.mutable_inputs(0)->set_datatype("FP8");
  EXPECT_THAT(Call(bad_type), StatusIs(absl::StatusCode::kInvalidArgument));
  ContinueRequest oversize = Request();
  oversize.mutable_raw_input_contents(0)->resize(2 << 20);
  EXPECT_THAT(Call(oversize), StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_THAT(Call(Request(), -absl::Seconds(1)),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  // Still serving after all of that.
  EXPECT_THAT(Call(Request()), IsOk());
}

TEST_F(CloudServerTest, StreamAnswersEveryRequestWithItsOwnStatus) {
  auto stub = tandem::v1::CloudService::NewStub(*channel_);
  grpc::ClientContext context;
  auto stream = stub->ContinueStream(&context);
  constexpr int kRequests = 20;
  for (int i = 0; i < kRequests; ++i) {
    ContinueRequest request = Request();
    request.set_id(std::to_string(i));
    if (i % 5 == 4) request.set_model_name("nope");
    // Expires before a worker can take it: the server must drop it.
    if (i % 5 == 2) request.set_deadline_remaining_us(1);
    ASSERT_TRUE(stream->Write(request));
  }
  stream->WritesDone();
  std::set<std::string> ids;
  int not_found = 0, expired = 0;
  ContinueResponse response;
  while (stream->Read(&response)) {
    ids.insert(response.id());
    if (response.status_code() == grpc::StatusCode::NOT_FOUND) ++not_found;
    if (response.status_code() == grpc::StatusCode::DEADLINE_EXCEEDED)
      ++expired;
    if (response.status_code() == 0) {
      EXPECT_EQ(response.exit_block(), 2);
    }
  }
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(ids.size(), static_cast<size_t>(kRequests));
  EXPECT_EQ(not_found, kRequests / 5);
  EXPECT_EQ(expired, kRequests / 5);
}

TEST_F(CloudServerTest, AStreamWhoseAnswersAreNotReadIsNotReadFromEither) {
  // A client that does not read: once its receive window is full (a fixed
  // 64 KiB here) the server's writes wait, its backlog fills, and it stops
  // reading the requests.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  auto stub = tandem::v1::CloudService::NewStub(
      grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(server_->port()),
                                grpc::InsecureChannelCredentials(), args));
  grpc::ClientContext context;
  auto stream = stub->ContinueStream(&context);
  const int64_t before = server_->continue_requests();
  constexpr int kRequests = 5000;
  std::thread writer([&] {
    for (int i = 0; i < kRequests; ++i) {
      ContinueRequest request = Request();
      request.set_id(std::to_string(i));
      if (!stream->Write(request)) return;
    }
    stream->WritesDone();
  });
  // The count of requests read settles below what was sent.
  int64_t read = -1;
  for (int i = 0; i < 100; ++i) {
    absl::SleepFor(absl::Milliseconds(200));
    const int64_t now = server_->continue_requests() - before;
    if (now == read) break;
    read = now;
  }
  EXPECT_LT(read, kRequests);
  // Reading the answers lets the rest in, and every request is answered.
  int answered = 0;
  ContinueResponse response;
  while (stream->Read(&response)) {
    EXPECT_EQ(response.status_code(), 0) << response.status_message();
    ++answered;
  }
  writer.join();
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(answered, kRequests);
}

TEST_F(CloudServerTest, ProbeEchoesSizes) {
  auto stub = tandem::v1::CloudService::NewStub(*channel_);
  grpc::ClientContext context;
  tandem::v1::ProbeRequest request;
  request.mutable_payload()->assign(1000, 'x');
  request.set_response_bytes(300);
  tandem::v1::ProbeResponse response;
  ASSERT_TRUE(stub->Probe(&context, request, &response).ok());
  EXPECT_EQ(response.received_bytes(), 1000);
  EXPECT_EQ(response.payload().size(), 300u);
}

TEST_F(CloudServerTest, GetProfileReportsBlocks) {
  ASSERT_THAT(Call(Request()), IsOk());
  auto stub = tandem::v1::CloudService::NewStub(*channel_);
  grpc::ClientContext context;
  tandem::v1::GetProfileRequest request;
  request.set_model_name("tiny");
  tandem::v1::GetProfileResponse response;
  ASSERT_TRUE(stub->GetProfile(&context, request, &response).ok());
  EXPECT_EQ(response.profile().blocks_size(), 3);
  EXPECT_GT(response.profile().blocks(0).latency_us(), 0);
}

// A server that batches: one instance, batches of up to 8 gathered for up
// to 500 ms.
class BatchingServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("tandem_csb_" + std::to_string(::getpid()));
    fs::create_directories(root_);
    testing::WritePackage(root_, {});
    config_.set_listen("127.0.0.1:0");
    config_.set_model_repository(root_.string());
    config_.set_worker_threads(1);
    config_.set_max_batch_size(8);
    config_.mutable_dynamic_batching()->set_max_queue_delay_microseconds(
        500000);
  }
  void TearDown() override {
    server_.reset();
    fs::remove_all(root_);
  }

  // A Continue call of the tiny model to the running server: its code.
  grpc::StatusCode Call(const std::string& model, const std::string& version,
                        int start_block = 0) {
    if (channel_ == nullptr) {
      channel_ =
          grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                              grpc::InsecureChannelCredentials());
    }
    ContinueRequest r;
    r.set_model_name(model);
    r.set_model_version(version);
    r.set_start_block(start_block);
    EXPECT_TRUE(EncodeTensor(torch::randn({1, 4}), {}, r.add_inputs(),
                             r.add_raw_input_contents())
                    .ok());
    auto stub = tandem::v1::CloudService::NewStub(channel_);
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    ContinueResponse response;
    return stub->Continue(&context, r, &response).error_code();
  }

  fs::path root_;
  tandem::v1::CloudConfig config_;
  std::unique_ptr<CloudServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(BatchingServerTest, UnaryCallsAndStreamMessagesShareABatch) {
  ASSERT_OK_AND_ASSIGN(server_, CloudServer::Start(config_));
  auto channel =
      grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                          grpc::InsecureChannelCredentials());
  auto request = [](const std::string& id, float threshold) {
    ContinueRequest r;
    r.set_model_name("tiny");
    r.set_id(id);
    // Different exit thresholds do not keep requests apart.
    (*r.mutable_exit_thresholds())[0] = threshold;
    EXPECT_TRUE(EncodeTensor(torch::randn({1, 4}), {}, r.add_inputs(),
                             r.add_raw_input_contents())
                    .ok());
    return r;
  };
  constexpr int kUnary = 3, kStream = 3;
  std::vector<int> unary_batch(kUnary, 0);
  std::vector<std::thread> callers;
  for (int i = 0; i < kUnary; ++i) {
    callers.emplace_back([&, i] {
      auto stub = tandem::v1::CloudService::NewStub(channel);
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
      ContinueResponse response;
      ASSERT_TRUE(stub->Continue(&context,
                                 request("u" + std::to_string(i), 0.5f * i),
                                 &response)
                      .ok());
      unary_batch[i] = response.batch_size();
    });
  }
  auto stub = tandem::v1::CloudService::NewStub(channel);
  grpc::ClientContext context;
  auto stream = stub->ContinueStream(&context);
  for (int i = 0; i < kStream; ++i)
    ASSERT_TRUE(stream->Write(request("s" + std::to_string(i), 1.0f)));
  stream->WritesDone();
  std::vector<int> stream_batch;
  ContinueResponse response;
  while (stream->Read(&response)) {
    EXPECT_EQ(response.status_code(), 0) << response.status_message();
    stream_batch.push_back(response.batch_size());
  }
  EXPECT_TRUE(stream->Finish().ok());
  for (std::thread& t : callers) t.join();
  EXPECT_EQ(stream_batch, std::vector<int>(kStream, kUnary + kStream));
  EXPECT_EQ(unary_batch, std::vector<int>(kUnary, kUnary + kStream));
}

// The value of the sample line of `text` that starts with `prefix`; -1 when
// there is none.
double Sample(const std::string& text, const std::string& prefix) {
  size_t at = text.find("\n" + prefix);
  if (at == std::string::npos) return -1;
  const size_t end = text.find('\n', at + 1);
  const std::string line = text.substr(at + 1, end - at - 1);
  return std::stod(line.substr(line.rfind(' ') + 1));
}

TEST_F(BatchingServerTest, MetricsCountRequestsBatchesAndFailures) {
  ASSERT_OK_AND_ASSIGN(server_, CloudServer::Start(config_));
  auto call = [&](const std::string& model, int start_block) {
    return Call(model, "", start_block);
  };
  constexpr int kBatched = 4;
  std::vector<std::thread> callers;
  for (int i = 0; i < kBatched; ++i) {
    callers.emplace_back([&] { EXPECT_EQ(call("tiny", 0), grpc::OK); });
  }
  for (std::thread& t : callers) t.join();
  EXPECT_EQ(call("nope", 0), grpc::NOT_FOUND);
  EXPECT_EQ(call("tiny", 99), grpc::INVALID_ARGUMENT);

  const std::string text = server_->metrics().Render();
  const std::string key = "{model=\"tiny\",version=\"1\",start_block=\"0\"}";
  EXPECT_EQ(Sample(text, "tandem_cloud_request_success" + key), kBatched)
      << text;
  EXPECT_EQ(Sample(text, "tandem_cloud_exec_count" + key), 1);
  EXPECT_EQ(Sample(text, "tandem_cloud_inference_count" + key), kBatched);
  EXPECT_EQ(Sample(text, "tandem_cloud_batch_size_count" + key), 1);
  EXPECT_EQ(Sample(text, "tandem_cloud_batch_size_sum" + key), kBatched);
  EXPECT_EQ(Sample(text,
                   "tandem_cloud_batch_size_bucket{model=\"tiny\","
                   "version=\"1\",start_block=\"0\",le=\"2\"}"),
            0);
  EXPECT_EQ(Sample(text,
                   "tandem_cloud_batch_size_bucket{model=\"tiny\","
                   "version=\"1\",start_block=\"0\",le=\"4\"}"),
            1);
  // The batch waited for the 500 ms queue delay: its oldest request at
  // least that long.
  EXPECT_GE(Sample(text, "tandem_cloud_queue_duration_us" + key), 400000);
  EXPECT_GT(Sample(text, "tandem_cloud_compute_infer_duration_us" + key), 0);
  // Refused requests: an unknown model mints no series of its own, a bad
  // block of a known model keeps the model but not the block.
  EXPECT_EQ(Sample(text,
                   "tandem_cloud_request_failure{model=\"\",version="
                   "\"\",start_block=\"\",code=\"NOT_FOUND\"}"),
            1);
  EXPECT_EQ(Sample(text,
                   "tandem_cloud_request_failure{model=\"tiny\","
                   "version=\"1\",start_block=\"\",code=\""
                   "INVALID_ARGUMENT\"}"),
            1);
  EXPECT_EQ(text.find("nope"), std::string::npos);
  EXPECT_GT(Sample(text, "process_resident_memory_bytes "), 0);
}

TEST_F(BatchingServerTest, ReloadSwapsVersionsWithoutDroppingQueuedWork) {
  ASSERT_OK_AND_ASSIGN(server_, CloudServer::Start(config_));
  auto call = [&](const std::string& version) { return Call("tiny", version); };
  auto channel = channel_ =
      grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                          grpc::InsecureChannelCredentials());
  auto health = [&](const std::string& service) {
    auto stub = grpc::health::v1::Health::NewStub(channel);
    grpc::ClientContext context;
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(service);
    grpc::health::v1::HealthCheckResponse response;
    grpc::Status status = stub->Check(&context, request, &response);
    return status.ok() &&
           response.status() == grpc::health::v1::HealthCheckResponse::SERVING;
  };
  auto list = [&] {
    auto stub = tandem::v1::CloudService::NewStub(channel);
    grpc::ClientContext context;
    tandem::v1::ListCloudModelsResponse response;
    EXPECT_TRUE(stub->ListModels(&context, tandem::v1::ListCloudModelsRequest(),
                                 &response)
                    .ok());
    return response;
  };
  EXPECT_TRUE(health("model/tiny"));
  EXPECT_TRUE(health("model/tiny/1"));

  // A request for version 1 waits in the batcher (500 ms queue delay) while
  // version 2 replaces it (the default policy keeps the newest only).
  std::thread queued([&] { EXPECT_EQ(call("1"), grpc::OK); });
  absl::SleepFor(absl::Milliseconds(100));
  fs::copy(root_ / "tiny" / "1", root_ / "tiny" / "2",
           fs::copy_options::recursive);
  ASSERT_OK(server_->ReloadModels());
  queued.join();

  EXPECT_EQ(call("1"), grpc::NOT_FOUND);
  EXPECT_EQ(call("2"), grpc::OK);
  EXPECT_EQ(call(""), grpc::OK);
  EXPECT_TRUE(health("model/tiny"));
  EXPECT_FALSE(health("model/tiny/1"));
  EXPECT_TRUE(health("model/tiny/2"));
  tandem::v1::ListCloudModelsResponse models = list();
  ASSERT_EQ(models.models_size(), 1);
  EXPECT_EQ(models.models(0).version(), "2");
  EXPECT_TRUE(models.models(0).ready());
  const std::string text = server_->metrics().Render();
  EXPECT_EQ(Sample(text,
                   "tandem_cloud_model_ready{model=\"tiny\",version="
                   "\"2\"}"),
            1);
  EXPECT_EQ(Sample(text,
                   "tandem_cloud_model_ready{model=\"tiny\",version="
                   "\"1\"}"),
            -1);

  // A version that does not load: version 2 keeps serving, and ListModels
  // says why the new one is not there.
  fs::create_directories(root_ / "tiny" / "3");
  std::ofstream(root_ / "tiny" / "3" / "model.pt") << "not TorchScript";
  EXPECT_THAT(server_->ReloadModels(),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(call(""), grpc::OK);
  models = list();
  ASSERT_EQ(models.models_size(), 1);
  EXPECT_EQ(models.models(0).version(), "2");
  EXPECT_TRUE(models.models(0).ready());
  EXPECT_THAT(models.models(0).reason(), ::testing::HasSubstr("3"));
}

TEST_F(BatchingServerTest, NonsensicalBatchingIsRefusedAtStart) {
  config_.set_max_batch_size(65);
  EXPECT_THAT(CloudServer::Start(config_).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace tandem
