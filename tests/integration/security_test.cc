// TLS, mutual TLS and bearer tokens on real tandem-cloud and tandem-edge
// processes, with certificates from deploy/make_test_ca.sh: who gets in,
// with which status code when not, what SIGHUP changes, and the limits'
// refusals.
#include <signal.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/subprocess.h"
#include "common/testing/status_matchers.h"
#include "common/text_proto.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "health.grpc.pb.h"
#include "tandem/client.h"
#include "tandem/v1/cloud_service.grpc.pb.h"
#include "tests/integration/edge_load.h"

namespace tandem {
namespace {

using ::tandem::testing::Eventually;
using ::tandem::v1::ContinueRequest;
using ::tandem::v1::ContinueResponse;

namespace fs = std::filesystem;

constexpr char kModel[] = "fmnist_branchy";
// Tokens: one for every model, one for another model only.
constexpr char kToken[] = "edge-token-0123456789abcdef";
constexpr char kOtherModelToken[] = "camera-only-token-0123456789";

std::string Env(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value == nullptr ? fallback : value;
}

std::string Read(const std::string& path) {
  std::string text;
  EXPECT_OK(ReadFile(path, &text, 1 << 20));
  return text;
}

void Write(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::trunc) << text;
}

// A CA and certificates in `dir` (deploy/make_test_ca.sh).
absl::Status MakeCa(const std::string& dir) {
  ASSIGN_OR_RETURN(
      int status, RunToCompletion({"bash", Env("TANDEM_MAKE_TEST_CA", ""), dir},
                                  absl::Seconds(60)));
  if (status != 0)
    return absl::InternalError(absl::StrCat("make_test_ca.sh exit ", status));
  return absl::OkStatus();
}

// Client TLS credentials trusting `ca_dir`'s CA, presenting its client
// certificate when `with_cert`.
std::shared_ptr<grpc::ChannelCredentials> Tls(const std::string& ca_dir,
                                              bool with_cert) {
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = Read(ca_dir + "/ca.pem");
  if (with_cert) {
    options.pem_cert_chain = Read(ca_dir + "/client.pem");
    options.pem_private_key = Read(ca_dir + "/client.key");
  }
  return grpc::SslCredentials(options);
}

// A Continue request the cloud can run: one Fashion-MNIST-sized FP32 input
// (zeros) from block 0.
ContinueRequest CloudRequest() {
  ContinueRequest request;
  request.set_model_name(kModel);
  request.set_id("c");
  tandem::v1::TensorSpec* spec = request.add_inputs();
  spec->set_name("activation");
  spec->set_datatype("FP32");
  for (int64_t d : {1, 1, 28, 28}) spec->add_shape(d);
  spec->set_encoded_bytes(28 * 28 * 4);
  request.add_raw_input_contents(std::string(28 * 28 * 4, '\0'));
  return request;
}

class CloudCaller {
 public:
  CloudCaller(const std::string& address,
              std::shared_ptr<grpc::ChannelCredentials> credentials)
      : stub_(tandem::v1::CloudService::NewStub(
            grpc::CreateChannel(address, std::move(credentials)))) {}

  grpc::Status Continue(const std::string& token,
                        const ContinueRequest& request = CloudRequest()) {
    grpc::ClientContext context;
    Prepare(token, &context);
    ContinueResponse response;
    return stub_->Continue(&context, request, &response);
  }

  grpc::Status ListModels(const std::string& token,
                          tandem::v1::ListCloudModelsResponse* response) {
    grpc::ClientContext context;
    Prepare(token, &context);
    return stub_->ListModels(&context, tandem::v1::ListCloudModelsRequest(),
                             response);
  }

 private:
  static void Prepare(const std::string& token, grpc::ClientContext* context) {
    context->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    if (!token.empty())
      context->AddMetadata("authorization", absl::StrCat("Bearer ", token));
  }

  std::unique_ptr<tandem::v1::CloudService::Stub> stub_;
};

class SecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (Env("TANDEM_MAKE_TEST_CA", "").empty() ||
        RunToCompletion({"openssl", "version"}).value_or(1) != 0) {
      GTEST_SKIP() << "needs openssl and TANDEM_MAKE_TEST_CA";
    }
    dir_ = MakeTempDir("security");
    ASSERT_OK(MakeCa(dir_ + "/ca"));
    ASSERT_OK(MakeCa(dir_ + "/other_ca"));
    Write(dir_ + "/tokens",
          absl::StrCat("# test tokens\n", kToken, "\n", kOtherModelToken,
                       " camera_branchy\n"));
    Write(dir_ + "/edge.token", absl::StrCat(kToken, "\n"));
    repository_ = Env("TANDEM_MODEL_REPOSITORY", "model_repository");
  }

  // Starts tandem-cloud on 127.0.0.1:0 with `flags`.
  void StartCloud(const std::vector<std::string>& flags) {
    Start({Env("TANDEM_CLOUD_BINARY", "tandem-cloud"), "--listen=127.0.0.1:0"},
          flags, "cloud", &cloud_, &cloud_address_);
  }

  // Starts tandem-edge on a unix socket and 127.0.0.1:0 with `flags`.
  void StartEdge(const std::vector<std::string>& flags) {
    Start({Env("TANDEM_EDGE_BINARY", "tandem-edge"),
           "--listen=unix:" + dir_ + "/edge.sock,127.0.0.1:0"},
          flags, "edge", &edge_, &edge_address_);
  }

  // Runs `argv` + the repository + a port file + `flags`, and waits for the
  // port: its TCP address goes to `address`.
  void Start(std::vector<std::string> argv,
             const std::vector<std::string>& flags, const std::string& name,
             std::unique_ptr<Subprocess>* daemon, std::string* address) {
    const std::string port_file = dir_ + "/" + name + ".port";
    argv.push_back("--model_repository=" + repository_);
    argv.push_back("--port_file=" + port_file);
    argv.insert(argv.end(), flags.begin(), flags.end());
    ASSERT_OK_AND_ASSIGN(Subprocess started, Subprocess::Start(argv));
    *daemon = std::make_unique<Subprocess>(std::move(started));
    ASSERT_OK_AND_ASSIGN(const int port, WaitForPortFile(port_file, **daemon,
                                                         absl::Seconds(60)));
    *address = absl::StrCat("127.0.0.1:", port);
  }

  std::vector<std::string> ServerTlsFlags(bool mutual) const {
    std::vector<std::string> flags = {"--tls_cert=" + dir_ + "/ca/server.pem",
                                      "--tls_key=" + dir_ + "/ca/server.key"};
    if (mutual) flags.push_back("--tls_client_ca=" + dir_ + "/ca/ca.pem");
    return flags;
  }

  absl::StatusOr<std::unique_ptr<Client>> EdgeClient(
      const std::string& address,
      std::shared_ptr<grpc::ChannelCredentials> credentials,
      const std::string& token) {
    ClientOptions options;
    options.credentials = std::move(credentials);
    options.bearer_token = token;
    options.connect_timeout = absl::Seconds(5);
    return Client::Connect(address, options);
  }

  absl::StatusOr<InferResult> InferOne(Client& client) {
    InferOptions options;
    options.deadline = absl::Seconds(10);
    options.top_k = 1;
    std::vector<float> pixels(28 * 28, 0.5f);
    options.split_point = 0;  // Offloaded, unless the cloud fails.
    return client.Infer(
        kModel, InputTensor::Fp32({1, 1, 28, 28}, pixels.data()), options);
  }

  std::string dir_;
  std::string repository_;
  std::unique_ptr<Subprocess> cloud_;
  std::unique_ptr<Subprocess> edge_;
  std::string cloud_address_;
  std::string edge_address_;
};

TEST_F(SecurityTest, MutualTlsAndTokensFromTheSdkThroughTheEdgeToTheCloud) {
  StartCloud([&] {
    auto flags = ServerTlsFlags(/*mutual=*/true);
    flags.push_back("--auth_tokens=" + dir_ + "/tokens");
    return flags;
  }());
  StartEdge([&] {
    auto flags = ServerTlsFlags(/*mutual=*/false);
    flags.insert(flags.end(), {"--auth_tokens=" + dir_ + "/tokens",
                               "--cloud=" + cloud_address_,
                               "--cloud_tls_ca=" + dir_ + "/ca/ca.pem",
                               "--cloud_tls_cert=" + dir_ + "/ca/client.pem",
                               "--cloud_tls_key=" + dir_ + "/ca/client.key",
                               "--cloud_token_file=" + dir_ + "/edge.token",
                               "--unix_socket_mode=0600"});
    return flags;
  }());

  // The SDK over TLS with the token: answered, by the cloud, over the
  // edge's mutual-TLS link with its own token.
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<Client> client,
      EdgeClient(edge_address_, Tls(dir_ + "/ca", false), kToken));
  ASSERT_OK_AND_ASSIGN(InferResult result, InferOne(*client));
  EXPECT_EQ(result.answered_by, InferResult::Site::kCloud)
      << result.fallback_reason;

  // The same over the unix socket, which stays plaintext: the token is
  // still needed, and the socket file is the owner's only.
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<Client> local,
      EdgeClient("unix:" + dir_ + "/edge.sock", nullptr, kToken));
  EXPECT_OK(InferOne(*local).status());
  struct stat socket_stat;
  ASSERT_EQ(stat((dir_ + "/edge.sock").c_str(), &socket_stat), 0);
  EXPECT_EQ(socket_stat.st_mode & 0777, 0600u);

  // No token, a wrong one, one for another model.
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> anonymous,
                       EdgeClient(edge_address_, Tls(dir_ + "/ca", false), ""));
  EXPECT_EQ(InferOne(*anonymous).status().code(),
            absl::StatusCode::kUnauthenticated);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> wrong,
                       EdgeClient(edge_address_, Tls(dir_ + "/ca", false),
                                  "not-a-token-0123456789abcdef"));
  EXPECT_EQ(InferOne(*wrong).status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(wrong->ListModels().status().code(),
            absl::StatusCode::kUnauthenticated);
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<Client> other,
      EdgeClient(edge_address_, Tls(dir_ + "/ca", false), kOtherModelToken));
  EXPECT_EQ(InferOne(*other).status().code(),
            absl::StatusCode::kPermissionDenied);
  ASSERT_OK_AND_ASSIGN(std::vector<ModelInfo> visible, other->ListModels());
  for (const ModelInfo& model : visible) EXPECT_NE(model.name, kModel);

  // Plaintext to a TLS port, and TLS trusting another CA: no connection.
  EXPECT_EQ(EdgeClient(edge_address_, nullptr, kToken).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(EdgeClient(edge_address_, Tls(dir_ + "/other_ca", false), kToken)
                .status()
                .code(),
            absl::StatusCode::kUnavailable);

  // The cloud wants a client certificate, then a token.
  EXPECT_EQ(CloudCaller(cloud_address_, Tls(dir_ + "/ca", false))
                .Continue(kToken)
                .error_code(),
            grpc::StatusCode::UNAVAILABLE);
  CloudCaller cloud(cloud_address_, Tls(dir_ + "/ca", true));
  EXPECT_EQ(cloud.Continue("").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(cloud.Continue(kOtherModelToken).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(cloud.Continue(kToken).ok());
  // Health needs no token (probes and gRPC's client-side health checks).
  auto health = grpc::health::v1::Health::NewStub(
      grpc::CreateChannel(cloud_address_, Tls(dir_ + "/ca", true)));
  grpc::ClientContext context;
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  EXPECT_TRUE(health->Check(&context, request, &response).ok());
}

TEST_F(SecurityTest, AnEdgeTheCloudRefusesAnswersLocally) {
  StartCloud({"--auth_tokens=" + dir_ + "/tokens"});
  Write(dir_ + "/wrong.token", "wrong-token-0123456789abcdef\n");
  StartEdge({"--cloud=" + cloud_address_,
             "--cloud_token_file=" + dir_ + "/wrong.token"});
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> client,
                       EdgeClient("unix:" + dir_ + "/edge.sock", nullptr, ""));
  ASSERT_OK_AND_ASSIGN(InferResult result, InferOne(*client));
  EXPECT_EQ(result.answered_by, InferResult::Site::kEdge);
  EXPECT_NE(result.fallback_reason.find("UNAUTHENTICATED"), std::string::npos)
      << result.fallback_reason;
}

TEST_F(SecurityTest, SighupReloadsTokensAndTheWatcherTheCertificates) {
  StartCloud([&] {
    auto flags = ServerTlsFlags(/*mutual=*/false);
    flags.insert(flags.end(),
                 {"--auth_tokens=" + dir_ + "/tokens", "--tls_refresh_s=1"});
    return flags;
  }());
  CloudCaller cloud(cloud_address_, Tls(dir_ + "/ca", false));
  ASSERT_TRUE(cloud.Continue(kToken).ok());

  // A new tokens file: after SIGHUP the old token is refused and the new
  // one served.
  const std::string fresh = "fresh-token-0123456789abcdef";
  Write(dir_ + "/tokens", fresh + "\n");
  cloud_->Signal(SIGHUP);
  EXPECT_TRUE(Eventually(
      [&] {
        return cloud.Continue(kToken).error_code() ==
               grpc::StatusCode::UNAUTHENTICATED;
      },
      absl::Seconds(20)));
  EXPECT_TRUE(cloud.Continue(fresh).ok());

  // A broken tokens file keeps the tokens in use.
  Write(dir_ + "/tokens", "short\n");
  cloud_->Signal(SIGHUP);
  absl::SleepFor(absl::Seconds(1));
  EXPECT_TRUE(cloud.Continue(fresh).ok());
  EXPECT_EQ(cloud_->Wait(absl::ZeroDuration()).status().code(),
            absl::StatusCode::kDeadlineExceeded);  // Still running.

  // New certificates from another CA, written over the old files: new
  // connections get them within the refresh interval.
  fs::copy_file(dir_ + "/other_ca/server.pem", dir_ + "/ca/server.pem",
                fs::copy_options::overwrite_existing);
  fs::copy_file(dir_ + "/other_ca/server.key", dir_ + "/ca/server.key",
                fs::copy_options::overwrite_existing);
  cloud_->Signal(SIGHUP);
  EXPECT_TRUE(Eventually(
      [&] {
        return CloudCaller(cloud_address_, Tls(dir_ + "/other_ca", false))
            .Continue(fresh)
            .ok();
      },
      absl::Seconds(20)));
  EXPECT_EQ(CloudCaller(cloud_address_, Tls(dir_ + "/ca", false))
                .Continue(fresh)
                .error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(SecurityTest, LimitsRefuseWithResourceExhausted) {
  // One request in flight per client; requests wait up to 1 s for a batch.
  Write(dir_ + "/cloud.pbtxt",
        "limits { max_inflight_per_client: 1 }\n"
        "max_batch_size: 8\n"
        "dynamic_batching { max_queue_delay_microseconds: 1000000 }\n");
  StartCloud({"--config=" + dir_ + "/cloud.pbtxt"});
  CloudCaller cloud(cloud_address_, grpc::InsecureChannelCredentials());
  ASSERT_TRUE(cloud.Continue("").ok());  // Warm: connected, model ready.

  std::thread first([&] { EXPECT_TRUE(cloud.Continue("").ok()); });
  absl::SleepFor(absl::Milliseconds(300));  // The first waits in the queue.
  const grpc::Status second = cloud.Continue("");
  first.join();
  EXPECT_EQ(second.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << second.error_message();
  EXPECT_NE(second.error_message().find("max_inflight_per_client"),
            std::string::npos);
  EXPECT_TRUE(cloud.Continue("").ok());  // The slot came back.
}

TEST_F(SecurityTest, TensorBytesInFlightAreCapped) {
  // Less than one Fashion-MNIST input decoded (3136 bytes).
  Write(dir_ + "/cloud.pbtxt", "limits { max_inflight_tensor_bytes: 3000 }\n");
  StartCloud({"--config=" + dir_ + "/cloud.pbtxt"});
  CloudCaller cloud(cloud_address_, grpc::InsecureChannelCredentials());
  const grpc::Status status = cloud.Continue("");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << status.error_message();
  EXPECT_NE(status.error_message().find("max_inflight_tensor_bytes"),
            std::string::npos);
}

TEST_F(SecurityTest, BadSecurityFilesStopTheStartWithTheReason) {
  Write(dir_ + "/short_tokens", "short\n");
  for (const std::vector<std::string>& flags :
       std::vector<std::vector<std::string>>{
           {"--auth_tokens=" + dir_ + "/short_tokens"},
           {"--tls_cert=" + dir_ + "/ca/server.pem",
            "--tls_key=" + dir_ + "/ca/client.key"},   // Not its key.
           {"--tls_cert=" + dir_ + "/ca/server.pem"},  // No key.
           {"--unix_socket_mode=999"}}) {
    std::vector<std::string> argv = {Env("TANDEM_CLOUD_BINARY", "tandem-cloud"),
                                     "--listen=127.0.0.1:0",
                                     "--model_repository=" + repository_};
    argv.insert(argv.end(), flags.begin(), flags.end());
    ASSERT_OK_AND_ASSIGN(Subprocess cloud, Subprocess::Start(argv));
    ASSERT_OK_AND_ASSIGN(int exit_status, cloud.Wait(absl::Seconds(30)));
    EXPECT_NE(exit_status, 0) << flags[0];
  }
}

}  // namespace
}  // namespace tandem
