#include "edge/block_scheduler.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tandem {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// What the fake jobs did, in order: "A0" is job A's block 0, "A:cut" its cut.
struct Log {
  absl::Mutex mu;
  std::vector<std::string> events;
  void Add(std::string e) {
    absl::MutexLock lock(&mu);
    events.push_back(std::move(e));
  }
  std::vector<std::string> Get() {
    absl::MutexLock lock(&mu);
    return events;
  }
};

// A job of `blocks` blocks, each taking `block_time` of the fake clock. With
// `wait_after` >= 0 it waits (an offload in flight) after that block; with
// `exit_after` >= 0 it has an acceptable answer from that block on.
class FakeJob : public Job {
 public:
  struct Spec {
    std::string name;
    int blocks = 1;
    absl::Duration block_time = absl::Milliseconds(1);
    int wait_after = -1;
    int exit_after = -1;
    // What the profile predicts per block (0: block_time).
    absl::Duration predicted = absl::ZeroDuration();
    // Packing: jobs with equal non-empty keys may share a step; a batch of
    // r rows is predicted (and takes) block_time * (1 + batch_extra * (r-1)).
    std::string batch_key;
    double batch_extra = 0.5;
  };
  FakeJob(Spec spec, FakeClock* clock, Log* log)
      : spec_(std::move(spec)), clock_(clock), log_(log) {}

  Next Step() override {
    if (clock_ != nullptr) clock_->Advance(spec_.block_time);
    log_->Add(absl::StrCat(spec_.name, next_));
    return Advance();
  }
  Next Advance() {
    const int ran = next_++;
    if (next_ == spec_.blocks) return Next::kDone;
    return ran == spec_.wait_after ? Next::kWait : Next::kStep;
  }
  absl::Duration RemainingWork() const override {
    return (spec_.blocks - next_) * (spec_.predicted > absl::ZeroDuration()
                                         ? spec_.predicted
                                         : spec_.block_time);
  }
  bool HasAcceptableAnswer() const override {
    return spec_.exit_after >= 0 && next_ > spec_.exit_after;
  }
  std::string BatchKey() const override {
    return spec_.batch_key.empty() ? ""
                                   : absl::StrCat(spec_.batch_key, "@", next_);
  }
  absl::Duration NextStepTime(int rows) const override {
    return spec_.block_time * (1 + spec_.batch_extra * (rows - 1));
  }
  std::vector<Next> StepBatch(const std::vector<Job*>& others) override {
    std::string names = absl::StrCat(spec_.name, next_);
    for (Job* other : others) {
      auto* job = static_cast<FakeJob*>(other);
      absl::StrAppend(&names, "+", job->spec_.name, job->next_);
    }
    if (clock_ != nullptr)
      clock_->Advance(NextStepTime(static_cast<int>(others.size()) + 1));
    log_->Add(names);
    std::vector<Next> next = {Advance()};
    for (Job* other : others)
      next.push_back(static_cast<FakeJob*>(other)->Advance());
    return next;
  }
  void Cut(const absl::Status& why) override {
    log_->Add(absl::StrCat(spec_.name,
                           HasAcceptableAnswer() ? ":answer" : ":cut",
                           why.code() == absl::StatusCode::kDeadlineExceeded
                               ? ""
                               : absl::StrCat(" ", why.ToString())));
  }

 private:
  const Spec spec_;
  FakeClock* const clock_;
  Log* const log_;
  int next_ = 0;
};

class BlockSchedulerTest : public ::testing::Test {
 protected:
  std::unique_ptr<BlockScheduler> Make(SchedulingPolicy policy,
                                       int max_batch = 1) {
    BlockScheduler::Options options;
    options.workers = 0;
    options.policy = policy;
    options.clock = &clock_;
    options.max_batch = max_batch;
    return std::make_unique<BlockScheduler>(options);
  }
  BlockScheduler::JobId Add(BlockScheduler& s, FakeJob::Spec job,
                            int criticality, absl::Duration deadline) {
    JobSpec spec;
    spec.task = job.name;
    spec.criticality = criticality;
    spec.deadline = clock_.Now() + deadline;
    absl::StatusOr<BlockScheduler::JobId> id = s.Submit(
        spec, std::make_unique<FakeJob>(std::move(job), &clock_, &log_));
    EXPECT_TRUE(id.ok()) << id.status();
    return id.value_or(0);
  }
  void Drain(BlockScheduler& s) {
    while (s.RunOnce()) {
    }
  }
  static FakeJob::Spec Blocks(std::string name, int n) {
    FakeJob::Spec spec;
    spec.name = std::move(name);
    spec.blocks = n;
    return spec;
  }

  FakeClock clock_;
  Log log_;
};

TEST_F(BlockSchedulerTest, EarliestDeadlineFirstWithinALevel) {
  auto s = Make(SchedulingPolicy::kTandemRt);
  Add(*s, Blocks("A", 1), 0, absl::Milliseconds(30));
  Add(*s, Blocks("B", 1), 0, absl::Milliseconds(10));
  Add(*s, Blocks("C", 1), 0, absl::Milliseconds(20));
  Drain(*s);
  EXPECT_THAT(log_.Get(), ElementsAre("B0", "C0", "A0"));
}

TEST_F(BlockSchedulerTest, CriticalityBeatsDeadline) {
  // high: 2 ms of blocks due in 2.5 ms (0.5 ms of slack, less than low's
  // block); low: 1 ms due in 2 ms, sooner.
  for (SchedulingPolicy policy :
       {SchedulingPolicy::kTandemRt, SchedulingPolicy::kFixedPriority}) {
    SCOPED_TRACE(SchedulingPolicyName(policy));
    log_.events.clear();
    auto s = Make(policy);
    Add(*s, Blocks("low", 1), 0, absl::Milliseconds(2));
    Add(*s, Blocks("high", 2), 2, absl::Microseconds(2500));
    Drain(*s);
    EXPECT_THAT(log_.Get(), ElementsAre("high0", "high1", "low:cut"));
  }
  // Plain EDF ignores criticality.
  log_.events.clear();
  auto edf = Make(SchedulingPolicy::kEdfEarlyDrop);
  Add(*edf, Blocks("low", 1), 0, absl::Milliseconds(2));
  Add(*edf, Blocks("high", 2), 2, absl::Microseconds(2500));
  Drain(*edf);
  EXPECT_THAT(log_.Get(), ElementsAre("low0", "high:cut"));
}

TEST_F(BlockSchedulerTest, CriticalJobOvertakesAtTheNextBlockBoundary) {
  auto s = Make(SchedulingPolicy::kTandemRt);
  Add(*s, Blocks("long", 4), 0, absl::Milliseconds(100));
  ASSERT_TRUE(s->RunOnce());
  ASSERT_TRUE(s->RunOnce());
  Add(*s, Blocks("crit", 2), 1, absl::Milliseconds(100));
  Drain(*s);
  EXPECT_THAT(log_.Get(), ElementsAre("long0", "long1", "crit0", "crit1",
                                      "long2", "long3"));
  EXPECT_EQ(s->counters().preemptions, 1);
}

TEST_F(BlockSchedulerTest, RunToCompletionPoliciesDoNotPreempt) {
  auto s = Make(SchedulingPolicy::kEdfRequest);
  Add(*s, Blocks("long", 3), 0, absl::Milliseconds(100));
  ASSERT_TRUE(s->RunOnce());
  Add(*s, Blocks("urgent", 1), 0, absl::Milliseconds(10));
  Drain(*s);
  EXPECT_THAT(log_.Get(), ElementsAre("long0", "long1", "long2", "urgent0"));
  EXPECT_EQ(s->counters().preemptions, 0);
}

TEST_F(BlockSchedulerTest, EqualCriticalityJobsDoNotStarve) {
  // Two closed-loop tasks of one level, each re-submitting on completion
  // with a deadline 10 ms out: EDF alternates them.
  auto s = Make(SchedulingPolicy::kTandemRt);
  int a = 0, b = 0;
  Add(*s, Blocks("a", 1), 0, absl::Milliseconds(10));
  Add(*s, Blocks("b", 1), 0, absl::Milliseconds(10));
  for (int i = 0; i < 200; ++i) {
    const size_t before = log_.Get().size();
    ASSERT_TRUE(s->RunOnce());
    const std::string last = log_.Get()[before];
    if (last == "a0") {
      ++a;
      Add(*s, Blocks("a", 1), 0, absl::Milliseconds(10));
    } else {
      ASSERT_EQ(last, "b0");
      ++b;
      Add(*s, Blocks("b", 1), 0, absl::Milliseconds(10));
    }
  }
  EXPECT_EQ(a, 100);
  EXPECT_EQ(b, 100);
}

TEST_F(BlockSchedulerTest, AWaitingJobHoldsNoWorker) {
  auto s = Make(SchedulingPolicy::kTandemRt);
  FakeJob::Spec offloading = Blocks("off", 2);
  offloading.wait_after = 0;  // Block 0, then the tensor is in flight.
  const auto id = Add(*s, offloading, 1, absl::Milliseconds(100));
  Add(*s, Blocks("other", 2), 0, absl::Milliseconds(100));
  ASSERT_TRUE(s->RunOnce());  // off0, then waits.
  ASSERT_TRUE(s->RunOnce());  // The worker serves the other job meanwhile.
  ASSERT_TRUE(s->RunOnce());
  EXPECT_FALSE(s->RunOnce());  // Nothing ready: off is still waiting.
  EXPECT_EQ(s->held_jobs(), 1u);
  s->Resume(id);  // The reply arrived.
  Drain(*s);
  EXPECT_THAT(log_.Get(), ElementsAre("off0", "other0", "other1", "off1"));
  s->Resume(id);  // Finished: ignored.
  EXPECT_EQ(s->held_jobs(), 0u);
}

TEST_F(BlockSchedulerTest, ResumeHereRunsTheNextStepOnTheCallingThread) {
  auto s = Make(SchedulingPolicy::kTandemRt);
  FakeJob::Spec offloading = Blocks("off", 2);
  offloading.wait_after = 0;
  const auto id = Add(*s, offloading, 1, absl::Milliseconds(100));
  Add(*s, Blocks("other", 1), 0, absl::Milliseconds(100));
  ASSERT_TRUE(s->RunOnce());  // off0, then waits.
  s->ResumeHere(id);          // The reply: off1 runs here, no worker.
  EXPECT_THAT(log_.Get(), ElementsAre("off0", "off1"));
  EXPECT_EQ(s->held_jobs(), 1u);  // Only "other" is left, still ready.
  EXPECT_EQ(s->ready_jobs(), 1u);
  EXPECT_EQ(s->counters().done, 1);
  s->ResumeHere(id);  // Finished: ignored.
  Drain(*s);
  EXPECT_THAT(log_.Get(), ElementsAre("off0", "off1", "other0"));
}

TEST_F(BlockSchedulerTest, ResumeHereCutsAJobWhoseDeadlinePassedWhileWaiting) {
  auto s = Make(SchedulingPolicy::kTandemRt);
  FakeJob::Spec offloading = Blocks("off", 2);
  offloading.wait_after = 0;
  const auto id = Add(*s, offloading, 1, absl::Milliseconds(5));
  ASSERT_TRUE(s->RunOnce());
  clock_.Advance(absl::Milliseconds(10));
  s->ResumeHere(id);
  EXPECT_THAT(log_.Get(), ElementsAre("off0", "off:cut"));
  EXPECT_EQ(s->held_jobs(), 0u);
}

TEST_F(BlockSchedulerTest, LateJobsAreCutUnderEveryPolicy) {
  for (int p = 0; p <= static_cast<int>(SchedulingPolicy::kTandemRt); ++p) {
    const auto policy = static_cast<SchedulingPolicy>(p);
    SCOPED_TRACE(SchedulingPolicyName(policy));
    log_.events.clear();
    auto s = Make(policy);
    Add(*s, Blocks("late", 2), 0, absl::Milliseconds(1));
    clock_.Advance(absl::Milliseconds(2));
    Drain(*s);
    EXPECT_THAT(log_.Get(), ElementsAre("late:cut"));
    EXPECT_EQ(s->counters().cut, 1);
  }
}

TEST_F(BlockSchedulerTest, DoomedJobsAreCutOnlyByPoliciesThatPredict) {
  // 5 ms of blocks, 3 ms to the deadline.
  for (SchedulingPolicy policy :
       {SchedulingPolicy::kTandemRt, SchedulingPolicy::kEdfEarlyDrop}) {
    SCOPED_TRACE(SchedulingPolicyName(policy));
    log_.events.clear();
    auto s = Make(policy);
    Add(*s, Blocks("doomed", 5), 0, absl::Milliseconds(3));
    Drain(*s);
    EXPECT_THAT(log_.Get(), ElementsAre("doomed:cut"));
  }
  log_.events.clear();
  auto edf = Make(SchedulingPolicy::kEdfRequest);
  Add(*edf, Blocks("doomed", 5), 0, absl::Milliseconds(3));
  Drain(*edf);
  // Runs until the deadline has passed at a block boundary.
  EXPECT_THAT(log_.Get(),
              ElementsAre("doomed0", "doomed1", "doomed2", "doomed:cut"));
}

TEST_F(BlockSchedulerTest, TandemRtAnswersFromAnExitWhenTheRestWouldMiss) {
  auto s = Make(SchedulingPolicy::kTandemRt);
  FakeJob::Spec spec = Blocks("j", 4);
  spec.exit_after = 0;  // Block 0's exit meets the floor.
  spec.block_time = absl::Milliseconds(2);
  spec.predicted = absl::Milliseconds(1);  // Slower than profiled.
  Add(*s, spec, 0, absl::Milliseconds(5));
  Drain(*s);
  // Admitted with 4 ms predicted for 5 ms; after two blocks (4 ms) 2 ms of
  // blocks are left with 1 ms to go: answered from the exit at once.
  EXPECT_THAT(log_.Get(), ElementsAre("j0", "j1", "j:answer"));
}

TEST_F(BlockSchedulerTest, ImpreciseEdfRunsOptionalBlocksLast) {
  auto s = Make(SchedulingPolicy::kImpreciseEdf);
  FakeJob::Spec early = Blocks("e", 3);
  early.exit_after = 0;  // Blocks 1-2 only refine the answer.
  Add(*s, early, 0, absl::Milliseconds(10));
  Add(*s, Blocks("m", 2), 0, absl::Milliseconds(20));
  Drain(*s);
  // e0 is mandatory (earliest deadline); then m's mandatory blocks come
  // before e's optional ones although e's deadline is earlier. At 3 ms e has
  // 2 ms left of blocks and 7 ms to its deadline: it runs.
  EXPECT_THAT(log_.Get(), ElementsAre("e0", "m0", "m1", "e1", "e2"));
}

TEST_F(BlockSchedulerTest, LeastSlackWeighsRemainingWork) {
  auto s = Make(SchedulingPolicy::kLeastSlack);
  // Deadline 20 ms, 15 ms of work: slack 5. Deadline 10 ms, 1 ms: slack 9.
  FakeJob::Spec big = Blocks("big", 15);
  Add(*s, big, 0, absl::Milliseconds(20));
  Add(*s, Blocks("small", 1), 0, absl::Milliseconds(10));
  ASSERT_TRUE(s->RunOnce());
  EXPECT_THAT(log_.Get(), ElementsAre("big0"));
}

TEST_F(BlockSchedulerTest, RefusesBeyondMaxJobsAndAfterShutdown) {
  BlockScheduler::Options options;
  options.workers = 0;
  options.clock = &clock_;
  options.max_jobs = 2;
  BlockScheduler s(options);
  Add(s, Blocks("a", 1), 0, absl::Seconds(1));
  Add(s, Blocks("b", 1), 0, absl::Seconds(1));
  JobSpec spec;
  spec.task = "c";
  absl::StatusOr<BlockScheduler::JobId> refused =
      s.Submit(spec, std::make_unique<FakeJob>(Blocks("c", 1), &clock_, &log_));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(refused.status().message(), HasSubstr("'c'"));
  s.Shutdown();
  // The refused job was cut with the refusal (so its request is answered);
  // the held ones with UNAVAILABLE.
  EXPECT_THAT(log_.Get(), ElementsAre(HasSubstr("c:cut RESOURCE_EXHAUSTED"),
                                      HasSubstr("a:cut UNAVAILABLE"),
                                      HasSubstr("b:cut UNAVAILABLE")));
  refused =
      s.Submit(spec, std::make_unique<FakeJob>(Blocks("c", 1), &clock_, &log_));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(log_.Get().back(), HasSubstr("c:cut UNAVAILABLE"));
}

FakeJob::Spec Batchable(std::string name, int blocks) {
  FakeJob::Spec spec;
  spec.name = std::move(name);
  spec.blocks = blocks;
  spec.batch_key = "m";
  return spec;
}

TEST_F(BlockSchedulerTest, PacksJobsAtTheSameBlock) {
  auto s = Make(SchedulingPolicy::kTandemRt, /*max_batch=*/4);
  Add(*s, Batchable("a", 2), 0, absl::Milliseconds(100));
  Add(*s, Batchable("b", 2), 0, absl::Milliseconds(90));
  Add(*s, Batchable("c", 2), 0, absl::Milliseconds(80));
  Drain(*s);
  // The most urgent leads; both blocks run as one batch of three.
  EXPECT_THAT(log_.Get(), ElementsAre("c0+b0+a0", "c1+b1+a1"));
  EXPECT_EQ(s->counters().batches, 2);
  EXPECT_EQ(s->counters().batched_jobs, 6);
  EXPECT_EQ(s->counters().steps, 6);
}

TEST_F(BlockSchedulerTest, PacksOnlyWhatEveryDeadlineAllows) {
  auto s = Make(SchedulingPolicy::kTandemRt, /*max_batch=*/4);
  // Alone, a's block takes 1 ms of its 1.4 ms; a batch of two takes 1.5.
  Add(*s, Batchable("a", 1), 0, absl::Microseconds(1400));
  Add(*s, Batchable("b", 1), 0, absl::Milliseconds(50));
  Add(*s, Batchable("c", 1), 0, absl::Milliseconds(50));
  Drain(*s);
  EXPECT_THAT(log_.Get(), ElementsAre("a0", "b0+c0"));
}

TEST_F(BlockSchedulerTest, PacksOnlyTheSameKeyAndNeverBeyondMaxBatch) {
  auto s = Make(SchedulingPolicy::kTandemRt, /*max_batch=*/2);
  Add(*s, Batchable("a", 1), 0, absl::Milliseconds(10));
  Add(*s, Batchable("b", 1), 0, absl::Milliseconds(20));
  Add(*s, Batchable("c", 1), 0, absl::Milliseconds(30));
  Add(*s, Blocks("other", 1), 0, absl::Milliseconds(15));
  Drain(*s);
  EXPECT_THAT(log_.Get(), ElementsAre("a0+b0", "other0", "c0"));
}

TEST_F(BlockSchedulerTest, OnlyPeersOfOneCriticalityPack) {
  auto s = Make(SchedulingPolicy::kTandemRt, /*max_batch=*/4);
  Add(*s, Batchable("crit", 1), 2, absl::Milliseconds(50));
  Add(*s, Batchable("low", 1), 0, absl::Milliseconds(50));
  Add(*s, Batchable("peer", 1), 2, absl::Milliseconds(60));
  Drain(*s);
  EXPECT_THAT(log_.Get(), ElementsAre("crit0+peer0", "low0"));
}

TEST_F(BlockSchedulerTest, WithoutPackingEveryJobStepsAlone) {
  auto s = Make(SchedulingPolicy::kEdfEarlyDrop, /*max_batch=*/1);
  Add(*s, Batchable("a", 1), 0, absl::Milliseconds(10));
  Add(*s, Batchable("b", 1), 0, absl::Milliseconds(20));
  Drain(*s);
  EXPECT_THAT(log_.Get(), ElementsAre("a0", "b0"));
  EXPECT_EQ(s->counters().batches, 0);
}

TEST_F(BlockSchedulerTest, TandemRtKeepsAJobWhoseMandatoryPartFits) {
  // 5 blocks of 1 ms, 3 ms to the deadline, but block 0's exit would answer
  // acceptably: tandem_rt runs it and answers from the exit; edf_early_drop
  // (judging the whole rest) drops it at once.
  class Early : public FakeJob {
   public:
    using FakeJob::FakeJob;
    absl::Duration MandatoryWork() const override {
      return HasAcceptableAnswer() ? absl::ZeroDuration()
                                   : absl::Milliseconds(1);
    }
  };
  for (SchedulingPolicy policy :
       {SchedulingPolicy::kTandemRt, SchedulingPolicy::kEdfEarlyDrop}) {
    SCOPED_TRACE(SchedulingPolicyName(policy));
    log_.events.clear();
    auto s = Make(policy);
    FakeJob::Spec spec = Blocks("j", 5);
    spec.exit_after = 0;
    JobSpec job;
    job.task = "j";
    job.deadline = clock_.Now() + absl::Milliseconds(3);
    ASSERT_TRUE(
        s->Submit(job, std::make_unique<Early>(spec, &clock_, &log_)).ok());
    Drain(*s);
    if (policy == SchedulingPolicy::kTandemRt) {
      EXPECT_THAT(log_.Get(), ElementsAre("j0", "j:answer"));
    } else {
      EXPECT_THAT(log_.Get(), ElementsAre("j:cut"));
    }
  }
}

TEST_F(BlockSchedulerTest, BusyTimeCountsSteps) {
  auto s = Make(SchedulingPolicy::kTandemRt);
  Add(*s, Blocks("a", 3), 0, absl::Seconds(1));
  Drain(*s);
  EXPECT_EQ(s->counters().busy, absl::Milliseconds(3));
}

// A job on the real clock that counts its steps.
class CountingJob : public Job {
 public:
  CountingJob(int blocks, std::atomic<int>* steps, std::atomic<int>* ended)
      : blocks_(blocks), steps_(steps), ended_(ended) {}
  ~CountingJob() override { ended_->fetch_add(1); }
  Next Step() override {
    steps_->fetch_add(1);
    return ++done_ == blocks_ ? Next::kDone : Next::kStep;
  }
  absl::Duration RemainingWork() const override {
    return absl::Microseconds(blocks_ - done_);
  }
  void Cut(const absl::Status&) override {}

 private:
  const int blocks_;
  std::atomic<int>* const steps_;
  std::atomic<int>* const ended_;
  int done_ = 0;
};

TEST(BlockSchedulerThreadsTest, WorkersRunEveryStepAndShutdownIsConcurrent) {
  std::atomic<int> steps{0}, ended{0};
  BlockScheduler::Options options;
  options.workers = 2;
  auto s = std::make_unique<BlockScheduler>(options);
  std::vector<std::thread> submitters;
  for (int t = 0; t < 4; ++t) {
    submitters.emplace_back([&] {
      for (int i = 0; i < 100; ++i) {
        JobSpec spec;
        spec.task = "t";
        spec.criticality = i % 3;
        ASSERT_TRUE(
            s->Submit(spec, std::make_unique<CountingJob>(3, &steps, &ended))
                .ok());
      }
    });
  }
  for (std::thread& t : submitters) t.join();
  const absl::Time until = absl::Now() + absl::Seconds(30);
  while (ended.load() < 400 && absl::Now() < until) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_EQ(ended.load(), 400);
  EXPECT_EQ(steps.load(), 1200);
  // Several threads shut down at once (the destructor is a third caller).
  std::thread a([&] { s->Shutdown(); });
  std::thread b([&] { s->Shutdown(); });
  a.join();
  b.join();
  s.reset();
}

// A job of one step that runs until released.
class BlockingJob : public Job {
 public:
  BlockingJob(absl::Notification* started, absl::Notification* release,
              absl::Duration predicted = absl::Milliseconds(1),
              std::atomic<int>* nice = nullptr)
      : started_(started),
        release_(release),
        predicted_(predicted),
        nice_(nice) {}
  Next Step() override {
    if (nice_ != nullptr) {
      *nice_ =
          getpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)));
    }
    started_->Notify();
    if (release_ != nullptr) release_->WaitForNotification();
    return Next::kDone;
  }
  absl::Duration RemainingWork() const override { return predicted_; }
  void Cut(const absl::Status&) override {}

 private:
  absl::Notification* const started_;
  absl::Notification* const release_;
  const absl::Duration predicted_;
  std::atomic<int>* const nice_;  // Where Step records its thread's nice.
};

// Whether this process may lower a thread's nice value back to 0.
bool CanLowerNice() {
  bool can = false;
  std::thread([&can] {
    const id_t tid = static_cast<id_t>(syscall(SYS_gettid));
    can = setpriority(PRIO_PROCESS, tid, 10) == 0 &&
          setpriority(PRIO_PROCESS, tid, 0) == 0;
  }).join();
  return can;
}

TEST(BlockSchedulerThreadsTest, OnlyTheMostCriticalStepsRunAtNormalPriority) {
  if (!CanLowerNice()) {
    GTEST_SKIP() << "lowering a thread's nice value needs CAP_SYS_NICE";
  }
  BlockScheduler::Options options;
  options.workers = 2;
  options.lane.workers = 1;
  options.lane.max_step = absl::Milliseconds(5);
  options.lane.criticality = 2;
  options.lane.background_nice = 10;
  BlockScheduler s(options);
  auto submit = [&](int criticality, absl::Duration step,
                    absl::Notification* started, absl::Notification* release,
                    std::atomic<int>* nice) {
    JobSpec spec;
    spec.task = absl::StrCat("c", criticality);
    spec.criticality = criticality;
    spec.deadline = absl::Now() + absl::Seconds(60);
    ASSERT_TRUE(s.Submit(spec, std::make_unique<BlockingJob>(started, release,
                                                             step, nice))
                    .ok());
  };
  std::atomic<int> long_nice{-1}, lane_nice{-1}, critical_nice{-1};
  // A long step of a less critical job can only go to the second worker:
  // nice 10.
  absl::Notification long_started, long_release;
  submit(0, absl::Milliseconds(50), &long_started, &long_release, &long_nice);
  ASSERT_TRUE(long_started.WaitForNotificationWithTimeout(absl::Seconds(10)));
  // A short one of the same level holds the lane worker, at nice 10 too.
  absl::Notification lane_started, lane_release;
  submit(0, absl::Milliseconds(1), &lane_started, &lane_release, &lane_nice);
  ASSERT_TRUE(lane_started.WaitForNotificationWithTimeout(absl::Seconds(10)));
  long_release.Notify();
  // A critical step finds only the second worker free: it runs there, back
  // at nice 0.
  absl::Notification critical_started;
  submit(2, absl::Milliseconds(1), &critical_started, nullptr, &critical_nice);
  ASSERT_TRUE(
      critical_started.WaitForNotificationWithTimeout(absl::Seconds(10)));
  lane_release.Notify();
  s.Shutdown();  // Joins the workers before the notifications go.
  EXPECT_EQ(long_nice, 10);
  EXPECT_EQ(lane_nice, 10);
  EXPECT_EQ(critical_nice, 0);
}

TEST(BlockSchedulerThreadsTest, TheLaneTakesShortOrCriticalStepsOnly) {
  BlockScheduler::Options options;
  options.workers = 2;
  options.lane.workers = 1;
  options.lane.max_step = absl::Milliseconds(5);
  options.lane.criticality = 2;
  BlockScheduler s(options);
  auto submit = [&](int criticality, absl::Duration step,
                    absl::Notification* started, absl::Notification* release) {
    JobSpec spec;
    spec.task = absl::StrCat("c", criticality);
    spec.criticality = criticality;
    spec.deadline = absl::Now() + absl::Seconds(60);
    ASSERT_TRUE(
        s.Submit(spec, std::make_unique<BlockingJob>(started, release, step))
            .ok());
  };
  // A long block holds the general worker (the lane would not take it).
  absl::Notification long_started, long_release;
  submit(0, absl::Milliseconds(50), &long_started, &long_release);
  ASSERT_TRUE(long_started.WaitForNotificationWithTimeout(absl::Seconds(10)));
  // Another long low job waits: the lane does not take it.
  absl::Notification long_waits;
  submit(0, absl::Milliseconds(50), &long_waits, nullptr);
  // A short job of the same level runs beside the long block, and so does
  // a long critical one.
  absl::Notification short_started, short_release;
  submit(0, absl::Milliseconds(1), &short_started, &short_release);
  EXPECT_TRUE(short_started.WaitForNotificationWithTimeout(absl::Seconds(10)));
  short_release.Notify();
  absl::Notification critical_started;
  submit(2, absl::Milliseconds(50), &critical_started, nullptr);
  EXPECT_TRUE(
      critical_started.WaitForNotificationWithTimeout(absl::Seconds(10)));
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_FALSE(long_waits.HasBeenNotified());
  long_release.Notify();
  EXPECT_TRUE(long_waits.WaitForNotificationWithTimeout(absl::Seconds(10)));
}

TEST(BlockSchedulerThreadsTest, BesideAnExclusiveLaneOthersTakeOnlyLongSteps) {
  BlockScheduler::Options options;
  options.workers = 2;
  options.lane.workers = 1;
  options.lane.max_step = absl::Milliseconds(5);
  options.lane.exclusive = true;
  options.lane.background_nice = 0;  // Nothing to prove about the OS here.
  BlockScheduler s(options);
  auto submit = [&](absl::Duration step, absl::Notification* started,
                    absl::Notification* release) {
    JobSpec spec;
    spec.task = "t";
    spec.deadline = absl::Now() + absl::Seconds(60);
    ASSERT_TRUE(
        s.Submit(spec, std::make_unique<BlockingJob>(started, release, step))
            .ok());
  };
  // A short step holds the lane; another short one waits for it rather than
  // go to the other worker, which takes a long one.
  absl::Notification short_started, short_release, second_short, long_started;
  submit(absl::Milliseconds(1), &short_started, &short_release);
  ASSERT_TRUE(short_started.WaitForNotificationWithTimeout(absl::Seconds(10)));
  submit(absl::Milliseconds(1), &second_short, nullptr);
  submit(absl::Milliseconds(50), &long_started, nullptr);
  EXPECT_TRUE(long_started.WaitForNotificationWithTimeout(absl::Seconds(10)));
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_FALSE(second_short.HasBeenNotified());
  short_release.Notify();
  EXPECT_TRUE(second_short.WaitForNotificationWithTimeout(absl::Seconds(10)));
}

TEST(SchedulingPolicyTest, NamesRoundTripAndMisspellingsAreRefused) {
  for (int p = 0; p <= static_cast<int>(SchedulingPolicy::kTandemRt); ++p) {
    const auto policy = static_cast<SchedulingPolicy>(p);
    absl::StatusOr<SchedulingPolicy> parsed =
        ParseSchedulingPolicy(SchedulingPolicyName(policy));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, policy);
  }
  absl::StatusOr<SchedulingPolicy> bad = ParseSchedulingPolicy("tandem-rt");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("tandem_rt"));
}

}  // namespace
}  // namespace tandem
