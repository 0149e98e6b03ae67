// EdgeAgent with a real (tiny) TorchScript model and a scripted cloud link
// that holds calls until the test answers them: an offload in flight holds
// no worker, a link that drops mid-flight leaves the job to finish on the
// edge, tasks lend requests their settings, bad task sets are refused at
// load (and on reload, keeping the old set), a batched block decides each
// row's exit on its own.
#include "edge/edge_agent.h"

#include <torch/torch.h>
#include <unistd.h>

#include <deque>
#include <filesystem>

#include "absl/synchronization/notification.h"
#include "common/testing/status_matchers.h"
#include "edge/testing/fake_cloud_link.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "models/tensor_codec.h"
#include "models/testing/tiny_model.h"

namespace tandem {
namespace {

namespace fs = std::filesystem;
using tandem::v1::ContinueResponse;
using tandem::v1::InferRequest;
using tandem::v1::InferResponse;
using ::testing::HasSubstr;

// Holds every Continue until Release; otherwise the fake link of the tiny
// model's three blocks.
class HeldCloudLink : public testing::FakeCloudLink {
 public:
  HeldCloudLink() : FakeCloudLink(3) {}
  absl::StatusOr<ContinueResponse> Continue(const tandem::v1::ContinueRequest&,
                                            absl::Time) override {
    return absl::UnimplementedError("the agent offloads asynchronously");
  }
  void ContinueAsync(tandem::v1::ContinueRequest request, absl::Time,
                     ContinueCallback done) override {
    absl::MutexLock lock(&mu_);
    held_.push_back({std::move(request), std::move(done)});
  }

  // Whether `n` calls are held within 10 s.
  bool WaitForHeld(size_t n) {
    absl::MutexLock lock(&mu_);
    auto enough = [&] {
      mu_.AssertHeld();  // Await calls it under the lock.
      return held_.size() >= n;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(10));
  }
  // Answers the oldest held call; returns its request.
  tandem::v1::ContinueRequest Release(absl::StatusOr<ContinueResponse> reply) {
    Held held;
    {
      absl::MutexLock lock(&mu_);
      held = std::move(held_.front());
      held_.pop_front();
    }
    held.done(std::move(reply));
    return held.request;
  }

 private:
  struct Held {
    tandem::v1::ContinueRequest request;
    ContinueCallback done;
  };
  absl::Mutex mu_;
  std::deque<Held> held_ ABSL_GUARDED_BY(mu_);
};

// An answer that arrives on another thread.
struct Pending {
  absl::Notification done;
  absl::StatusOr<InferResponse> result;
  EdgeAgent::InferCallback Callback() {
    return [this](absl::StatusOr<InferResponse> r) {
      result = std::move(r);
      done.Notify();
    };
  }
  bool Wait() { return done.WaitForNotificationWithTimeout(absl::Seconds(30)); }
};

class EdgeAgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("tandem_agent_" + std::to_string(::getpid()));
    fs::create_directories(root_);
    testing::WritePackage(root_, {});
    config_.set_model_repository(root_.string());
    config_.set_worker_threads(1);
    config_.mutable_adaptation()->set_probe_interval_ms(1 << 30);
    config_.mutable_adaptation()->set_profile_runs(3);
  }
  void TearDown() override {
    agent_.reset();
    fs::remove_all(root_);
  }
  absl::Status Start(std::unique_ptr<HeldCloudLink> link = nullptr) {
    link_ = link.get();
    absl::StatusOr<std::unique_ptr<EdgeAgent>> agent =
        EdgeAgent::Create(config_, nullptr, std::move(link));
    if (!agent.ok()) return agent.status();
    agent_ = *std::move(agent);
    return absl::OkStatus();
  }
  static InferRequest Request(std::optional<int> split = std::nullopt) {
    InferRequest request;
    request.set_model_name("tiny");
    const std::vector<float> x = {0.5f, -1.0f, 0.25f, 2.0f};
    EncodeOptions raw;
    raw.name = "x";
    EXPECT_OK(EncodeTensor(torch::tensor(x).reshape({1, 4}), raw,
                           request.add_inputs(),
                           request.add_raw_input_contents()));
    if (split.has_value()) request.set_split_point(*split);
    return request;
  }

  fs::path root_;
  tandem::v1::EdgeConfig config_;
  HeldCloudLink* link_ = nullptr;
  std::unique_ptr<EdgeAgent> agent_;
};

TEST_F(EdgeAgentTest, AnOffloadInFlightHoldsNoWorkerAndADropFinishesOnTheEdge) {
  ASSERT_OK(Start(std::make_unique<HeldCloudLink>()));
  InferRequest offloaded = Request(/*split=*/1);
  offloaded.set_disable_early_exits(true);
  Pending a;
  agent_->InferAsync(offloaded, absl::Now(), absl::Now() + absl::Seconds(30),
                     a.Callback());
  ASSERT_TRUE(link_->WaitForHeld(1));
  // The one worker is free while the tensor is in flight: an edge-only
  // request is answered meanwhile.
  ASSERT_OK_AND_ASSIGN(InferResponse b,
                       agent_->Infer(Request(/*split=*/3), absl::Now(),
                                     absl::Now() + absl::Seconds(30)));
  EXPECT_EQ(b.answered_by(), tandem::v1::SITE_EDGE);
  EXPECT_FALSE(a.done.HasBeenNotified());
  // The link drops the call: the job resumes and finishes here.
  const tandem::v1::ContinueRequest sent =
      link_->Release(absl::UnavailableError("connection reset"));
  EXPECT_EQ(sent.start_block(), 1);
  ASSERT_TRUE(a.Wait());
  ASSERT_OK(a.result.status());
  EXPECT_EQ(a.result->answered_by(), tandem::v1::SITE_EDGE);
  EXPECT_EQ(a.result->exit_block(), 2);
  EXPECT_THAT(a.result->fallback_reason(), HasSubstr("cloud UNAVAILABLE"));
  EXPECT_THAT(a.result->fallback_reason(), HasSubstr("finished on the edge"));
  EXPECT_GE(agent_->scheduler_counters().steps, 4);
}

TEST_F(EdgeAgentTest, TheCloudsReplyAnswers) {
  ASSERT_OK(Start(std::make_unique<HeldCloudLink>()));
  const InferRequest request = Request(/*split=*/0);  // Outlives the call.
  Pending a;
  agent_->InferAsync(request, absl::Now(), absl::Now() + absl::Seconds(30),
                     a.Callback());
  ASSERT_TRUE(link_->WaitForHeld(1));
  ContinueResponse reply;
  reply.set_exit_block(2);
  reply.set_confidence(0.75f);
  reply.add_top_k()->set_index(1);
  link_->Release(reply);
  ASSERT_TRUE(a.Wait());
  ASSERT_OK(a.result.status());
  EXPECT_EQ(a.result->answered_by(), tandem::v1::SITE_CLOUD);
  EXPECT_EQ(a.result->top_k(0).index(), 1);
  EXPECT_FLOAT_EQ(a.result->confidence(), 0.75f);
}

TEST_F(EdgeAgentTest, ShutdownAnswersAJobWaitingOnTheCloud) {
  ASSERT_OK(Start(std::make_unique<HeldCloudLink>()));
  const InferRequest request = Request(/*split=*/0);  // Outlives the call.
  Pending a;
  agent_->InferAsync(request, absl::Now(), absl::Now() + absl::Seconds(30),
                     a.Callback());
  ASSERT_TRUE(link_->WaitForHeld(1));
  std::thread stopper([&] { agent_->Shutdown(); });
  ASSERT_TRUE(a.Wait());  // Cut by the shutdown, before the reply came.
  EXPECT_EQ(a.result.status().code(), absl::StatusCode::kUnavailable);
  link_->Release(absl::UnavailableError("too late"));  // Shutdown waits for it.
  stopper.join();
}

TEST_F(EdgeAgentTest, TasksLendRequestsTheirSettings) {
  tandem::v1::TaskConfig* task = config_.add_tasks();
  task->set_name("fast");
  task->set_model("tiny");
  task->set_period_ms(100);
  task->set_criticality(2);
  ASSERT_OK(Start());
  InferRequest request = Request();
  request.set_task("fast");
  ASSERT_OK_AND_ASSIGN(
      InferResponse response,
      agent_->Infer(request, absl::Now(), absl::InfiniteFuture()));
  EXPECT_EQ(response.task(), "fast");
  EXPECT_EQ(response.scaling_level(), 0);

  request.set_task("slow");
  absl::StatusOr<InferResponse> unknown =
      agent_->Infer(request, absl::Now(), absl::InfiniteFuture());
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(unknown.status().message(), HasSubstr("fast"));

  // A deadline already spent by the time the task's applies.
  request.set_task("fast");
  absl::StatusOr<InferResponse> late = agent_->Infer(
      request, absl::Now() - absl::Seconds(1), absl::InfiniteFuture());
  EXPECT_EQ(late.status().code(), absl::StatusCode::kDeadlineExceeded);
}

TEST_F(EdgeAgentTest, BadTaskSetsAreRefusedAtLoadAndOnReload) {
  auto with_task = [&](auto edit) {
    tandem::v1::EdgeConfig config = config_;
    tandem::v1::TaskConfig* task = config.add_tasks();
    task->set_name("t");
    task->set_model("tiny");
    task->set_period_ms(10);
    edit(task);
    return config;
  };
  struct Case {
    std::string what;
    std::function<void(tandem::v1::TaskConfig*)> edit;
    absl::StatusCode code;
    std::string says;
  };
  const std::vector<Case> cases = {
      {"unknown model", [](auto* t) { t->set_model("nope"); },
       absl::StatusCode::kNotFound, "task 't'"},
      {"negative deadline", [](auto* t) { t->set_deadline_ms(-1); },
       absl::StatusCode::kInvalidArgument, "deadline_ms"},
      {"no period", [](auto* t) { t->set_period_ms(0); },
       absl::StatusCode::kInvalidArgument, "period_ms"},
      {"unreachable accuracy", [](auto* t) { t->set_min_accuracy(0.99f); },
       absl::StatusCode::kFailedPrecondition, "best"},
      {"over capacity", [](auto* t) { t->set_period_ms(0.0001); },
       absl::StatusCode::kResourceExhausted, "'t'"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    absl::StatusOr<std::unique_ptr<EdgeAgent>> agent =
        EdgeAgent::Create(with_task(c.edit));
    EXPECT_EQ(agent.status().code(), c.code) << agent.status();
    EXPECT_THAT(agent.status().message(), HasSubstr(c.says));
  }
  // Logged instead of enforced: the overloaded set runs.
  tandem::v1::EdgeConfig logged =
      with_task([](auto* t) { t->set_period_ms(0.0001); });
  logged.set_admission("log");
  EXPECT_OK(EdgeAgent::Create(logged).status());

  // On reload a refused set leaves the running one in place.
  const tandem::v1::EdgeConfig overloaded =
      with_task([](auto* t) { t->set_period_ms(0.0001); });
  config_ = with_task([](auto*) {});
  ASSERT_OK(Start());
  const absl::Status reload = agent_->Reload(overloaded);
  EXPECT_EQ(reload.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(reload.message(), HasSubstr("keeping the old one"));
  InferRequest request = Request();
  request.set_task("t");
  EXPECT_OK(agent_->Infer(request, absl::Now(), absl::InfiniteFuture()));
}

TEST_F(EdgeAgentTest, MisspeltNamesAreRefusedNotDefaulted) {
  struct Case {
    std::string what;
    std::function<void(tandem::v1::EdgeConfig*)> edit;
    std::string says;
  };
  const std::vector<Case> cases = {
      {"objective",
       [](auto* c) {
         auto* policy = c->add_models();
         policy->set_model_name("tiny");
         policy->set_objective("latncy");
       },
       "unknown objective 'latncy'"},
      {"energy.device",
       [](auto* c) { c->mutable_energy()->set_device("jetson_nano"); },
       "energy.device: unknown device preset 'jetson_nano' (known: "},
      {"energy.link_type",
       [](auto* c) { c->mutable_energy()->set_link_type("5g"); },
       "energy.link_type: unknown link type '5g' (known: wifi, lte, 3g)"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    tandem::v1::EdgeConfig config = config_;
    c.edit(&config);
    absl::StatusOr<std::unique_ptr<EdgeAgent>> agent =
        EdgeAgent::Create(config);
    EXPECT_EQ(agent.status().code(), absl::StatusCode::kInvalidArgument)
        << agent.status();
    EXPECT_THAT(agent.status().message(), HasSubstr(c.says));
  }
  // On SIGHUP a misspelt objective leaves the running policies in place.
  ASSERT_OK(Start());
  tandem::v1::EdgeConfig reload = config_;
  cases[0].edit(&reload);
  EXPECT_EQ(agent_->Reload(reload).code(), absl::StatusCode::kInvalidArgument);
  // The names spelt right load.
  tandem::v1::EdgeConfig good = config_;
  good.mutable_energy()->set_device("jetson_orin_nx");
  good.mutable_energy()->set_link_type("lte");
  auto* policy = good.add_models();
  policy->set_model_name("tiny");
  policy->set_objective("energy");
  EXPECT_OK(EdgeAgent::Create(good).status());
}

TEST_F(EdgeAgentTest, DevicesAreCheckedAtLoad) {
  config_.set_device("tpu");
  EXPECT_EQ(Start().code(), absl::StatusCode::kInvalidArgument);
  config_.set_device("cuda:0");
  if (torch::cuda::is_available()) {
    GTEST_SKIP() << "a GPU is visible: the CPU-only refusal cannot be seen";
  }
  const absl::Status cuda = Start();
  EXPECT_EQ(cuda.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(cuda.message(), HasSubstr("no CUDA"));
}

TEST_F(EdgeAgentTest, AnOversizedMaxBatchIsRefused) {
  config_.set_max_batch(1 << 30);
  const absl::Status status = Start();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("max_batch"));
}

TEST_F(EdgeAgentTest, AnUnknownSchedulingPolicyIsRefused) {
  config_.set_scheduling_policy("round_robin");
  const absl::Status status = Start();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("tandem_rt"));
}

// Jobs built by hand, stepped without a scheduler: a batch of three rows at
// block 0 where one row's exit is confident enough and the others' are not.
TEST_F(EdgeAgentTest, ABatchedBlockDecidesEachRowsExitOnItsOwn) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ModelRepository> repository,
                       ModelRepository::Load(root_.string(), {}));
  ASSERT_OK_AND_ASSIGN(const ProgressiveModel* model, repository->Get("tiny"));
  HeldCloudLink link;
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<PlanKeeper> keeper,
      PlanKeeper::Create(config_, repository.get(), &link, RealClock()));
  StepTimes step_times;
  JobServices services;
  services.keeper = keeper.get();
  services.step_times = &step_times;
  services.clock = RealClock();
  const InferRequest request = Request();
  std::vector<Pending> answers(3);
  std::vector<std::unique_ptr<InferJob>> jobs;
  for (int i = 0; i < 3; ++i) {
    InferJob::Params params;
    params.model = model;
    params.request = &request;
    params.input = torch::tensor({0.5f, -1.0f, 0.25f, 2.0f}).reshape({1, 4});
    params.route.split = 3;
    // Row 0 leaves at block 0 whatever its confidence; rows 1-2 never do.
    if (i == 0) params.route.thresholds[0] = 0.0f;
    params.received = absl::Now();
    jobs.push_back(std::make_unique<InferJob>(&services, std::move(params),
                                              answers[i].Callback()));
  }
  ASSERT_EQ(jobs[0]->BatchKey(), jobs[1]->BatchKey());
  std::vector<Job::Next> next =
      jobs[0]->StepBatch({jobs[1].get(), jobs[2].get()});
  EXPECT_THAT(next, ::testing::ElementsAre(Job::Next::kDone, Job::Next::kStep,
                                           Job::Next::kStep));
  ASSERT_TRUE(answers[0].done.HasBeenNotified());
  ASSERT_OK(answers[0].result.status());
  EXPECT_EQ(answers[0].result->exit_block(), 0);
  EXPECT_EQ(answers[0].result->batch_size(), 3);
  // The other two go on together to the final exit, and answer as a
  // request run alone does.
  while (!answers[1].done.HasBeenNotified()) {
    next = jobs[1]->StepBatch({jobs[2].get()});
    ASSERT_EQ(next[0], next[1]);
  }
  ASSERT_OK(answers[1].result.status());
  ASSERT_OK(answers[2].result.status());
  EXPECT_EQ(answers[1].result->exit_block(), 2);
  EXPECT_EQ(answers[1].result->batch_size(), 2);
  ASSERT_OK(Start());
  InferRequest alone = Request(/*split=*/3);
  alone.set_disable_early_exits(true);
  ASSERT_OK_AND_ASSIGN(
      InferResponse single,
      agent_->Infer(alone, absl::Now(), absl::InfiniteFuture()));
  EXPECT_EQ(single.batch_size(), 1);
  EXPECT_EQ(answers[1].result->top_k(0).index(), single.top_k(0).index());
  EXPECT_NEAR(answers[2].result->confidence(), single.confidence(), 1e-5);
  // Predicted batch times: two rows were measured.
  EXPECT_GT(step_times.Predict("tiny", 1, 2, absl::ZeroDuration()),
            absl::ZeroDuration());
}

}  // namespace
}  // namespace tandem
