// The framework's own cost per offloaded request: client-observed latency
// minus the model compute on the edge and in the cloud. Everything else -
// two gRPC hops (SDK -> agent over a unix socket, agent -> cloud over TCP
// loopback), queueing, decoding, encoding, copying - is overhead.
//
//   build/bench/split_overhead_bench [--requests=2000]
//   [--models=fmnist_branchy,camera_branchy]
//
// Prints one JSON object: per model, p50/p99/mean overhead in ms and the
// compute it was measured against. Servers run in this process.
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
#include "tandem/client.h"

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

struct Summary {
  SampleWindow overhead_ms{1 << 20}, total_ms{1 << 20}, compute_ms{1 << 20};
  int64_t bytes = 0;
};

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
      if (i < 0) continue;  // Warm-up.
      const absl::Duration compute =
          result->timings.edge_compute + result->timings.cloud_compute;
      summary.overhead_ms.Add(
          absl::ToDoubleMilliseconds(result->client_latency - compute));
      summary.total_ms.Add(absl::ToDoubleMilliseconds(result->client_latency));
      summary.compute_ms.Add(absl::ToDoubleMilliseconds(compute));
      summary.bytes = result->bytes_sent;
      if ((i + 1) % (requests / 10 > 0 ? requests / 10 : 1) == 0) {
        std::cerr << name << ": " << (i + 1) << "/" << requests
                  << " requests\n";
      }
    }
    entries.push_back(absl::StrFormat(
        "\"%s\": {\"requests\": %d, \"split\": %d, \"bytes_sent\": %d, "
        "\"overhead_ms\": {\"p50\": %.4f, \"p99\": %.4f, \"mean\": %.4f}, "
        "\"total_ms\": {\"p50\": %.4f, \"p99\": %.4f}, \"compute_ms\": "
        "{\"p50\": %.4f}}",
        name, requests, options.split_point.value(), summary.bytes,
        summary.overhead_ms.Percentile(50), summary.overhead_ms.Percentile(99),
        summary.overhead_ms.Mean(), summary.total_ms.Percentile(50),
        summary.total_ms.Percentile(99), summary.compute_ms.Percentile(50)));
  }
  std::cout << "{" << absl::StrJoin(entries, ", ") << "}\n";
  client->reset();
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
