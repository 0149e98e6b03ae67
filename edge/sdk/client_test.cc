#include "tandem/client.h"

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "grpcpp/server_context.h"
#include "gtest/gtest.h"
#include "tandem/v1/edge_service.grpc.pb.h"

namespace tandem {
namespace {

using ::tandem::testing::IsOk;
using ::tandem::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// Stands in for the agent: records what arrives and answers a canned,
// fully populated response (with the request's id echoed), so a test can
// check that the SDK maps every field both ways. Thread-safe.
class FakeEdgeService final : public tandem::v1::EdgeService::Service {
 public:
  FakeEdgeService() {
    response_.set_model_name("fmnist_branchy");
    response_.set_model_version("7");
    tandem::v1::ClassScore* first = response_.add_top_k();
    first->set_index(9);
    first->set_label("Ankle boot");
    first->set_probability(0.75f);
    tandem::v1::ClassScore* second = response_.add_top_k();
    second->set_index(7);
    second->set_label("Sneaker");
    second->set_probability(0.125f);
    response_.set_exit_block(2);
    response_.set_answered_by(tandem::v1::SITE_CLOUD);
    response_.set_split_point(1);
    tandem::v1::Timings* timings = response_.mutable_timings();
    timings->set_edge_compute_us(101);
    timings->set_encode_us(102);
    timings->set_transfer_us(103);
    timings->set_cloud_queue_us(104);
    timings->set_cloud_compute_us(105);
    timings->set_total_us(106);
    timings->set_edge_queue_us(107);
    response_.set_bytes_sent(4096);
    response_.set_fallback_reason("cloud unavailable");
    response_.set_confidence(0.75f);
  }

  grpc::Status Infer(grpc::ServerContext* context,
                     const tandem::v1::InferRequest* request,
                     tandem::v1::InferResponse* response) override {
    bool block;
    {
      absl::MutexLock lock(&mu_);
      last_request_ = *request;
      last_deadline_ = context->deadline();
      last_authorization_ = Authorization(*context);
      peers_.insert(context->peer());
      ++infer_calls_;
      block = block_infer_;
      if (!infer_status_.ok()) return infer_status_;
      *response = response_;
    }
    if (block) {
      entered_.Notify();
      release_.WaitForNotification();
    }
    response->set_id(request->id());
    return grpc::Status::OK;
  }

  grpc::Status ListModels(grpc::ServerContext* context,
                          const tandem::v1::ListModelsRequest* request,
                          tandem::v1::ListModelsResponse* response) override {
    absl::MutexLock lock(&mu_);
    last_authorization_ = Authorization(*context);
    tandem::v1::ModelSummary* model = response->add_models();
    model->set_name("fmnist_branchy");
    model->set_version("7");
    model->set_num_blocks(3);
    model->add_exit_blocks(0);
    model->add_exit_blocks(2);
    for (int64_t dim : {1, 1, 28, 28}) model->add_input_shape(dim);
    model->set_input_datatype("FP32");
    model->set_trained(true);
    return grpc::Status::OK;
  }

  grpc::Status GetPlan(grpc::ServerContext* context,
                       const tandem::v1::GetPlanRequest* request,
                       tandem::v1::GetPlanResponse* response) override {
    if (request->model_name() != "fmnist_branchy") {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          "no model " + request->model_name());
    }
    tandem::v1::Plan* plan = response->mutable_plan();
    plan->set_model_name(request->model_name());
    plan->set_split_point(2);
    (*plan->mutable_exit_thresholds())[0] = 0.9f;
    plan->set_encoding(tandem::v1::ENCODING_FP16);
    plan->set_reason("test plan");
    return grpc::Status::OK;
  }

  void SetInferStatus(grpc::Status status) {
    absl::MutexLock lock(&mu_);
    infer_status_ = std::move(status);
  }
  // Infer waits for Release() once it has recorded the request.
  void BlockInfer() {
    absl::MutexLock lock(&mu_);
    block_infer_ = true;
  }
  // False when no Infer arrived within 30 s (the test then fails, not hangs).
  bool WaitUntilInferEntered() {
    return entered_.WaitForNotificationWithTimeout(absl::Seconds(30));
  }
  void Release() {
    if (!release_.HasBeenNotified()) release_.Notify();
  }

  tandem::v1::InferRequest last_request() {
    absl::MutexLock lock(&mu_);
    return last_request_;
  }
  std::chrono::system_clock::time_point last_deadline() {
    absl::MutexLock lock(&mu_);
    return last_deadline_;
  }
  std::string last_authorization() {
    absl::MutexLock lock(&mu_);
    return last_authorization_;
  }
  int infer_calls() {
    absl::MutexLock lock(&mu_);
    return infer_calls_;
  }
  // Distinct connections Infer calls came on (address:port of the peer).
  size_t peers() {
    absl::MutexLock lock(&mu_);
    return peers_.size();
  }

 private:
  static std::string Authorization(const grpc::ServerContext& context) {
    auto it = context.client_metadata().find("authorization");
    if (it == context.client_metadata().end()) return "";
    return std::string(it->second.data(), it->second.size());
  }

  absl::Mutex mu_;
  tandem::v1::InferResponse response_ ABSL_GUARDED_BY(mu_);
  grpc::Status infer_status_ ABSL_GUARDED_BY(mu_);
  bool block_infer_ ABSL_GUARDED_BY(mu_) = false;
  tandem::v1::InferRequest last_request_ ABSL_GUARDED_BY(mu_);
  std::chrono::system_clock::time_point last_deadline_ ABSL_GUARDED_BY(mu_);
  std::string last_authorization_ ABSL_GUARDED_BY(mu_);
  int infer_calls_ ABSL_GUARDED_BY(mu_) = 0;
  std::set<std::string> peers_ ABSL_GUARDED_BY(mu_);
  absl::Notification entered_;
  absl::Notification release_;
};

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port, 0);
    address_ = absl::StrCat("127.0.0.1:", port);
  }

  void TearDown() override {
    service_.Release();
    server_->Shutdown();
  }

  std::unique_ptr<Client> ConnectOrDie(const ClientOptions& options = {}) {
    absl::StatusOr<std::unique_ptr<Client>> client =
        Client::Connect(address_, options);
    EXPECT_THAT(client, IsOk());
    return client.ok() ? std::move(client).value() : nullptr;
  }

  static InputTensor SomePixels() {
    static const uint8_t kPixels[4] = {0, 1, 128, 255};
    return InputTensor::Pixels({1, 1, 2, 2}, kPixels);
  }

  FakeEdgeService service_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
};

TEST(InputTensorTest, PixelsAreAffineUint8WithUnitScale) {
  const uint8_t pixels[6] = {0, 1, 2, 127, 128, 255};
  const InputTensor tensor = InputTensor::Pixels({1, 1, 2, 3}, pixels);
  EXPECT_EQ(tensor.datatype, "FP32");
  EXPECT_THAT(tensor.shape, ElementsAre(1, 1, 2, 3));
  EXPECT_EQ(tensor.encoding, tandem::v1::ENCODING_AFFINE_UINT8);
  EXPECT_THAT(tensor.scale, ElementsAre(1.0f / 255.0f));
  EXPECT_THAT(tensor.zero_point, ElementsAre(0));
  EXPECT_EQ(tensor.data, std::string("\x00\x01\x02\x7f\x80\xff", 6));
}

TEST(InputTensorTest, Fp32CopiesLittleEndianFloats) {
  const float values[2] = {1.0f, -2.5f};
  const InputTensor tensor = InputTensor::Fp32({1, 2}, values);
  EXPECT_EQ(tensor.datatype, "FP32");
  EXPECT_EQ(tensor.encoding, tandem::v1::ENCODING_RAW);
  EXPECT_THAT(tensor.scale, IsEmpty());
  EXPECT_THAT(tensor.zero_point, IsEmpty());
  // IEEE 754: 1.0 = 0x3f800000, -2.5 = 0xc0200000, little-endian.
  EXPECT_EQ(tensor.data, std::string("\x00\x00\x80\x3f\x00\x00\x20\xc0", 8));
}

TEST(ConnectTest, NobodyListeningIsUnavailableWithinTimeout) {
  const std::string address = absl::StrCat(
      "unix:", ::testing::TempDir(), "/tandem_nobody_", getpid(), ".sock");
  ClientOptions options;
  options.connect_timeout = absl::Milliseconds(300);
  const absl::Time start = absl::Now();
  EXPECT_THAT(Client::Connect(address, options),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr(address)));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

TEST(ConnectTest, EmptyAddressIsInvalid) {
  EXPECT_THAT(Client::Connect(""),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ConnectTest, UnixSocket) {
  const std::string address = absl::StrCat(
      "unix:", ::testing::TempDir(), "/tandem_client_", getpid(), ".sock");
  FakeEdgeService service;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials());
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> client,
                         Client::Connect(address));
    EXPECT_THAT(client->ListModels(), IsOk());
  }
  server->Shutdown();
}

TEST_F(ClientTest, ClientsShareAConnectionUnlessAskedForTheirOwn) {
  {
    std::unique_ptr<Client> a = ConnectOrDie(), b = ConnectOrDie();
    ASSERT_THAT(a->Infer("m", SomePixels()), IsOk());
    ASSERT_THAT(b->Infer("m", SomePixels()), IsOk());
  }
  EXPECT_EQ(service_.peers(), 1u);
  ClientOptions own;
  own.own_connection = true;
  std::unique_ptr<Client> c = ConnectOrDie(own), d = ConnectOrDie(own);
  ASSERT_THAT(c->Infer("m", SomePixels()), IsOk());
  ASSERT_THAT(d->Infer("m", SomePixels()), IsOk());
  EXPECT_EQ(service_.peers(), 3u);
}

TEST_F(ClientTest, ANonPositiveReconnectBackoffIsInvalid) {
  ClientOptions options;
  options.max_reconnect_backoff = absl::ZeroDuration();
  EXPECT_THAT(Client::Connect(address_, options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("max_reconnect_backoff")));
}

TEST_F(ClientTest, AnInfiniteReconnectBackoffIsCappedNotOverflowed) {
  ClientOptions options;
  options.max_reconnect_backoff = absl::InfiniteDuration();
  std::unique_ptr<Client> client = ConnectOrDie(options);
  ASSERT_NE(client, nullptr);
  EXPECT_THAT(client->Infer("m", SomePixels()), IsOk());
}

TEST_F(ClientTest, InferMapsEveryRequestField) {
  std::unique_ptr<Client> client = ConnectOrDie();
  ASSERT_NE(client, nullptr);
  InferOptions options;
  options.min_accuracy = 0.875f;
  options.split_point = 2;
  options.encoding = tandem::v1::ENCODING_FP16;
  options.allow_partial = true;
  options.disable_early_exits = true;
  options.top_k = 3;
  options.id = "request-17";
  options.model_version = "7";
  ASSERT_THAT(client->Infer("fmnist_branchy", SomePixels(), options), IsOk());

  const tandem::v1::InferRequest request = service_.last_request();
  EXPECT_EQ(request.model_name(), "fmnist_branchy");
  EXPECT_EQ(request.model_version(), "7");
  EXPECT_EQ(request.id(), "request-17");
  EXPECT_FLOAT_EQ(request.min_accuracy(), 0.875f);
  ASSERT_TRUE(request.has_split_point());
  EXPECT_EQ(request.split_point(), 2);
  ASSERT_TRUE(request.has_encoding());
  EXPECT_EQ(request.encoding(), tandem::v1::ENCODING_FP16);
  EXPECT_TRUE(request.allow_partial());
  EXPECT_TRUE(request.disable_early_exits());
  EXPECT_EQ(request.top_k(), 3);
  ASSERT_EQ(request.inputs_size(), 1);
  ASSERT_EQ(request.raw_input_contents_size(), 1);
  const tandem::v1::TensorSpec& spec = request.inputs(0);
  EXPECT_EQ(spec.datatype(), "FP32");
  EXPECT_THAT(spec.shape(), ElementsAre(1, 1, 2, 2));
  EXPECT_EQ(spec.encoding(), tandem::v1::ENCODING_AFFINE_UINT8);
  EXPECT_THAT(spec.scale(), ElementsAre(1.0f / 255.0f));
  EXPECT_THAT(spec.zero_point(), ElementsAre(0));
  EXPECT_EQ(spec.encoded_bytes(), 4);
  EXPECT_EQ(request.raw_input_contents(0), std::string("\x00\x01\x80\xff", 4));
}

TEST_F(ClientTest, InferLeavesUnsetOptionsAbsent) {
  std::unique_ptr<Client> client = ConnectOrDie();
  ASSERT_NE(client, nullptr);
  ASSERT_THAT(client->Infer("fmnist_branchy", SomePixels()), IsOk());
  const tandem::v1::InferRequest request = service_.last_request();
  EXPECT_FALSE(request.has_split_point());
  EXPECT_FALSE(request.has_encoding());
  EXPECT_FALSE(request.allow_partial());
  EXPECT_FALSE(request.disable_early_exits());
  EXPECT_EQ(request.top_k(), 1);
  EXPECT_EQ(service_.last_authorization(), "");
}

TEST_F(ClientTest, InferMapsEveryResponseField) {
  std::unique_ptr<Client> client = ConnectOrDie();
  ASSERT_NE(client, nullptr);
  InferOptions options;
  options.id = "echo-me";
  ASSERT_OK_AND_ASSIGN(InferResult result,
                       client->Infer("fmnist_branchy", SomePixels(), options));
  EXPECT_EQ(result.id, "echo-me");
  EXPECT_EQ(result.model_version, "7");
  ASSERT_EQ(result.top_k.size(), 2u);
  EXPECT_EQ(result.top_k[0].index, 9);
  EXPECT_EQ(result.top_k[0].label, "Ankle boot");
  EXPECT_FLOAT_EQ(result.top_k[0].probability, 0.75f);
  EXPECT_EQ(result.top_k[1].index, 7);
  EXPECT_EQ(result.top_k[1].label, "Sneaker");
  EXPECT_FLOAT_EQ(result.top_k[1].probability, 0.125f);
  EXPECT_EQ(result.exit_block, 2);
  EXPECT_EQ(result.answered_by, InferResult::Site::kCloud);
  EXPECT_EQ(SiteName(result.answered_by), "cloud");
  EXPECT_EQ(result.split_point, 1);
  EXPECT_EQ(result.timings.edge_compute, absl::Microseconds(101));
  EXPECT_EQ(result.timings.encode, absl::Microseconds(102));
  EXPECT_EQ(result.timings.transfer, absl::Microseconds(103));
  EXPECT_EQ(result.timings.cloud_queue, absl::Microseconds(104));
  EXPECT_EQ(result.timings.cloud_compute, absl::Microseconds(105));
  EXPECT_EQ(result.timings.total, absl::Microseconds(106));
  EXPECT_EQ(result.timings.edge_queue, absl::Microseconds(107));
  EXPECT_EQ(result.bytes_sent, 4096);
  EXPECT_EQ(result.fallback_reason, "cloud unavailable");
  EXPECT_FLOAT_EQ(result.confidence, 0.75f);
  EXPECT_GT(result.client_latency, absl::ZeroDuration());
}

TEST_F(ClientTest, DeadlineReachesTheServer) {
  std::unique_ptr<Client> client = ConnectOrDie();
  ASSERT_NE(client, nullptr);
  InferOptions options;
  options.deadline = absl::Seconds(30);
  const absl::Time before = absl::Now();
  ASSERT_THAT(client->Infer("fmnist_branchy", SomePixels(), options), IsOk());
  const absl::Time after = absl::Now();
  const absl::Time deadline = absl::FromChrono(service_.last_deadline());
  EXPECT_GE(deadline, before + absl::Seconds(29));
  EXPECT_LE(deadline, after + absl::Seconds(31));
}

TEST_F(ClientTest, NoDeadlineByDefault) {
  std::unique_ptr<Client> client = ConnectOrDie();
  ASSERT_NE(client, nullptr);
  ASSERT_THAT(client->Infer("fmnist_branchy", SomePixels()), IsOk());
  EXPECT_EQ(service_.last_deadline(),
            std::chrono::system_clock::time_point::max());
}

TEST_F(ClientTest, MissedDeadlineIsDeadlineExceeded) {
  service_.BlockInfer();
  std::unique_ptr<Client> client = ConnectOrDie();
  ASSERT_NE(client, nullptr);
  InferOptions options;
  options.deadline = absl::Milliseconds(100);
  EXPECT_THAT(client->Infer("fmnist_branchy", SomePixels(), options),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  service_.Release();
}

TEST_F(ClientTest, BearerTokenArrivesOnEveryCall) {
  ClientOptions options;
  options.bearer_token = "s3cret";
  std::unique_ptr<Client> client = ConnectOrDie(options);
  ASSERT_NE(client, nullptr);
  ASSERT_THAT(client->Infer("fmnist_branchy", SomePixels()), IsOk());
  EXPECT_EQ(service_.last_authorization(), "Bearer s3cret");
  ASSERT_THAT(client->ListModels(), IsOk());
  EXPECT_EQ(service_.last_authorization(), "Bearer s3cret");
}

TEST_F(ClientTest, ErrorCodesPassThroughUnchanged) {
  std::unique_ptr<Client> client = ConnectOrDie();
  ASSERT_NE(client, nullptr);
  const grpc::StatusCode kCodes[] = {
      grpc::StatusCode::NOT_FOUND,
      grpc::StatusCode::INVALID_ARGUMENT,
      grpc::StatusCode::RESOURCE_EXHAUSTED,
      grpc::StatusCode::UNAVAILABLE,
      grpc::StatusCode::DEADLINE_EXCEEDED,
      grpc::StatusCode::FAILED_PRECONDITION,
      grpc::StatusCode::PERMISSION_DENIED,
      grpc::StatusCode::INTERNAL,
  };
  for (grpc::StatusCode code : kCodes) {
    SCOPED_TRACE(static_cast<int>(code));
    service_.SetInferStatus(grpc::Status(code, "injected failure"));
    EXPECT_THAT(client->Infer("fmnist_branchy", SomePixels()),
                StatusIs(static_cast<absl::StatusCode>(code),
                         HasSubstr("injected failure")));
  }
}

TEST_F(ClientTest, ACallTheAgentCancelsIsUnavailable) {
  std::unique_ptr<Client> client = ConnectOrDie();
  ASSERT_NE(client, nullptr);
  service_.SetInferStatus(grpc::Status(grpc::StatusCode::CANCELLED, "gone"));
  EXPECT_THAT(client->Infer("fmnist_branchy", SomePixels()),
              StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr("cancelled the call")));
}

TEST_F(ClientTest, ListModels) {
  std::unique_ptr<Client> client = ConnectOrDie();
  ASSERT_NE(client, nullptr);
  ASSERT_OK_AND_ASSIGN(std::vector<ModelInfo> models, client->ListModels());
  ASSERT_EQ(models.size(), 1u);
  EXPECT_EQ(models[0].name, "fmnist_branchy");
  EXPECT_EQ(models[0].version, "7");
  EXPECT_EQ(models[0].num_blocks, 3);
  EXPECT_THAT(models[0].exit_blocks, ElementsAre(0, 2));
  EXPECT_THAT(models[0].input_shape, ElementsAre(1, 1, 28, 28));
  EXPECT_EQ(models[0].input_datatype, "FP32");
  EXPECT_TRUE(models[0].trained);
}

TEST_F(ClientTest, GetPlan) {
  std::unique_ptr<Client> client = ConnectOrDie();
  ASSERT_NE(client, nullptr);
  ASSERT_OK_AND_ASSIGN(tandem::v1::Plan plan,
                       client->GetPlan("fmnist_branchy"));
  EXPECT_EQ(plan.split_point(), 2);
  EXPECT_EQ(plan.encoding(), tandem::v1::ENCODING_FP16);
  EXPECT_FLOAT_EQ(plan.exit_thresholds().at(0), 0.9f);
  EXPECT_EQ(plan.reason(), "test plan");
  EXPECT_THAT(
      client->GetPlan("no_such_model"),
      StatusIs(absl::StatusCode::kNotFound, HasSubstr("no_such_model")));
}

TEST_F(ClientTest, InferAsyncDeliversTheResult) {
  std::unique_ptr<Client> client = ConnectOrDie();
  ASSERT_NE(client, nullptr);
  InferOptions options;
  options.id = "async-1";
  absl::Notification done;
  absl::StatusOr<InferResult> result;
  client->InferAsync("fmnist_branchy", SomePixels(), options,
                     [&](absl::StatusOr<InferResult> r) {
                       result = std::move(r);
                       done.Notify();
                     });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(30)));
  ASSERT_THAT(result, IsOk());
  EXPECT_EQ(result->id, "async-1");
  EXPECT_EQ(result->exit_block, 2);
  EXPECT_GT(result->client_latency, absl::ZeroDuration());
}

TEST_F(ClientTest, InferAsyncPassesErrorsThrough) {
  service_.SetInferStatus(grpc::Status(grpc::StatusCode::NOT_FOUND, "no"));
  std::unique_ptr<Client> client = ConnectOrDie();
  ASSERT_NE(client, nullptr);
  absl::Notification done;
  absl::Status status;
  client->InferAsync("unknown", SomePixels(), {},
                     [&](absl::StatusOr<InferResult> r) {
                       status = r.status();
                       done.Notify();
                     });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(ClientTest, OneClientServesManyThreads) {
  std::unique_ptr<Client> client = ConnectOrDie();
  ASSERT_NE(client, nullptr);
  constexpr int kThreads = 4;
  constexpr int kCallsPerThread = 10;
  absl::BlockingCounter async_done(kThreads * kCallsPerThread);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&client, &async_done, t] {
      for (int i = 0; i < kCallsPerThread; ++i) {
        InferOptions options;
        options.id = absl::StrCat(t, "-", i);
        absl::StatusOr<InferResult> result =
            client->Infer("fmnist_branchy", SomePixels(), options);
        EXPECT_THAT(result, IsOk());
        if (result.ok()) {
          EXPECT_EQ(result->id, options.id);
        }
        client->InferAsync(
            "fmnist_branchy", SomePixels(), options,
            [&async_done, id = options.id](absl::StatusOr<InferResult> r) {
              EXPECT_THAT(r, IsOk());
              if (r.ok()) {
                EXPECT_EQ(r->id, id);
              }
              async_done.DecrementCount();
            });
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  async_done.Wait();
  EXPECT_EQ(service_.infer_calls(), 2 * kThreads * kCallsPerThread);
}

TEST_F(ClientTest, DestructorWaitsForOutstandingAsyncCalls) {
  service_.BlockInfer();
  std::unique_ptr<Client> client = ConnectOrDie();
  ASSERT_NE(client, nullptr);
  absl::Notification destroyed;
  bool destroyed_before_callback = true;
  client->InferAsync("fmnist_branchy", SomePixels(), {},
                     [&](absl::StatusOr<InferResult> result) {
                       EXPECT_THAT(result, IsOk());
                       destroyed_before_callback = destroyed.HasBeenNotified();
                     });
  ASSERT_TRUE(service_.WaitUntilInferEntered()) << "no Infer arrived";
  std::thread destroyer([&] {
    client.reset();
    destroyed.Notify();
  });
  // The call is held by the server, so the destructor must still be waiting.
  EXPECT_FALSE(
      destroyed.WaitForNotificationWithTimeout(absl::Milliseconds(50)));
  service_.Release();
  destroyer.join();
  EXPECT_TRUE(destroyed.HasBeenNotified());
  EXPECT_FALSE(destroyed_before_callback);
}

}  // namespace
}  // namespace tandem
