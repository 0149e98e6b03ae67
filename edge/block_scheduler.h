// Real-time scheduling of DNN jobs at block granularity. A job is a chain of
// steps (a block, with its exit head; or one offload); the scheduler picks
// the next *step* to run, not the next request, so a critical job overtakes a
// long low-priority one at the next block boundary. A job whose tensor is in
// flight to the cloud holds no worker: its step returns kWait and the reply
// (or its failure, or the deadline guard) calls Resume.
//
// Torch-free and clock-injected: the agent's jobs run LibTorch blocks, the
// tests' jobs advance a FakeClock.
//
//   BlockScheduler scheduler({.workers = 1, .policy =
//   SchedulingPolicy::kTandemRt}); JobSpec spec{.task = "camera", .criticality
//   = 2, .deadline = now + 33ms}; absl::StatusOr<JobId> id =
//   scheduler.Submit(spec, std::move(job));
//
// Thread-safe. Jobs' methods are called with no scheduler lock held, one at a
// time per job.
#ifndef TANDEM_EDGE_BLOCK_SCHEDULER_H_
#define TANDEM_EDGE_BLOCK_SCHEDULER_H_

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace tandem {

// The orders the mixed bench compares; kTandemRt is the agent's.
enum class SchedulingPolicy {
  kFifo,           // Arrival order, each job to completion.
  kEdfRequest,     // Earliest deadline, each job to completion (the old
                   // per-request executor).
  kFixedPriority,  // Criticality, then arrival; preempts at block boundaries.
  kEdfEarlyDrop,   // EDF at block boundaries; a job whose predicted finish
                   // misses is dropped at dispatch (Clockwork-style).
  kLeastSlack,     // Least slack (deadline - now - remaining work) first, at
                   // block boundaries (Band-style).
  kImpreciseEdf,   // EDF where the blocks after a job's first exit are
                   // optional: they run only when no mandatory step waits,
                   // and are cut (answering from the exit) when they would
                   // miss.
  kTandemRt,       // Strict priority across criticality levels, EDF within
                   // (mandatory steps before optional ones); a fast lane
                   // for short steps (Options::lane); preempts at
                   // block boundaries; packs same-block jobs; a job whose
                   // mandatory part cannot finish in time is refused at
                   // once, and one whose optional rest would miss is cut
                   // (answered from its best exit), so doomed work never
                   // takes time from jobs that can still make it.
};

// "fifo", "edf_request", "fixed_priority", "edf_early_drop", "least_slack",
// "imprecise_edf", "tandem_rt"; INVALID_ARGUMENT for anything else.
absl::StatusOr<SchedulingPolicy> ParseSchedulingPolicy(absl::string_view name);
absl::string_view SchedulingPolicyName(SchedulingPolicy policy);

struct JobSpec {
  std::string task;     // For accounting and logs.
  int criticality = 0;  // Larger is more critical.
  absl::Time deadline = absl::InfiniteFuture();
};

// One request's work. The scheduler calls Step on a worker until it returns
// kDone, or Cut once, after which the job is destroyed.
class Job {
 public:
  enum class Next {
    kStep,  // Ready for its next step.
    kWait,  // Waiting on something outside (an offload): Resume() readies it.
    kDone,  // Answered (or failed) on its own.
  };
  virtual ~Job() = default;

  // Submit has accepted the job as `id` (the id Resume takes). Called under
  // the scheduler's lock before the job can run: store it, nothing more.
  virtual void OnSubmitted(uint64_t id) { (void)id; }

  // Runs one step (one block) on the calling worker.
  virtual Next Step() = 0;
  // The predicted time of the job's remaining steps on this device (profile
  // figures): the scheduler's slack and doom tests use it.
  virtual absl::Duration RemainingWork() const = 0;
  // The part of RemainingWork before the job can answer acceptably at all
  // (up to the first exit ahead that meets its floor): tandem_rt refuses a
  // job only when not even this fits before its deadline.
  virtual absl::Duration MandatoryWork() const { return RemainingWork(); }
  // True once an exit has produced an answer that meets the job's floor:
  // what is left only improves it (imprecise computation's optional part).
  virtual bool HasAcceptableAnswer() const { return false; }
  // The scheduler ends the job early: answer from the best exit so far when
  // `HasAcceptableAnswer()`, else fail with `why`. Called instead of Step.
  virtual void Cut(const absl::Status& why) = 0;

  // Packing. Ready jobs whose keys are equal and non-empty are at the same
  // step of the same model, and may run it as one batch.
  virtual std::string BatchKey() const { return {}; }
  // The predicted time of the next step run as a batch of `rows` jobs
  // (`rows` 1: alone); InfiniteDuration for a size the job cannot join.
  virtual absl::Duration NextStepTime(int rows) const {
    return rows == 1 ? RemainingWork() : absl::InfiniteDuration();
  }
  // Runs the next step of this job and of `others` (same key, all ready) as
  // one batch; returns what each does next, this job first. The default
  // steps them one after another.
  virtual std::vector<Next> StepBatch(const std::vector<Job*>& others) {
    std::vector<Next> next = {Step()};
    for (Job* other : others) next.push_back(other->Step());
    return next;
  }
};

class BlockScheduler {
 public:
  using JobId = uint64_t;

  // A fast lane. Blocks cannot be preempted, so a short urgent step could
  // wait behind a long block for longer than its deadline; the first
  // `workers` workers never start a long step — one predicted over
  // `max_step` — unless its job is at least `criticality` critical. With
  // more workers than cores the OS time-slices a lane step beside a long
  // block: the preemption blocks lack.
  // OS priority follows criticality: a step of a job less critical than
  // `criticality` runs at `background_nice` (Linux: setpriority on the
  // worker's thread; 10 weighs 1/9 of nice 0), every other step at nice 0,
  // on whichever worker: a critical step gets most of a shared core at once
  // instead of waiting out a slice beside a long block.
  // `exclusive`: the other workers take only what the lane does not, so a
  // short critical step never runs beside the lane on a worker that might
  // be busy with a long one (the agent does not use it: on one shared core
  // it starved the less critical short tasks in the mixed bench).
  struct Lane {
    int workers = 0;
    absl::Duration max_step = absl::ZeroDuration();
    int criticality = std::numeric_limits<int>::max();
    int background_nice = 10;
    bool exclusive = false;
  };

  struct Options {
    // Worker threads. 0: none; tests step the scheduler with RunOnce().
    int workers = 1;
    SchedulingPolicy policy = SchedulingPolicy::kTandemRt;
    Clock* clock = nullptr;  // Default RealClock().
    // Jobs held (ready, running or waiting) before Submit refuses.
    size_t max_jobs = 1024;
    // Runs first on every worker thread (thread-local torch settings).
    std::function<void()> thread_init;
    // Packing: at most this many jobs per step (1: none). A ready job joins
    // the step of a more urgent one of its criticality with its key when
    // the batch's predicted time (NextStepTime) lets every member still
    // meet its deadline.
    int max_batch = 1;
    Lane lane;
  };

  struct Counters {
    int64_t submitted = 0;
    int64_t steps = 0;
    int64_t done = 0;
    int64_t cut = 0;           // Ended by the scheduler (doomed or late).
    int64_t preemptions = 0;   // A step of another job ran between two of one.
    int64_t batches = 0;       // Steps that ran more than one job.
    int64_t batched_jobs = 0;  // Job steps that were part of those.
    absl::Duration busy;       // Summed over workers: time spent in steps.
    absl::Duration any_busy;   // Time at least one step was running: the
                               // device's busy time when its workers share
                               // fewer cores.
  };

  explicit BlockScheduler(Options options);
  ~BlockScheduler();  // Shutdown().
  BlockScheduler(const BlockScheduler&) = delete;
  BlockScheduler& operator=(const BlockScheduler&) = delete;

  // Takes `job`; its first step becomes ready now. RESOURCE_EXHAUSTED when
  // `max_jobs` are held, UNAVAILABLE after Shutdown: the job is then cut
  // with that status and destroyed without running.
  absl::StatusOr<JobId> Submit(const JobSpec& spec, std::unique_ptr<Job> job);

  // A job whose Step returned kWait is ready again. May be called from any
  // thread, even before that Step has returned; unknown ids are ignored.
  void Resume(JobId id);
  // Resume, but the job's next step runs on the calling thread rather than
  // on a worker: for a step that does no device work (answering from an
  // offload's reply), whose hand-off to a worker would cost more than the
  // step itself. A job still inside the step that returned kWait, or not
  // waiting, is left to the workers as Resume would.
  void ResumeHere(JobId id);

  // Runs one scheduling decision on the calling thread (a step, or a cut):
  // for tests with `workers = 0`. False when nothing is ready.
  // A job cut while waiting is destroyed at once: whatever will call Resume
  // for it must hold only the id (and state it shares with the job), never
  // the job itself.
  bool RunOnce();

  // Stops accepting; cuts ready and waiting jobs (UNAVAILABLE); joins the
  // workers after their current steps. Idempotent and safe to call from
  // several threads at once.
  void Shutdown();

  // Replaces Options::lane.
  void SetLane(const Lane& lane) ABSL_LOCKS_EXCLUDED(mu_);

  size_t ready_jobs() const;
  size_t held_jobs() const;
  Counters counters() const;

 private:
  struct Entry {
    JobSpec spec;
    std::unique_ptr<Job> job;
    uint64_t sequence = 0;  // Arrival order.
    bool started = false;   // Has run a step (run-to-completion policies).
    bool running = false;
    bool waiting = false;
    bool resumed_early = false;  // Resume() came while its step ran.
    bool optional = false;       // Cached HasAcceptableAnswer() after a step.
    absl::Duration remaining;    // Cached RemainingWork() after a step.
    absl::Duration mandatory;    // Cached MandatoryWork().
    std::string batch_key;       // Cached BatchKey().
    // Cached NextStepTime(rows) for rows 1..max_batch.
    std::vector<absl::Duration> step_times;
  };
  enum class Action { kStep, kCut };
  // What one worker does next: cut one job, or step one or more.
  struct Work {
    Action action = Action::kStep;
    absl::Status why;                            // Of a cut.
    std::vector<std::pair<JobId, Entry*>> jobs;  // The first leads a batch.
  };

  // The ready job to serve next under the policy, what to do with it, and
  // the jobs packed with it; false when nothing is ready.
  // Which jobs a worker takes: a lane worker those InLane; the others,
  // beside an exclusive lane, those not InLane; RunOnce any.
  enum class Serves { kAll, kLane, kOthers };
  Serves ServesOf(int worker) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool Takes(Serves serves, const Entry& entry) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool InLane(const Entry& entry) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool Pick(absl::Time now, Serves serves, Work* work)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Adds to `work` the ready jobs that may share its leader's step.
  void Pack(absl::Time now, Serves serves, Work* work)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Wakes the workers that may serve a newly ready job: all of them when
  // some serve only part of the jobs.
  void Wake() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether `a` goes before `b` under the policy.
  bool Before(const Entry& a, const Entry& b, absl::Time now) const;
  JobId Insert(const JobSpec& spec, std::unique_ptr<Job> job, Entry fresh)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Reads a job's cached figures (unlocked: they call into the job).
  void Refresh(Job* job, Entry* cache) const;
  void Serve(const Work& work) ABSL_LOCKS_EXCLUDED(mu_);
  // Removes a finished or cut job; the caller destroys it unlocked.
  std::unique_ptr<Job> Erase(JobId id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WorkerLoop(int index);

  const Options options_;
  Clock* const clock_;
  mutable absl::Mutex mu_;
  absl::CondVar ready_;  // Signalled when a job may have become ready.
  // Linear scans pick the next step: fine for the tens of jobs an edge
  // holds; a heap per criticality level would serve thousands.
  std::map<JobId, Entry> jobs_ ABSL_GUARDED_BY(mu_);
  JobId next_id_ ABSL_GUARDED_BY(mu_) = 1;
  JobId last_stepped_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  Lane lane_ ABSL_GUARDED_BY(mu_);
  Counters counters_ ABSL_GUARDED_BY(mu_);
  int running_steps_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time busy_since_ ABSL_GUARDED_BY(mu_);
  absl::Mutex shutdown_mu_;  // Serializes Shutdown's join.
  std::vector<std::thread> threads_;
};

}  // namespace tandem

#endif  // TANDEM_EDGE_BLOCK_SCHEDULER_H_
