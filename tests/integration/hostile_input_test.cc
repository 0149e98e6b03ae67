// Hostile input against the real daemons: tandem-cloud and tandem-edge run as
// separate processes (the cloud on TCP loopback, the edge on a unix socket),
// so a crash shows as a dead process and fails the test at once instead of
// hanging it. Covers NaN and infinity on every split and encoding, the range
// checks of both services' request fields, and a seeded mutation test whose
// every request must get an answer or an error code from the contract.
#include <signal.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/subprocess.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "models/fashion_mnist.h"
#include "models/progressive_model.h"
#include "models/tensor_codec.h"
#include "tandem/v1/cloud_service.grpc.pb.h"
#include "tandem/v1/edge_service.grpc.pb.h"

namespace tandem {
namespace {

using ::tandem::v1::ContinueRequest;
using ::tandem::v1::ContinueResponse;
using ::tandem::v1::InferRequest;
using ::tandem::v1::InferResponse;
using ::testing::HasSubstr;

constexpr char kModel[] = "fmnist_branchy";
constexpr int kBadIndex = 300;  // Where the NaN goes in a 784-pixel image.

std::string Env(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value == nullptr ? fallback : value;
}

// The two daemons as real processes, and raw stubs to reach them.
class Daemons {
 public:
  absl::Status Start() {
    dir_ = MakeTempDir("hostile");
    const std::string repository = Env("TANDEM_MODEL_REPOSITORY", "");
    absl::StatusOr<Subprocess> cloud = Subprocess::Start(
        {Env("TANDEM_CLOUD_BINARY", "tandem-cloud"), "--listen=127.0.0.1:0",
         "--model_repository=" + repository,
         "--port_file=" + dir_ + "/cloud.port"});
    if (!cloud.ok()) return cloud.status();
    cloud_ = std::make_unique<Subprocess>(*std::move(cloud));
    absl::StatusOr<int> cloud_port =
        WaitForPortFile(dir_ + "/cloud.port", *cloud_, absl::Seconds(60));
    if (!cloud_port.ok()) return cloud_port.status();
    cloud_stub_ = tandem::v1::CloudService::NewStub(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", *cloud_port),
                            grpc::InsecureChannelCredentials()));
    cloud_generic_ = std::make_unique<grpc::GenericStub>(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", *cloud_port),
                            grpc::InsecureChannelCredentials()));

    // Offload by default (split 2), so edge requests reach the cloud too.
    absl::StatusOr<Subprocess> edge =
        Subprocess::Start({Env("TANDEM_EDGE_BINARY", "tandem-edge"),
                           "--listen=unix:" + dir_ + "/edge.sock,127.0.0.1:0",
                           absl::StrCat("--cloud=127.0.0.1:", *cloud_port),
                           "--model_repository=" + repository,
                           absl::StrCat("--split=", kModel, "=2"),
                           "--port_file=" + dir_ + "/edge.port"});
    if (!edge.ok()) return edge.status();
    edge_ = std::make_unique<Subprocess>(*std::move(edge));
    absl::StatusOr<int> edge_port =
        WaitForPortFile(dir_ + "/edge.port", *edge_, absl::Seconds(60));
    if (!edge_port.ok()) return edge_port.status();
    auto edge_channel = grpc::CreateChannel("unix:" + dir_ + "/edge.sock",
                                            grpc::InsecureChannelCredentials());
    edge_stub_ = tandem::v1::EdgeService::NewStub(edge_channel);
    edge_generic_ = std::make_unique<grpc::GenericStub>(edge_channel);
    return absl::OkStatus();
  }

  ~Daemons() {
    edge_.reset();
    cloud_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  // INTERNAL naming the daemon that exited (and how), else OK.
  absl::Status CheckAlive() {
    for (auto& [name, process] :
         {std::pair<const char*, Subprocess*>{"tandem-cloud", cloud_.get()},
          std::pair<const char*, Subprocess*>{"tandem-edge", edge_.get()}}) {
      if (process == nullptr) continue;
      absl::StatusOr<int> exit = process->Wait(absl::ZeroDuration());
      if (exit.ok()) {
        return absl::InternalError(
            absl::StrCat(name, " died: exit status ", *exit));
      }
    }
    return absl::OkStatus();
  }

  Subprocess& edge() { return *edge_; }
  tandem::v1::EdgeService::Stub& edge_stub() { return *edge_stub_; }
  tandem::v1::CloudService::Stub& cloud_stub() { return *cloud_stub_; }
  grpc::GenericStub& edge_generic() { return *edge_generic_; }
  grpc::GenericStub& cloud_generic() { return *cloud_generic_; }

 private:
  std::string dir_;
  std::unique_ptr<Subprocess> cloud_, edge_;
  std::unique_ptr<tandem::v1::CloudService::Stub> cloud_stub_;
  std::unique_ptr<tandem::v1::EdgeService::Stub> edge_stub_;
  std::unique_ptr<grpc::GenericStub> cloud_generic_, edge_generic_;
};

void SetDeadline(grpc::ClientContext* context, absl::Duration timeout) {
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
}

grpc::Status Infer(Daemons& d, const InferRequest& request,
                   InferResponse* response) {
  grpc::ClientContext context;
  SetDeadline(&context, absl::Seconds(10));
  return d.edge_stub().Infer(&context, request, response);
}

grpc::Status Continue(Daemons& d, const ContinueRequest& request,
                      ContinueResponse* response) {
  grpc::ClientContext context;
  SetDeadline(&context, absl::Seconds(10));
  return d.cloud_stub().Continue(&context, request, response);
}

// Sends `bytes` as the serialized request of `method`, parseable or not.
grpc::Status SendRaw(grpc::GenericStub& stub, const std::string& method,
                     const std::string& bytes) {
  grpc::Slice slice(bytes);
  grpc::ByteBuffer request(&slice, 1), response;
  grpc::ClientContext context;
  SetDeadline(&context, absl::Seconds(10));
  grpc::Status status;
  absl::Notification done;
  stub.UnaryCall(&context, method, grpc::StubOptions(), &request, &response,
                 [&](grpc::Status s) {
                   status = std::move(s);
                   done.Notify();
                 });
  done.WaitForNotification();  // Bounded by the call's deadline.
  return status;
}

// The codes the contract allows an arbitrary request to get (docs/design.md,
// "Status codes"). INTERNAL only for a model whose activation overflowed on
// an extreme but finite input.
bool InContract(const grpc::Status& status) {
  switch (status.error_code()) {
    case grpc::StatusCode::OK:
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::NOT_FOUND:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::UNIMPLEMENTED:  // gRPC's reply to unparseable bytes.
      return true;
    case grpc::StatusCode::INTERNAL:
      return absl::StrContains(status.error_message(), "non-finite");
    default:
      return false;
  }
}

class HostileInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(data_, ReadFashionMnist(kDefaultFashionMnistDir,
                                                 FashionMnistSplit::kTest, 4));
    ASSERT_OK_AND_ASSIGN(
        model_, ProgressiveModel::Load(
                    Env("TANDEM_MODEL_REPOSITORY", "") + "/" + kModel, {}));
    ASSERT_OK(daemons_.Start());
    // The cloud reports NOT_SERVING until its models are warm: wait for one
    // real answer (bounded) before testing.
    const absl::Time until = absl::Now() + absl::Seconds(120);
    while (true) {
      ContinueResponse response;
      const grpc::Status status = Continue(
          daemons_, CloudRequest(0, tandem::v1::ENCODING_RAW), &response);
      if (status.ok()) break;
      ASSERT_LT(absl::Now(), until)
          << "cloud never served: " << status.error_message();
      ASSERT_OK(daemons_.CheckAlive());
      absl::SleepFor(absl::Milliseconds(100));
    }
  }

  torch::Tensor Image(int i) const {
    return torch::from_blob(const_cast<uint8_t*>(data_.image(i)),
                            {1, 1, 28, 28}, torch::kUInt8)
               .to(torch::kFloat32) /
           255.0;
  }

  // A valid Infer request with the image as FP32 (or another encoding).
  InferRequest EdgeRequest(tandem::v1::Encoding encoding) const {
    InferRequest request;
    request.set_model_name(kModel);
    request.set_id("r");
    EncodeOptions options;
    options.encoding = encoding;
    options.name = "pixels";
    EXPECT_OK(EncodeTensor(Image(0), options, request.add_inputs(),
                           request.add_raw_input_contents()));
    return request;
  }

  // A valid Continue request: the real input of `block` for image 1.
  ContinueRequest CloudRequest(int block, tandem::v1::Encoding encoding) const {
    ContinueRequest request;
    request.set_model_name(kModel);
    request.set_id("c");
    request.set_start_block(block);
    absl::StatusOr<at::Tensor> input =
        block == 0 ? Image(1) : model_->RunBlocks(Image(1), 0, block);
    EXPECT_OK(input.status());
    EncodeOptions options;
    options.encoding = encoding;
    options.name = "activation";
    EXPECT_OK(EncodeTensor(*input, options, request.add_inputs(),
                           request.add_raw_input_contents()));
    return request;
  }

  ImageDataset data_;
  std::unique_ptr<ProgressiveModel> model_;
  Daemons daemons_;
};

// Puts `value` at element `index` of an FP32 or FP16 payload.
void Poke(const tandem::v1::TensorSpec& spec, std::string* payload, int index,
          float value) {
  if (spec.encoding() == tandem::v1::ENCODING_FP16) {
    const uint16_t half =
        std::isnan(value) ? 0x7e00 : (value > 0 ? 0x7c00 : 0xfc00);
    std::memcpy(payload->data() + 2 * index, &half, 2);
  } else {
    std::memcpy(payload->data() + 4 * index, &value, 4);
  }
}

const float kNonFinite[] = {NAN, INFINITY, -INFINITY};

TEST_F(HostileInputTest, NonFiniteInputsAreRefusedOnEverySplitAndEncoding) {
  const int n = model_->num_blocks();
  int refused = 0;
  for (auto input_encoding :
       {tandem::v1::ENCODING_RAW, tandem::v1::ENCODING_FP16}) {
    for (int split = 0; split <= n; ++split) {
      for (auto offload_encoding :
           {tandem::v1::ENCODING_RAW, tandem::v1::ENCODING_FP16,
            tandem::v1::ENCODING_AFFINE_UINT8}) {
        for (float bad : kNonFinite) {
          SCOPED_TRACE(::testing::Message()
                       << "input " << Encoding_Name(input_encoding) << " split "
                       << split << " offload "
                       << Encoding_Name(offload_encoding) << " value " << bad);
          InferRequest request = EdgeRequest(input_encoding);
          Poke(request.inputs(0), request.mutable_raw_input_contents(0),
               kBadIndex, bad);
          request.set_split_point(split);
          request.set_encoding(offload_encoding);
          InferResponse response;
          const grpc::Status status = Infer(daemons_, request, &response);
          EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
          EXPECT_THAT(status.error_message(),
                      HasSubstr("tensor 'pixels': element 300 [0,0,10,20]"));
          ++refused;
        }
      }
    }
  }
  EXPECT_EQ(refused, 2 * (n + 1) * 3 * 3);
  // Affine pixel codes whose scale is not finite, or would overflow.
  for (float scale : {NAN, INFINITY, 1e38f}) {
    InferRequest request = EdgeRequest(tandem::v1::ENCODING_AFFINE_UINT8);
    request.mutable_inputs(0)->set_scale(0, scale);
    InferResponse response;
    EXPECT_EQ(Infer(daemons_, request, &response).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT)
        << scale;
  }
  // The agent still serves every split.
  for (int split = 0; split <= n; ++split) {
    InferRequest request = EdgeRequest(tandem::v1::ENCODING_RAW);
    request.set_split_point(split);
    InferResponse response;
    const grpc::Status status = Infer(daemons_, request, &response);
    EXPECT_TRUE(status.ok()) << split << ": " << status.error_message();
    EXPECT_TRUE(std::isfinite(response.confidence()));
    EXPECT_GE(response.exit_block(), 0);
  }
  EXPECT_OK(daemons_.CheckAlive());
}

TEST_F(HostileInputTest, CloudRefusesNonFiniteActivationsAtEveryBlock) {
  for (int block = 0; block < model_->num_blocks(); ++block) {
    for (auto encoding :
         {tandem::v1::ENCODING_RAW, tandem::v1::ENCODING_FP16}) {
      for (float bad : kNonFinite) {
        SCOPED_TRACE(::testing::Message()
                     << "block " << block << " " << Encoding_Name(encoding)
                     << " " << bad);
        ContinueRequest request = CloudRequest(block, encoding);
        Poke(request.inputs(0), request.mutable_raw_input_contents(0), 5, bad);
        ContinueResponse response;
        const grpc::Status status = Continue(daemons_, request, &response);
        EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
        EXPECT_THAT(status.error_message(),
                    HasSubstr("tensor 'activation': element 5"));
      }
    }
    ContinueRequest affine =
        CloudRequest(block, tandem::v1::ENCODING_AFFINE_UINT8);
    affine.mutable_inputs(0)->set_scale(0, INFINITY);
    ContinueResponse response;
    EXPECT_EQ(Continue(daemons_, affine, &response).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  // The stream refuses per message and goes on.
  grpc::ClientContext context;
  SetDeadline(&context, absl::Seconds(20));
  auto stream = daemons_.cloud_stub().ContinueStream(&context);
  ContinueRequest bad = CloudRequest(1, tandem::v1::ENCODING_RAW);
  bad.set_id("bad");
  Poke(bad.inputs(0), bad.mutable_raw_input_contents(0), 0, NAN);
  ContinueRequest good = CloudRequest(1, tandem::v1::ENCODING_RAW);
  good.set_id("good");
  ASSERT_TRUE(stream->Write(bad));
  ASSERT_TRUE(stream->Write(good));
  stream->WritesDone();
  std::map<std::string, int> codes;
  ContinueResponse reply;
  while (stream->Read(&reply)) codes[reply.id()] = reply.status_code();
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(codes["bad"], static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(codes["good"], 0);
  EXPECT_OK(daemons_.CheckAlive());
}

TEST_F(HostileInputTest, RequestFieldsAreRangeChecked) {
  struct EdgeCase {
    const char* name;
    std::function<void(InferRequest*)> mutate;
    grpc::StatusCode code;
    const char* message;
  };
  const EdgeCase edge_cases[] = {
      {"min_accuracy 2", [](auto* r) { r->set_min_accuracy(2); },
       grpc::StatusCode::INVALID_ARGUMENT, "min_accuracy 2 is outside [0, 1]"},
      {"min_accuracy -0.5", [](auto* r) { r->set_min_accuracy(-0.5f); },
       grpc::StatusCode::INVALID_ARGUMENT, "outside [0, 1]"},
      {"min_accuracy NaN", [](auto* r) { r->set_min_accuracy(NAN); },
       grpc::StatusCode::INVALID_ARGUMENT, "outside [0, 1]"},
      {"min_accuracy 0.99", [](auto* r) { r->set_min_accuracy(0.99f); },
       grpc::StatusCode::FAILED_PRECONDITION, "(best 0.9"},
      {"top_k -1", [](auto* r) { r->set_top_k(-1); },
       grpc::StatusCode::INVALID_ARGUMENT, "top_k -1"},
      {"split 5", [](auto* r) { r->set_split_point(5); },
       grpc::StatusCode::INVALID_ARGUMENT, "split_point 5 is outside [0, 4]"},
      {"encoding 9",
       [](auto* r) { r->set_encoding(static_cast<tandem::v1::Encoding>(9)); },
       grpc::StatusCode::INVALID_ARGUMENT, "unknown encoding 9"},
      {"unknown model", [](auto* r) { r->set_model_name("nope"); },
       grpc::StatusCode::NOT_FOUND, "nope"},
  };
  for (const EdgeCase& c : edge_cases) {
    SCOPED_TRACE(c.name);
    InferRequest request = EdgeRequest(tandem::v1::ENCODING_RAW);
    c.mutate(&request);
    InferResponse response;
    const grpc::Status status = Infer(daemons_, request, &response);
    EXPECT_EQ(status.error_code(), c.code) << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr(c.message));
  }
  // top_k above the class count is clamped to it.
  InferRequest many = EdgeRequest(tandem::v1::ENCODING_RAW);
  many.set_top_k(1000);
  InferResponse response;
  ASSERT_TRUE(Infer(daemons_, many, &response).ok());
  EXPECT_EQ(response.top_k_size(), model_->num_classes());

  struct CloudCase {
    const char* name;
    std::function<void(ContinueRequest*)> mutate;
    const char* message;
  };
  const CloudCase cloud_cases[] = {
      {"start_block 4", [](auto* r) { r->set_start_block(4); },
       "start_block 4 is outside [0, 4)"},
      {"threshold 1.5",
       [](auto* r) { (*r->mutable_exit_thresholds())[2] = 1.5f; },
       "exit_thresholds[2] = 1.5"},
      {"threshold before start_block",
       [](auto* r) { (*r->mutable_exit_thresholds())[0] = 0.5f; },
       "names block 0"},
      {"negative deadline", [](auto* r) { r->set_deadline_remaining_us(-1); },
       "deadline_remaining_us -1"},
      {"top_k -2", [](auto* r) { r->set_top_k(-2); }, "top_k -2"},
  };
  for (const CloudCase& c : cloud_cases) {
    SCOPED_TRACE(c.name);
    ContinueRequest request = CloudRequest(1, tandem::v1::ENCODING_RAW);
    c.mutate(&request);
    ContinueResponse reply;
    const grpc::Status status = Continue(daemons_, request, &reply);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(status.error_message(), HasSubstr(c.message));
  }
  EXPECT_OK(daemons_.CheckAlive());
}

// Flips 1-4 random bytes: of the tensor payload (before serializing), of the
// message header, or anywhere in the serialized message; now and then
// truncates it. Seeded: every run sends the same requests.
std::string Mutate(std::mt19937& rng, google::protobuf::Message& message,
                   std::string* payload) {
  const int mode = static_cast<int>(rng() % 4);
  const int flips = 1 + static_cast<int>(rng() % 4);
  if (mode == 0) {
    const std::string original = *payload;
    for (int i = 0; i < flips; ++i)
      (*payload)[rng() % payload->size()] ^= static_cast<char>(1 + rng() % 255);
    std::string bytes = message.SerializeAsString();
    *payload = original;
    return bytes;
  }
  std::string bytes = message.SerializeAsString();
  // The payload field comes last (field 16): the header is what precedes it.
  const size_t header = bytes.size() - payload->size() - 3;
  const size_t span = mode == 1 ? header : bytes.size();
  for (int i = 0; i < flips; ++i)
    bytes[rng() % span] ^= static_cast<char>(1 + rng() % 255);
  if (mode == 3) bytes.resize(rng() % bytes.size());
  return bytes;
}

TEST_F(HostileInputTest, MutatedRequestsGetAnAnswerOrAContractCode) {
  constexpr int kPerService = 1500;
  std::mt19937 rng(20261202);
  std::vector<InferRequest> edge_bases;
  for (int split : {0, 1, 2, 4}) {
    InferRequest r = EdgeRequest(split == 1 ? tandem::v1::ENCODING_FP16
                                            : tandem::v1::ENCODING_RAW);
    if (split != 2) r.set_split_point(split);  // 2: the agent's own policy.
    edge_bases.push_back(r);
  }
  edge_bases.push_back(EdgeRequest(tandem::v1::ENCODING_AFFINE_UINT8));
  std::vector<ContinueRequest> cloud_bases = {
      CloudRequest(0, tandem::v1::ENCODING_AFFINE_UINT8),
      CloudRequest(1, tandem::v1::ENCODING_FP16),
      CloudRequest(2, tandem::v1::ENCODING_RAW),
      CloudRequest(3, tandem::v1::ENCODING_AFFINE_UINT8)};

  std::map<std::string, std::map<std::string, int>> tally;
  for (int i = 0; i < 2 * kPerService; ++i) {
    const bool to_edge = i % 2 == 0;
    grpc::Status status;
    if (to_edge) {
      InferRequest& base = edge_bases[rng() % edge_bases.size()];
      status = SendRaw(daemons_.edge_generic(), "/tandem.v1.EdgeService/Infer",
                       Mutate(rng, base, base.mutable_raw_input_contents(0)));
    } else {
      ContinueRequest& base = cloud_bases[rng() % cloud_bases.size()];
      status =
          SendRaw(daemons_.cloud_generic(), "/tandem.v1.CloudService/Continue",
                  Mutate(rng, base, base.mutable_raw_input_contents(0)));
    }
    ++tally[to_edge ? "edge" : "cloud"][absl::StatusCodeToString(
        static_cast<absl::StatusCode>(status.error_code()))];
    EXPECT_TRUE(InContract(status))
        << "request " << i << " got " << status.error_code() << ": "
        << status.error_message();
    if (i % 100 == 99) {
      ASSERT_OK(daemons_.CheckAlive()) << "after " << i + 1;
    }
  }
  for (const auto& [service, codes] : tally) {
    std::cout << "mutation tally, " << service << ":";
    int total = 0;
    for (const auto& [code, count] : codes) {
      std::cout << " " << code << "=" << count;
      total += count;
    }
    std::cout << " (" << total << " requests)\n";
    EXPECT_EQ(total, kPerService);
  }
  // Both daemons still serve a valid request.
  InferResponse response;
  InferRequest valid = EdgeRequest(tandem::v1::ENCODING_RAW);
  valid.set_split_point(1);
  valid.set_disable_early_exits(true);
  const grpc::Status edge_status = Infer(daemons_, valid, &response);
  EXPECT_TRUE(edge_status.ok()) << edge_status.error_message();
  EXPECT_EQ(response.answered_by(), tandem::v1::SITE_CLOUD);
  ContinueResponse reply;
  EXPECT_TRUE(
      Continue(daemons_, CloudRequest(2, tandem::v1::ENCODING_RAW), &reply)
          .ok());
  EXPECT_OK(daemons_.CheckAlive());
}

// The harness itself: a daemon that dies is reported, and calls to it fail
// within their deadline instead of hanging the test.
TEST_F(HostileInputTest, ADaemonThatDiesIsSeen) {
  ASSERT_OK(daemons_.CheckAlive());
  daemons_.edge().Signal(SIGKILL);
  const absl::Time start = absl::Now();
  InferResponse response;
  const grpc::Status status =
      Infer(daemons_, EdgeRequest(tandem::v1::ENCODING_RAW), &response);
  EXPECT_FALSE(status.ok());
  EXPECT_LT(absl::Now() - start, absl::Seconds(11));
  absl::Status alive = daemons_.CheckAlive();
  for (int i = 0; i < 100 && alive.ok(); ++i) {  // SIGKILL lands at once.
    absl::SleepFor(absl::Milliseconds(10));
    alive = daemons_.CheckAlive();
  }
  EXPECT_THAT(alive, tandem::testing::StatusIs(
                         absl::StatusCode::kInternal,
                         HasSubstr("tandem-edge died: exit status 137")));
}

}  // namespace
}  // namespace tandem
