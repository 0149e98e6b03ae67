// The real-time side of tandem-edge as a real process on one worker: a
// critical request overtakes a long low-criticality one at the next block
// boundary under tandem_rt, and waits for it under fifo (each job to
// completion) — the same requests, only the policy differs.
#include <signal.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/subprocess.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"
#include "tandem/client.h"

namespace tandem {
namespace {

std::string Env(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value == nullptr ? fallback : value;
}

// When an answer came, and whether it was one.
struct Done {
  absl::Notification done;
  absl::Time at;
  absl::StatusOr<InferResult> result;
  Client::InferCallback Callback() {
    return [this](absl::StatusOr<InferResult> r) {
      at = absl::Now();
      result = std::move(r);
      done.Notify();
    };
  }
};

struct Outcome {
  absl::Time critical_sent, long_done, critical_done;
  std::string plan_reason;  // GetPlan of the critical task's model.
};

// One edge process under `policy`: the camera-sized model's full pass as the
// long low-criticality job, then, once it is a few blocks in, one
// Fashion-MNIST request of the critical task.
absl::StatusOr<Outcome> Race(const std::string& policy) {
  const std::string dir = MakeTempDir("realtime_" + policy);
  const std::string config = dir + "/edge.pbtxt";
  // The device emulated 8x slower, so the long job's blocks take tens of
  // milliseconds; no scaling, so nothing but the order changes.
  std::ofstream(config)
      << "tasks { name: \"background\" model: \"camera_branchy\" "
         "period_ms: 5000 criticality: 0 }\n"
         "tasks { name: \"critical\" model: \"fmnist_branchy\" "
         "period_ms: 5000 criticality: 2 }\n"
         "scaling { disabled: true }\n";
  ASSIGN_OR_RETURN(
      Subprocess edge,
      Subprocess::Start({Env("TANDEM_EDGE_BINARY", "tandem-edge"),
                         "--listen=unix:" + dir + "/edge.sock,127.0.0.1:0",
                         "--model_repository=" +
                             Env("TANDEM_MODEL_REPOSITORY", "model_repository"),
                         "--config=" + config, "--worker_threads=1",
                         "--emulated_slowdown=8",
                         "--scheduling_policy=" + policy,
                         "--port_file=" + dir + "/edge.port"}));
  RETURN_IF_ERROR(
      WaitForPortFile(dir + "/edge.port", edge, absl::Minutes(5)).status());
  ASSIGN_OR_RETURN(std::unique_ptr<Client> client,
                   Client::Connect("unix:" + dir + "/edge.sock"));
  ASSIGN_OR_RETURN(std::vector<ModelInfo> models, client->ListModels());
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const ModelInfo& m : models) {
    shapes[m.name] = m.input_shape;
    shapes[m.name][0] = 1;
  }
  auto noise = [](const std::vector<int64_t>& shape) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::vector<uint8_t> pixels(n);
    std::mt19937 rng(7);
    for (uint8_t& p : pixels) p = static_cast<uint8_t>(rng());
    return pixels;
  };
  const std::vector<uint8_t> camera = noise(shapes["camera_branchy"]);
  const std::vector<uint8_t> fmnist = noise(shapes["fmnist_branchy"]);

  InferOptions long_options;
  long_options.task = "background";
  long_options.deadline = absl::Seconds(60);
  long_options.disable_early_exits = true;  // Every block.
  InferOptions critical_options;
  critical_options.task = "critical";
  critical_options.deadline = absl::Seconds(60);
  // Warm both paths once, then race.
  RETURN_IF_ERROR(
      client
          ->Infer("camera_branchy",
                  InputTensor::Pixels(shapes["camera_branchy"], camera.data()),
                  long_options)
          .status());
  RETURN_IF_ERROR(
      client
          ->Infer("fmnist_branchy",
                  InputTensor::Pixels(shapes["fmnist_branchy"], fmnist.data()),
                  critical_options)
          .status());
  Done long_job, critical_job;
  client->InferAsync(
      "camera_branchy",
      InputTensor::Pixels(shapes["camera_branchy"], camera.data()),
      long_options, long_job.Callback());
  absl::SleepFor(absl::Milliseconds(150));
  const absl::Time critical_sent = absl::Now();
  client->InferAsync(
      "fmnist_branchy",
      InputTensor::Pixels(shapes["fmnist_branchy"], fmnist.data()),
      critical_options, critical_job.Callback());
  if (!long_job.done.WaitForNotificationWithTimeout(absl::Seconds(60)) ||
      !critical_job.done.WaitForNotificationWithTimeout(absl::Seconds(60))) {
    return absl::DeadlineExceededError("no answer within 60 s");
  }
  RETURN_IF_ERROR(long_job.result.status());
  RETURN_IF_ERROR(critical_job.result.status());
  Outcome outcome;
  outcome.critical_sent = critical_sent;
  outcome.long_done = long_job.at;
  outcome.critical_done = critical_job.at;
  ASSIGN_OR_RETURN(tandem::v1::Plan plan, client->GetPlan("fmnist_branchy"));
  outcome.plan_reason = plan.reason();
  edge.Signal(SIGTERM);
  (void)edge.Wait(absl::Seconds(30));
  std::filesystem::remove_all(dir);
  return outcome;
}

TEST(Realtime, ACriticalRequestOvertakesALongOneAtABlockBoundary) {
  ASSERT_OK_AND_ASSIGN(Outcome rt, Race("tandem_rt"));
  // The long job was still running when the critical one arrived (150 ms
  // in, of several hundred), and the critical one finished first.
  EXPECT_GT(rt.long_done, rt.critical_sent);
  EXPECT_LT(rt.critical_done, rt.long_done)
      << "critical finished " << (rt.critical_done - rt.long_done)
      << " after the long job";
  // `tandem plan` shows the task, its scaling level and the admission
  // verdict.
  EXPECT_NE(rt.plan_reason.find("real time (tandem_rt): tasks critical"),
            std::string::npos)
      << rt.plan_reason;
  EXPECT_NE(rt.plan_reason.find("task 'critical' (criticality 2): level 0"),
            std::string::npos)
      << rt.plan_reason;
  EXPECT_NE(rt.plan_reason.find("admission:"), std::string::npos);
}

TEST(Realtime, RunToCompletionMakesTheCriticalRequestWait) {
  ASSERT_OK_AND_ASSIGN(Outcome fifo, Race("fifo"));
  EXPECT_GT(fifo.long_done, fifo.critical_sent);
  EXPECT_GT(fifo.critical_done, fifo.long_done);
}

}  // namespace
}  // namespace tandem
