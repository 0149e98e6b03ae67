// Client SDK of the Tandem edge agent: classify inputs with a progressive
// model that the agent splits between the device and the cloud.
//
// Links gRPC, the generated protos and abseil only (no LibTorch), so any
// application can embed it.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<tandem::Client> client,
//                    tandem::Client::Connect("unix:/run/tandem/edge.sock"));
//   tandem::InferOptions options;
//   options.deadline = absl::Milliseconds(50);
//   ASSIGN_OR_RETURN(tandem::InferResult result,
//                    client->Infer("fmnist_branchy",
//                                  tandem::InputTensor::Pixels({1, 1, 28, 28},
//                                                              pixels),
//                                  options));
//   std::cout << result.top_k[0].label;
#ifndef TANDEM_EDGE_SDK_TANDEM_CLIENT_H_
#define TANDEM_EDGE_SDK_TANDEM_CLIENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/security/credentials.h"
#include "tandem/v1/edge_service.grpc.pb.h"
#include "tandem/v1/profile.pb.h"
#include "tandem/v1/tensor.pb.h"

namespace tandem {

// One input tensor, batch dimension included in `shape` (e.g. {1, 1, 28, 28}).
// `data` holds the payload row-major and little-endian, as `encoding` says.
struct InputTensor {
  std::string datatype;  // KServe v2 name of the decoded type: "FP32", ...
  std::vector<int64_t> shape;
  std::string data;
  tandem::v1::Encoding encoding = tandem::v1::ENCODING_RAW;
  // ENCODING_AFFINE_UINT8: x = scale * (q - zero_point), one per tensor.
  std::vector<float> scale;
  std::vector<int32_t> zero_point;

  // FP32 values, exact; reads product(shape) floats from `values`.
  static InputTensor Fp32(std::vector<int64_t> shape, const float* values);
  // 8-bit pixels that the model sees as pixel / 255 in [0, 1]: sent as FP32
  // with ENCODING_AFFINE_UINT8 (scale 1/255, zero point 0), one byte per
  // value, the cheapest way to send an image. Reads product(shape) bytes.
  static InputTensor Pixels(std::vector<int64_t> shape, const uint8_t* pixels);
};

// How one request should run. The defaults leave every decision to the
// agent's current plan.
struct InferOptions {
  // Also the gRPC deadline of the call.
  absl::Duration deadline = absl::InfiniteDuration();
  // Least calibrated accuracy acceptable; 0 for none.
  float min_accuracy = 0;
  // Force the split point (experiments): 0 cloud-only, N edge-only.
  std::optional<int> split_point;
  // Force the encoding of the offloaded tensor (experiments).
  std::optional<tandem::v1::Encoding> encoding;
  // When the cloud fails and the edge cannot finish before the deadline,
  // answer with the best exit computed so far instead of an error.
  bool allow_partial = false;
  // Run every request to the final exit.
  bool disable_early_exits = false;
  int top_k = 1;
  std::string id;             // Echoed in InferResult::id.
  std::string model_version;  // Empty: the newest version.
  // Real time: the task the request belongs to (the agent's config declares
  // its criticality, deadline and accuracy floor), and a criticality of its
  // own (larger is more critical) overriding the task's.
  std::string task;
  std::optional<int> criticality;
};

// The answer to one request, in plain C++ types.
struct InferResult {
  enum class Site { kUnknown, kEdge, kCloud };

  struct ClassScore {
    int index = 0;
    std::string label;
    float probability = 0;
  };

  // Zero where a stage did not run.
  struct Timings {
    absl::Duration edge_compute;  // Blocks and exit heads on the edge.
    absl::Duration encode;        // Encoding the offloaded tensor.
    absl::Duration transfer;      // Cloud round trip minus queue and compute.
    absl::Duration cloud_queue;
    absl::Duration cloud_compute;
    absl::Duration edge_queue;  // Waiting in the agent's scheduler.
    absl::Duration total;       // As the agent saw it, receipt to reply.
  };

  std::string id;
  std::string model_version;
  std::vector<ClassScore> top_k;  // Most probable first.
  int exit_block = -1;            // The block whose exit head answered.
  Site answered_by = Site::kUnknown;
  int split_point = 0;  // The split the request used.
  Timings timings;
  int64_t bytes_sent = 0;  // Payload bytes the agent sent to the cloud.
  // Why the edge finished blocks meant for the cloud; empty when it did not.
  std::string fallback_reason;
  float confidence = 0;  // Max softmax probability of the answering exit.
  // Edge energy for the request; modelled unless energy_measured.
  double energy_mj = 0;
  bool energy_measured = false;
  // Real time: the task; the scaling level the answer was computed at (0:
  // the full plan); the rows of the batch its last edge block ran in; and
  // whether the scheduler cut it short (answered from its best exit).
  std::string task;
  int scaling_level = 0;
  int batch_size = 1;
  bool cut_short = false;
  // Measured by the SDK around the call: what the application waited.
  absl::Duration client_latency;
};

// "edge", "cloud" or "unknown".
absl::string_view SiteName(InferResult::Site site);

// A model the agent serves.
struct ModelInfo {
  std::string name;
  std::string version;
  int num_blocks = 0;
  std::vector<int> exit_blocks;
  std::vector<int64_t> input_shape;
  std::string input_datatype;
  bool trained = false;  // False for architecture-only (random) models.
};

struct ClientOptions {
  // Largest message sent or received.
  int max_message_bytes = 64 << 20;
  // Null: an insecure channel (unix sockets, loopback). TLS:
  // grpc::SslCredentials({pem_root_certs, pem_private_key, pem_cert_chain}).
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  // The name the agent's certificate must carry when it is not the
  // address's host (e.g. connecting by IP to a certificate for a name).
  std::string tls_server_name;
  // Non-empty: sent as `authorization: Bearer <token>` on every call.
  std::string bearer_token;
  // How long Connect waits for the channel to become ready.
  absl::Duration connect_timeout = absl::Seconds(5);
  // Deadline of ListModels and GetPlan (Infer uses InferOptions::deadline).
  absl::Duration rpc_timeout = absl::Seconds(30);
  // While the agent is unreachable (restarting, say) calls fail at once with
  // UNAVAILABLE and the channel retries the connection, backing off from
  // 100 ms up to this; the first call after the agent is back succeeds
  // within about this long. gRPC's own default backs off to 120 s.
  absl::Duration max_reconnect_backoff = absl::Seconds(1);
  // gRPC shares one connection among all the channels of a process that go
  // to the same address with the same options. True: this Client gets a
  // connection of its own (as a separate application process would).
  bool own_connection = false;
};

// A connection to one edge agent. Thread-safe: one Client may serve many
// threads at once. The destructor waits for outstanding InferAsync calls to
// run their callbacks. Each Client keeps one background thread that drives
// the connection while the agent is unreachable (see WatchConnection).
class Client {
 public:
  using InferCallback = std::function<void(absl::StatusOr<InferResult>)>;

  // `address` is "unix:/path/to.sock" or "host:port". UNAVAILABLE when the
  // agent is not ready within `options.connect_timeout`.
  static absl::StatusOr<std::unique_ptr<Client>> Connect(
      const std::string& address, const ClientOptions& options = {});

  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Classifies `input` with `model`. Errors keep the agent's status code
  // (NOT_FOUND for an unknown model, DEADLINE_EXCEEDED, ...).
  absl::StatusOr<InferResult> Infer(const std::string& model,
                                    const InputTensor& input,
                                    const InferOptions& options = {});

  // As Infer, without blocking: `done` (not empty) runs once, on a gRPC
  // thread, and should not block it for long.
  void InferAsync(const std::string& model, const InputTensor& input,
                  const InferOptions& options, InferCallback done);

  absl::StatusOr<std::vector<ModelInfo>> ListModels();

  // The plan the agent currently uses for `model`.
  absl::StatusOr<tandem::v1::Plan> GetPlan(const std::string& model);
  // The plan under what-if conditions, optionally with every alternative.
  absl::StatusOr<tandem::v1::Plan> GetPlan(
      const tandem::v1::GetPlanRequest& request);
  // The agent's measurements of a model, for offline planning.
  absl::StatusOr<tandem::v1::SavedProfile> GetProfile(const std::string& model);

 private:
  Client(std::shared_ptr<grpc::Channel> channel, const ClientOptions& options);

  // Sets the deadline (none when infinite) and the bearer token.
  void PrepareContext(grpc::ClientContext* context,
                      absl::Duration deadline) const;
  void FinishAsyncCall();
  // Runs on `watcher_` until the destructor: while the channel is
  // connecting or failing, waits on its state, which polls the connection
  // attempt. Without it nothing would: calls fail at once without touching
  // the connection, and gRPC 1.51 then reads a new connection's handshake
  // only from its 5 s backup poller (grpc/grpc#28866), so an agent back from
  // a restart would be reached seconds late, or its handshake would time out
  // and the wait begin again.
  void WatchConnection();

  const std::shared_ptr<grpc::Channel> channel_;
  const std::unique_ptr<tandem::v1::EdgeService::Stub> stub_;
  const std::string bearer_token_;
  const absl::Duration rpc_timeout_;

  absl::Mutex mu_;
  int outstanding_async_calls_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Last: starts once every other member is initialized.
  std::thread watcher_;
};

}  // namespace tandem

#endif  // TANDEM_EDGE_SDK_TANDEM_CLIENT_H_
