// The framework's own cost per offloaded request: client-observed latency
// minus the model compute on the edge and in the cloud. Everything else -
// two gRPC hops (SDK -> agent over a unix socket, agent -> cloud over TCP
// loopback), queueing, decoding, encoding, copying - is overhead.
//
//   build/bench/split_overhead_bench [--requests=2000]
//   [--models=fmnist_branchy,camera_branchy]
//
// Prints one JSON object: per model, p50/p99/mean overhead in ms and the
// compute it was measured against, and the baseline it is judged by: the
// same bytes through two bare gRPC hops of the same kinds (a unix-socket
// server whose handler forwards over TCP loopback to a server that answers
// at once, both on gRPC's callback threads), one bare request after every
// Tandem request. `overhead_vs_bare_grpc` is Tandem's overhead p50 over the
// bare round trip's p50. Servers run in this process.
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "cloud/cloud_server.h"
#include "common/stats.h"
#include "edge/edge_server.h"
#include "grpcpp/grpcpp.h"
#include "tandem/client.h"
#include "tandem/v1/cloud_service.grpc.pb.h"
#include "tandem/v1/edge_service.grpc.pb.h"

ABSL_FLAG(int, requests, 2000,
          "Measured requests per model (after 50 warm-up requests)");
ABSL_FLAG(std::vector<std::string>, models,
          std::vector<std::string>({"fmnist_branchy", "camera_branchy"}),
          "Models to measure");
ABSL_FLAG(std::string, model_repository, "build/model_repository",
          "Model repository");
ABSL_FLAG(int, split, 2, "Split point used (blocks [0, k) on the edge)");

namespace tandem {
namespace {

using tandem::v1::ContinueRequest;
using tandem::v1::ContinueResponse;
using tandem::v1::InferRequest;
using tandem::v1::InferResponse;

// Hop 2 of the baseline: answers every Continue at once.
class BareCloud : public tandem::v1::CloudService::CallbackService {
  grpc::ServerUnaryReactor* Continue(grpc::CallbackServerContext* context,
                                     const ContinueRequest* request,
                                     ContinueResponse* response) override {
    response->set_id(request->id());
    response->add_top_k()->set_index(0);
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

// Hop 1 of the baseline: forwards `offload_bytes` of payload per Infer.
class BareEdge : public tandem::v1::EdgeService::CallbackService {
 public:
  explicit BareEdge(std::shared_ptr<grpc::Channel> cloud)
      : stub_(tandem::v1::CloudService::NewStub(std::move(cloud))) {}
  void set_offload_bytes(int64_t bytes) { payload_.assign(bytes, '\x01'); }

  grpc::ServerUnaryReactor* Infer(grpc::CallbackServerContext* context,
                                  const InferRequest* request,
                                  InferResponse* response) override {
    struct Call {
      grpc::ClientContext context;
      ContinueRequest request;
      ContinueResponse response;
    };
    auto* call = new Call;
    call->request.set_model_name(request->model_name());
    call->request.set_id(request->id());
    *call->request.add_raw_input_contents() = payload_;
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    stub_->async()->Continue(&call->context, &call->request, &call->response,
                             [call, reactor, response](grpc::Status status) {
                               *response->mutable_top_k() =
                                   call->response.top_k();
                               delete call;
                               reactor->Finish(status);
                             });
    return reactor;
  }

 private:
  std::unique_ptr<tandem::v1::CloudService::Stub> stub_;
  std::string payload_;
};

struct Summary {
  SampleWindow overhead_ms{1 << 20}, total_ms{1 << 20}, compute_ms{1 << 20},
      bare_ms{1 << 20};
  // Where the overhead went, as the agent's timings split it.
  SampleWindow client_hop_ms{1 << 20}, edge_queue_ms{1 << 20},
      encode_ms{1 << 20}, transfer_ms{1 << 20}, cloud_queue_ms{1 << 20},
      agent_rest_ms{1 << 20};
  int64_t bytes = 0;
};

double Ms(absl::Duration d) { return absl::ToDoubleMilliseconds(d); }

// The overhead's parts, p50 each: the SDK <-> agent hop (client latency
// minus the agent's receipt-to-reply), waiting in the agent's scheduler,
// encoding, the cloud round trip net of the cloud's queue and compute, the
// cloud's queue, and the rest of the agent's time (decoding, planning,
// hand-offs between threads, building the reply).
std::string BreakdownJson(Summary& s) {
  return absl::StrFormat(
      "{\"client_hop\": %.4f, \"edge_queue\": %.4f, \"encode\": %.4f, "
      "\"cloud_round_trip\": %.4f, \"cloud_queue\": %.4f, "
      "\"agent_rest\": %.4f}",
      s.client_hop_ms.Percentile(50), s.edge_queue_ms.Percentile(50),
      s.encode_ms.Percentile(50), s.transfer_ms.Percentile(50),
      s.cloud_queue_ms.Percentile(50), s.agent_rest_ms.Percentile(50));
}

int Main() {
  const std::string repo = absl::GetFlag(FLAGS_model_repository);
  tandem::v1::CloudConfig cloud_config;
  cloud_config.set_listen("127.0.0.1:0");
  cloud_config.set_model_repository(repo);
  cloud_config.set_worker_threads(1);
  auto cloud = CloudServer::Start(cloud_config);
  if (!cloud.ok()) {
    std::cerr << cloud.status() << "\n";
    return 1;
  }
  const std::string socket = (std::filesystem::temp_directory_path() /
                              absl::StrCat("tandem_bench_", getpid(), ".sock"))
                                 .string();
  tandem::v1::EdgeConfig edge_config;
  edge_config.add_listen("unix:" + socket);
  edge_config.set_cloud(absl::StrCat("127.0.0.1:", (*cloud)->port()));
  edge_config.set_model_repository(repo);
  edge_config.set_worker_threads(1);
  auto edge = EdgeServer::Start(edge_config);
  if (!edge.ok()) {
    std::cerr << edge.status() << "\n";
    return 1;
  }
  auto client = Client::Connect("unix:" + socket);
  if (!client.ok()) {
    std::cerr << client.status() << "\n";
    return 1;
  }
  auto models = (*client)->ListModels();
  if (!models.ok()) {
    std::cerr << models.status() << "\n";
    return 1;
  }

  // The baseline's two hops, of the same kinds as the agent's.
  BareCloud bare_cloud;
  int bare_cloud_port = 0;
  grpc::ServerBuilder cloud_builder;
  cloud_builder.AddListeningPort(
      "127.0.0.1:0", grpc::InsecureServerCredentials(), &bare_cloud_port);
  cloud_builder.RegisterService(&bare_cloud);
  std::unique_ptr<grpc::Server> bare_cloud_server =
      cloud_builder.BuildAndStart();
  BareEdge bare_edge(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", bare_cloud_port),
                          grpc::InsecureChannelCredentials()));
  const std::string bare_socket = socket + ".bare";
  grpc::ServerBuilder edge_builder;
  edge_builder.AddListeningPort("unix:" + bare_socket,
                                grpc::InsecureServerCredentials());
  edge_builder.RegisterService(&bare_edge);
  std::unique_ptr<grpc::Server> bare_edge_server = edge_builder.BuildAndStart();
  if (bare_cloud_server == nullptr || bare_edge_server == nullptr) {
    std::cerr << "cannot start the bare gRPC servers\n";
    return 1;
  }
  auto bare_stub = tandem::v1::EdgeService::NewStub(grpc::CreateChannel(
      "unix:" + bare_socket, grpc::InsecureChannelCredentials()));

  std::vector<std::string> entries;
  for (const std::string& name : absl::GetFlag(FLAGS_models)) {
    const ModelInfo* info = nullptr;
    for (const ModelInfo& m : *models) {
      if (m.name == name) info = &m;
    }
    if (info == nullptr) {
      std::cerr << "unknown model " << name << "\n";
      return 1;
    }
    std::vector<int64_t> shape = info->input_shape;
    shape[0] = 1;
    int64_t elements = 1;
    for (int64_t d : shape) elements *= d;
    std::vector<float> input(elements);
    for (int64_t i = 0; i < elements; ++i)
      input[i] = static_cast<float>(i % 255) / 255.0f;
    const InputTensor tensor = InputTensor::Fp32(shape, input.data());
    InferOptions options;
    options.split_point = absl::GetFlag(FLAGS_split);
    options.disable_early_exits = true;
    Summary summary;
    const int requests = absl::GetFlag(FLAGS_requests);
    for (int i = -50; i < requests; ++i) {
      auto result = (*client)->Infer(name, tensor, options);
      if (!result.ok() || result->answered_by != InferResult::Site::kCloud) {
        std::cerr << name << ": request failed or not offloaded: "
                  << (result.ok() ? result->fallback_reason
                                  : result.status().ToString())
                  << "\n";
        return 1;
      }
      // The same bytes through the bare hops: the client's tensor in, the
      // offloaded tensor's size forwarded.
      bare_edge.set_offload_bytes(result->bytes_sent);
      InferRequest bare_request;
      bare_request.set_model_name(name);
      bare_request.set_id("bare");
      bare_request.add_inputs()->set_datatype("FP32");
      bare_request.add_raw_input_contents()->assign(
          reinterpret_cast<const char*>(input.data()),
          input.size() * sizeof(float));
      InferResponse bare_response;
      grpc::ClientContext bare_context;
      const absl::Time bare_start = absl::Now();
      const grpc::Status bare_status =
          bare_stub->Infer(&bare_context, bare_request, &bare_response);
      const absl::Duration bare_latency = absl::Now() - bare_start;
      if (!bare_status.ok()) {
        std::cerr << "bare gRPC request failed: " << bare_status.error_message()
                  << "\n";
        return 1;
      }
      if (i < 0) continue;  // Warm-up.
      summary.bare_ms.Add(absl::ToDoubleMilliseconds(bare_latency));
      const absl::Duration compute =
          result->timings.edge_compute + result->timings.cloud_compute;
      summary.overhead_ms.Add(
          absl::ToDoubleMilliseconds(result->client_latency - compute));
      summary.total_ms.Add(absl::ToDoubleMilliseconds(result->client_latency));
      summary.compute_ms.Add(absl::ToDoubleMilliseconds(compute));
      const InferResult::Timings& t = result->timings;
      summary.client_hop_ms.Add(Ms(result->client_latency - t.total));
      summary.edge_queue_ms.Add(Ms(t.edge_queue));
      summary.encode_ms.Add(Ms(t.encode));
      summary.transfer_ms.Add(Ms(t.transfer));
      summary.cloud_queue_ms.Add(Ms(t.cloud_queue));
      summary.agent_rest_ms.Add(Ms(t.total - t.edge_compute - t.encode -
                                   t.transfer - t.cloud_queue -
                                   t.cloud_compute - t.edge_queue));
      summary.bytes = result->bytes_sent;
      if ((i + 1) % (requests / 10 > 0 ? requests / 10 : 1) == 0) {
        std::cerr << name << ": " << (i + 1) << "/" << requests
                  << " requests\n";
      }
    }
    const double overhead_p50 = summary.overhead_ms.Percentile(50);
    const double bare_p50 = summary.bare_ms.Percentile(50);
    entries.push_back(absl::StrFormat(
        "\"%s\": {\"requests\": %d, \"split\": %d, \"bytes_sent\": %d, "
        "\"overhead_ms\": {\"p50\": %.4f, \"p99\": %.4f, \"mean\": %.4f}, "
        "\"total_ms\": {\"p50\": %.4f, \"p99\": %.4f}, \"compute_ms\": "
        "{\"p50\": %.4f}, \"bare_grpc_two_hops_ms\": {\"p50\": %.4f, "
        "\"p99\": %.4f}, \"overhead_p50_ms\": %.4f, "
        "\"overhead_vs_bare_grpc\": %.4f, \"overhead_p50_parts_ms\": %s}",
        name, requests, options.split_point.value(), summary.bytes,
        overhead_p50, summary.overhead_ms.Percentile(99),
        summary.overhead_ms.Mean(), summary.total_ms.Percentile(50),
        summary.total_ms.Percentile(99), summary.compute_ms.Percentile(50),
        bare_p50, summary.bare_ms.Percentile(99), overhead_p50,
        bare_p50 > 0 ? overhead_p50 / bare_p50 : 0.0, BreakdownJson(summary)));
  }
  std::cout << "{" << absl::StrJoin(entries, ", ") << "}\n";
  client->reset();
  bare_edge_server->Shutdown();
  bare_cloud_server->Shutdown();
  (*edge)->Shutdown();
  (*cloud)->Shutdown();
  return 0;
}

}  // namespace
}  // namespace tandem

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return tandem::Main();
}
