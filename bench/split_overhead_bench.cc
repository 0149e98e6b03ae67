// The framework's own cost per offloaded request: client-observed latency
// minus the model compute on the edge and in the cloud. Everything else -
// two gRPC hops (SDK -> agent over a unix socket, agent -> cloud over TCP
// loopback), queueing, decoding, encoding, copying - is overhead.
//
//   build/bench/split_overhead_bench [--requests=2000]
//   [--models=fmnist_branchy,camera_branchy]
//
// Prints one JSON object: per model, p50/p99/mean overhead in ms and the
// compute it was measured against, and three baselines over the same two
// hops (a unix-socket server whose handler forwards over TCP loopback to a
// second server, both answering on gRPC's callback threads), each called
// once after every Tandem request (the two bare ones taking turns first):
// - bare gRPC: the same bytes, handlers that do nothing else
//   (`overhead_vs_bare_grpc`: Tandem's overhead p50 over its round trip's
//   p50). Where its time goes, as Tandem's is split: `bare_grpc_parts_ms`.
// - bare gRPC with hand-offs: the same, but each handler passes its work to
//   a thread of its own (the agent's handler hands a request to its worker,
//   the cloud's to a batcher instance) and that thread forwards or answers
//   (`overhead_vs_bare_grpc_handoff`). It prices the two thread hand-offs
//   the agent's scheduler and the cloud's batcher cost by design.
// - the same model by hand: the first hop runs blocks [0, split) and
//   forwards the activation's FP32 bytes, the second runs the rest and the
//   final exit, with no queue, scheduler, planner or metrics
//   (`overhead_vs_bare_pipeline`: overhead p50 over its overhead p50, each
//   its latency minus the compute it timed). It tells the framework's own
//   cost from what any two hops cost when real compute lies between them.
// Servers run in this process.
#include <torch/torch.h>

#include <atomic>
#include <deque>
#include <filesystem>
#include <functional>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "cloud/cloud_server.h"
#include "common/daemon.h"
#include "common/stats.h"
#include "edge/edge_server.h"
#include "grpcpp/grpcpp.h"
#include "models/model_repository.h"
#include "models/progressive_model.h"
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

// One thread that runs what is posted to it, in order: the hand-off of the
// baseline with hand-offs. It waits as the agent's worker and the cloud's
// batcher instances do (on an absl::Mutex), so a post wakes a sleeping thread.
class HandOffThread {
 public:
  HandOffThread() : thread_([this] { Loop(); }) {}
  ~HandOffThread() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    thread_.join();
  }

  void Post(std::function<void()> work) {
    absl::MutexLock lock(&mu_);
    queue_.push_back(std::move(work));
  }

 private:
  void Loop() {
    while (true) {
      std::function<void()> work;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(
            +[](HandOffThread* t) ABSL_EXCLUSIVE_LOCKS_REQUIRED(t->mu_) {
              return t->stopping_ || !t->queue_.empty();
            },
            this));
        if (queue_.empty()) return;
        work = std::move(queue_.front());
        queue_.pop_front();
      }
      work();
    }
  }

  absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// Hop 2 of the baseline: answers every Continue at once, or from
// `hand_off`'s thread when there is one.
class BareCloud : public tandem::v1::CloudService::CallbackService {
 public:
  explicit BareCloud(HandOffThread* hand_off = nullptr) : hand_off_(hand_off) {}

  grpc::ServerUnaryReactor* Continue(grpc::CallbackServerContext* context,
                                     const ContinueRequest* request,
                                     ContinueResponse* response) override {
    response->set_id(request->id());
    response->add_top_k()->set_index(0);
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    if (hand_off_ == nullptr) {
      reactor->Finish(grpc::Status::OK);
    } else {
      hand_off_->Post([reactor] { reactor->Finish(grpc::Status::OK); });
    }
    return reactor;
  }

 private:
  HandOffThread* const hand_off_;
};

// Hop 1 of the baseline: forwards `offload_bytes` of payload per Infer, from
// `hand_off`'s thread when there is one. The answer is sent from gRPC's
// callback thread, as the agent sends the cloud's.
class BareEdge : public tandem::v1::EdgeService::CallbackService {
 public:
  explicit BareEdge(std::shared_ptr<grpc::Channel> cloud,
                    HandOffThread* hand_off = nullptr)
      : stub_(tandem::v1::CloudService::NewStub(std::move(cloud))),
        hand_off_(hand_off) {}
  void set_offload_bytes(int64_t bytes) { payload_.assign(bytes, '\x01'); }
  // Receipt to reply of the last call: the cloud round trip.
  absl::Duration last_handled() const {
    return absl::Nanoseconds(last_handled_ns_.load());
  }

  grpc::ServerUnaryReactor* Infer(grpc::CallbackServerContext* context,
                                  const InferRequest* request,
                                  InferResponse* response) override {
    struct Call {
      grpc::ClientContext context;
      ContinueRequest request;
      ContinueResponse response;
    };
    auto* call = new Call;
    const absl::Time received = absl::Now();
    call->request.set_model_name(request->model_name());
    call->request.set_id(request->id());
    *call->request.add_raw_input_contents() = payload_;
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    auto forward = [this, call, reactor, response, received] {
      stub_->async()->Continue(
          &call->context, &call->request, &call->response,
          [this, call, reactor, response, received](grpc::Status status) {
            *response->mutable_top_k() = call->response.top_k();
            delete call;
            last_handled_ns_.store(
                absl::ToInt64Nanoseconds(absl::Now() - received));
            reactor->Finish(status);
          });
    };
    if (hand_off_ == nullptr) {
      forward();
    } else {
      hand_off_->Post(std::move(forward));
    }
    return reactor;
  }

 private:
  std::unique_ptr<tandem::v1::CloudService::Stub> stub_;
  HandOffThread* const hand_off_;
  std::string payload_;
  std::atomic<int64_t> last_handled_ns_{0};
};

// A plaintext server of `service` on `address` (its port, when asked for,
// in `*port`); null when it cannot start.
std::unique_ptr<grpc::Server> StartServer(const std::string& address,
                                          grpc::Service* service,
                                          int* port = nullptr) {
  grpc::ServerBuilder builder;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), port);
  builder.RegisterService(service);
  return builder.BuildAndStart();
}

// A baseline's two hops: a unix-socket BareEdge forwarding over TCP
// loopback to a BareCloud, with their hand-off threads (or none). Members
// start in order: the cloud, then the edge that dials it.
class BareHops {
  int cloud_port_ = 0;  // Set by the cloud's server; first, to be set first.

 public:
  static absl::StatusOr<std::unique_ptr<BareHops>> Start(
      const std::string& socket, HandOffThread* edge_thread,
      HandOffThread* cloud_thread) {
    auto hops = std::unique_ptr<BareHops>(
        new BareHops(socket, edge_thread, cloud_thread));
    if (hops->cloud_server == nullptr || hops->edge_server == nullptr)
      return absl::UnavailableError("cannot start the bare gRPC servers");
    return hops;
  }

  void Shutdown() {
    edge_server->Shutdown();
    cloud_server->Shutdown();
  }

  BareCloud cloud;
  std::unique_ptr<grpc::Server> cloud_server;
  BareEdge edge;
  std::unique_ptr<grpc::Server> edge_server;
  std::unique_ptr<tandem::v1::EdgeService::Stub> stub;

 private:
  BareHops(const std::string& socket, HandOffThread* edge_thread,
           HandOffThread* cloud_thread)
      : cloud(cloud_thread),
        cloud_server(StartServer("127.0.0.1:0", &cloud, &cloud_port_)),
        edge(grpc::CreateChannel(absl::StrCat("127.0.0.1:", cloud_port_),
                                 grpc::InsecureChannelCredentials()),
             edge_thread),
        edge_server(StartServer("unix:" + socket, &edge)),
        stub(tandem::v1::EdgeService::NewStub(grpc::CreateChannel(
            "unix:" + socket, grpc::InsecureChannelCredentials()))) {}
};

// One sample's FP32 bytes as a tensor of [1, shape...], or why not.
absl::StatusOr<at::Tensor> FromBytes(const std::string& bytes,
                                     const std::vector<int64_t>& shape) {
  std::vector<int64_t> sizes = {1};
  sizes.insert(sizes.end(), shape.begin(), shape.end());
  int64_t elements = 1;
  for (int64_t d : sizes) elements *= d;
  if (static_cast<int64_t>(bytes.size()) != elements * 4)
    return absl::InvalidArgumentError("not one FP32 sample of the shape");
  return at::from_blob(const_cast<char*>(bytes.data()), sizes, at::kFloat)
      .clone();
}

// The compute of the hand-made pipeline runs on gRPC's threads with the
// daemons' intra-op setting (one thread; an OpenMP setting is per thread).
void OneIntraOpThread() {
  thread_local bool set = false;
  if (!set) at::set_num_threads(1);
  set = true;
}

// Hop 2 of the hand-made pipeline: the rest of the blocks and the final
// exit, answered inline.
class PipelineCloud : public tandem::v1::CloudService::CallbackService {
 public:
  explicit PipelineCloud(const ModelRepository* models) : models_(models) {}

  grpc::ServerUnaryReactor* Continue(grpc::CallbackServerContext* context,
                                     const ContinueRequest* request,
                                     ContinueResponse* response) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    const absl::Status status = Run(*request, response);
    reactor->Finish(status.ok() ? grpc::Status::OK
                                : grpc::Status(grpc::StatusCode::INTERNAL,
                                               std::string(status.message())));
    return reactor;
  }

 private:
  absl::Status Run(const ContinueRequest& request,
                   ContinueResponse* response) const {
    OneIntraOpThread();
    auto model = models_->Get(request.model_name());
    if (!model.ok()) return model.status();
    const int split = request.start_block();
    const int last = (*model)->num_blocks();
    if (request.raw_input_contents_size() != 1 || split < 0 || split >= last)
      return absl::InvalidArgumentError("one input and a start block");
    auto x = FromBytes(request.raw_input_contents(0),
                       (*model)->BlockInputShape(split));
    if (!x.ok()) return x.status();
    const absl::Time start = absl::Now();
    auto out = (*model)->RunBlocks(*x, split, last);
    if (!out.ok()) return out.status();
    auto exit = (*model)->EvaluateExit(last - 1, *out);
    if (!exit.ok()) return exit.status();
    response->set_compute_us(absl::ToInt64Microseconds(absl::Now() - start));
    response->set_id(request.id());
    auto* top = response->add_top_k();
    top->set_index(exit->predicted[0]);
    top->set_probability(exit->confidence[0]);
    return absl::OkStatus();
  }

  const ModelRepository* models_;
};

// Hop 1 of the hand-made pipeline: blocks [0, split) inline, their output's
// FP32 bytes forwarded. Answers with both hops' compute in its timings.
class PipelineEdge : public tandem::v1::EdgeService::CallbackService {
 public:
  PipelineEdge(const ModelRepository* models, int split,
               std::shared_ptr<grpc::Channel> cloud)
      : models_(models),
        split_(split),
        stub_(tandem::v1::CloudService::NewStub(std::move(cloud))) {}

  grpc::ServerUnaryReactor* Infer(grpc::CallbackServerContext* context,
                                  const InferRequest* request,
                                  InferResponse* response) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    struct Call {
      grpc::ClientContext context;
      ContinueRequest request;
      ContinueResponse response;
    };
    auto call = std::make_unique<Call>();
    const absl::Status status = RunEdge(*request, &call->request, response);
    if (!status.ok()) {
      reactor->Finish(grpc::Status(grpc::StatusCode::INTERNAL,
                                   std::string(status.message())));
      return reactor;
    }
    Call* raw = call.release();
    stub_->async()->Continue(
        &raw->context, &raw->request, &raw->response,
        [raw, reactor, response](grpc::Status status) {
          *response->mutable_top_k() = raw->response.top_k();
          response->mutable_timings()->set_cloud_compute_us(
              raw->response.compute_us());
          delete raw;
          reactor->Finish(status);
        });
    return reactor;
  }

 private:
  absl::Status RunEdge(const InferRequest& request, ContinueRequest* offload,
                       InferResponse* response) const {
    OneIntraOpThread();
    auto model = models_->Get(request.model_name());
    if (!model.ok()) return model.status();
    if (request.raw_input_contents_size() != 1)
      return absl::InvalidArgumentError("one input");
    auto x =
        FromBytes(request.raw_input_contents(0), (*model)->BlockInputShape(0));
    if (!x.ok()) return x.status();
    const absl::Time start = absl::Now();
    auto out = (*model)->RunBlocks(*x, 0, split_);
    if (!out.ok()) return out.status();
    response->mutable_timings()->set_edge_compute_us(
        absl::ToInt64Microseconds(absl::Now() - start));
    const at::Tensor activation = out->contiguous();
    offload->set_model_name(request.model_name());
    offload->set_id(request.id());
    offload->set_start_block(split_);
    offload->add_raw_input_contents()->assign(
        static_cast<const char*>(activation.data_ptr()),
        activation.numel() * sizeof(float));
    return absl::OkStatus();
  }

  const ModelRepository* models_;
  const int split_;
  std::unique_ptr<tandem::v1::CloudService::Stub> stub_;
};

struct Summary {
  SampleWindow overhead_ms{1 << 20}, total_ms{1 << 20}, compute_ms{1 << 20},
      bare_ms{1 << 20}, handoff_ms{1 << 20};
  // The bare hops' parts: SDK <-> forwarder, and the forwarder's receipt to
  // reply (the cloud round trip).
  SampleWindow bare_client_hop_ms{1 << 20}, bare_cloud_round_trip_ms{1 << 20};
  // The hand-made pipeline: latency, compute, and their difference.
  SampleWindow pipeline_ms{1 << 20}, pipeline_compute_ms{1 << 20},
      pipeline_overhead_ms{1 << 20};
  // Where the overhead went, as the agent's timings split it.
  SampleWindow client_hop_ms{1 << 20}, edge_queue_ms{1 << 20},
      encode_ms{1 << 20}, transfer_ms{1 << 20}, cloud_queue_ms{1 << 20},
      agent_rest_ms{1 << 20};
  int64_t bytes = 0;
};

double Ms(absl::Duration d) { return absl::ToDoubleMilliseconds(d); }

struct Timed {
  absl::Duration latency;
  InferResponse response;
};

// One blocking Infer and its latency as the caller sees it.
absl::StatusOr<Timed> TimedInfer(tandem::v1::EdgeService::Stub& stub,
                                 const InferRequest& request) {
  Timed timed;
  grpc::ClientContext context;
  const absl::Time start = absl::Now();
  const grpc::Status status = stub.Infer(&context, request, &timed.response);
  timed.latency = absl::Now() - start;
  if (!status.ok()) return absl::InternalError(status.error_message());
  return timed;
}

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

  // The baselines' two hops, of the same kinds as the agent's: bare, and
  // with a thread hand-off in each (the threads outlive the servers).
  HandOffThread edge_worker, cloud_instance;
  auto bare = BareHops::Start(socket + ".bare", nullptr, nullptr);
  auto handoff =
      BareHops::Start(socket + ".handoff", &edge_worker, &cloud_instance);
  if (!bare.ok() || !handoff.ok()) {
    std::cerr << "cannot start the bare gRPC servers\n";
    return 1;
  }

  // The hand-made pipeline's two hops, of the same kinds, on its own copy of
  // the models.
  ModelLoadOptions load;
  load.newest_version_only = true;
  auto pipeline_models = ModelRepository::Load(repo, load);
  if (!pipeline_models.ok()) {
    std::cerr << pipeline_models.status() << "\n";
    return 1;
  }
  PipelineCloud pipeline_cloud(pipeline_models->get());
  int pipeline_cloud_port = 0;
  std::unique_ptr<grpc::Server> pipeline_cloud_server =
      StartServer("127.0.0.1:0", &pipeline_cloud, &pipeline_cloud_port);
  PipelineEdge pipeline_edge(
      pipeline_models->get(), absl::GetFlag(FLAGS_split),
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", pipeline_cloud_port),
                          grpc::InsecureChannelCredentials()));
  const std::string pipeline_socket = socket + ".pipeline";
  std::unique_ptr<grpc::Server> pipeline_edge_server =
      StartServer("unix:" + pipeline_socket, &pipeline_edge);
  if (pipeline_cloud_server == nullptr || pipeline_edge_server == nullptr) {
    std::cerr << "cannot start the hand-made pipeline's servers\n";
    return 1;
  }
  auto pipeline_stub = tandem::v1::EdgeService::NewStub(grpc::CreateChannel(
      "unix:" + pipeline_socket, grpc::InsecureChannelCredentials()));

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
      (*bare)->edge.set_offload_bytes(result->bytes_sent);
      (*handoff)->edge.set_offload_bytes(result->bytes_sent);
      InferRequest bare_request;
      bare_request.set_model_name(name);
      bare_request.set_id("bare");
      bare_request.add_inputs()->set_datatype("FP32");
      bare_request.add_raw_input_contents()->assign(
          reinterpret_cast<const char*>(input.data()),
          input.size() * sizeof(float));
      // The two bare baselines take turns going first: a call right after
      // another may find the machine's cores awake.
      absl::StatusOr<Timed> bare_timed, handoff_timed;
      if (i % 2 == 0) {
        bare_timed = TimedInfer(*(*bare)->stub, bare_request);
        handoff_timed = TimedInfer(*(*handoff)->stub, bare_request);
      } else {
        handoff_timed = TimedInfer(*(*handoff)->stub, bare_request);
        bare_timed = TimedInfer(*(*bare)->stub, bare_request);
      }
      if (!bare_timed.ok()) {
        std::cerr << "bare gRPC request failed: " << bare_timed.status()
                  << "\n";
        return 1;
      }
      const absl::Duration bare_handled = (*bare)->edge.last_handled();
      if (!handoff_timed.ok()) {
        std::cerr << "bare gRPC request with hand-offs failed: "
                  << handoff_timed.status() << "\n";
        return 1;
      }
      const absl::StatusOr<Timed> pipeline =
          TimedInfer(*pipeline_stub, bare_request);
      if (!pipeline.ok()) {
        std::cerr << "hand-made pipeline request failed: " << pipeline.status()
                  << "\n";
        return 1;
      }
      if (i < 0) continue;  // Warm-up.
      summary.bare_ms.Add(Ms(bare_timed->latency));
      summary.handoff_ms.Add(Ms(handoff_timed->latency));
      summary.bare_client_hop_ms.Add(Ms(bare_timed->latency - bare_handled));
      summary.bare_cloud_round_trip_ms.Add(Ms(bare_handled));
      const absl::Duration pipeline_compute =
          absl::Microseconds(pipeline->response.timings().edge_compute_us() +
                             pipeline->response.timings().cloud_compute_us());
      summary.pipeline_ms.Add(Ms(pipeline->latency));
      summary.pipeline_compute_ms.Add(Ms(pipeline_compute));
      summary.pipeline_overhead_ms.Add(
          Ms(pipeline->latency - pipeline_compute));
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
    const double handoff_p50 = summary.handoff_ms.Percentile(50);
    const double pipeline_overhead_p50 =
        summary.pipeline_overhead_ms.Percentile(50);
    entries.push_back(absl::StrFormat(
        "\"%s\": {\"requests\": %d, \"split\": %d, \"bytes_sent\": %d, "
        "\"overhead_ms\": {\"p50\": %.4f, \"p99\": %.4f, \"mean\": %.4f}, "
        "\"total_ms\": {\"p50\": %.4f, \"p99\": %.4f}, \"compute_ms\": "
        "{\"p50\": %.4f}, \"bare_grpc_two_hops_ms\": {\"p50\": %.4f, "
        "\"p99\": %.4f}, \"overhead_p50_ms\": %.4f, "
        "\"overhead_vs_bare_grpc\": %.4f, "
        "\"bare_grpc_handoff_two_hops_ms\": {\"p50\": %.4f, \"p99\": %.4f}, "
        "\"overhead_vs_bare_grpc_handoff\": %.4f, "
        "\"overhead_p50_parts_ms\": %s, "
        "\"bare_grpc_parts_ms\": {\"client_hop\": %.4f, "
        "\"cloud_round_trip\": %.4f}, \"bare_pipeline_ms\": {\"p50\": %.4f, "
        "\"p99\": %.4f, \"compute_p50\": %.4f, \"overhead_p50\": %.4f}, "
        "\"overhead_vs_bare_pipeline\": %.4f}",
        name, requests, options.split_point.value(), summary.bytes,
        overhead_p50, summary.overhead_ms.Percentile(99),
        summary.overhead_ms.Mean(), summary.total_ms.Percentile(50),
        summary.total_ms.Percentile(99), summary.compute_ms.Percentile(50),
        bare_p50, summary.bare_ms.Percentile(99), overhead_p50,
        bare_p50 > 0 ? overhead_p50 / bare_p50 : 0.0, handoff_p50,
        summary.handoff_ms.Percentile(99),
        handoff_p50 > 0 ? overhead_p50 / handoff_p50 : 0.0,
        BreakdownJson(summary), summary.bare_client_hop_ms.Percentile(50),
        summary.bare_cloud_round_trip_ms.Percentile(50),
        summary.pipeline_ms.Percentile(50), summary.pipeline_ms.Percentile(99),
        summary.pipeline_compute_ms.Percentile(50), pipeline_overhead_p50,
        pipeline_overhead_p50 > 0 ? overhead_p50 / pipeline_overhead_p50
                                  : 0.0));
  }
  std::cout << "{" << absl::StrJoin(entries, ", ") << "}\n";
  client->reset();
  (*bare)->Shutdown();
  (*handoff)->Shutdown();
  pipeline_edge_server->Shutdown();
  pipeline_cloud_server->Shutdown();
  (*edge)->Shutdown();
  (*cloud)->Shutdown();
  return 0;
}

}  // namespace
}  // namespace tandem

int main(int argc, char** argv) {
  tandem::DisableMutexDeadlockDetection();
  absl::ParseCommandLine(argc, argv);
  return tandem::Main();
}
