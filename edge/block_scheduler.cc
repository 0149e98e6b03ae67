#include "edge/block_scheduler.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace tandem {
namespace {

struct PolicyName {
  SchedulingPolicy policy;
  absl::string_view name;
};
constexpr PolicyName kPolicyNames[] = {
    {SchedulingPolicy::kFifo, "fifo"},
    {SchedulingPolicy::kEdfRequest, "edf_request"},
    {SchedulingPolicy::kFixedPriority, "fixed_priority"},
    {SchedulingPolicy::kEdfEarlyDrop, "edf_early_drop"},
    {SchedulingPolicy::kLeastSlack, "least_slack"},
    {SchedulingPolicy::kImpreciseEdf, "imprecise_edf"},
    {SchedulingPolicy::kTandemRt, "tandem_rt"},
};

// Policies that run a started job to completion before the next one.
bool RunsToCompletion(SchedulingPolicy policy) {
  return policy == SchedulingPolicy::kFifo ||
         policy == SchedulingPolicy::kEdfRequest;
}

}  // namespace

absl::StatusOr<SchedulingPolicy> ParseSchedulingPolicy(absl::string_view name) {
  std::string known;
  for (const PolicyName& p : kPolicyNames) {
    if (p.name == name) return p.policy;
    absl::StrAppend(&known, known.empty() ? "" : ", ", p.name);
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown scheduling policy '", name, "' (one of ", known, ")"));
}

absl::string_view SchedulingPolicyName(SchedulingPolicy policy) {
  for (const PolicyName& p : kPolicyNames) {
    if (p.policy == policy) return p.name;
  }
  return "unknown";
}

BlockScheduler::BlockScheduler(Options options)
    : options_(std::move(options)),
      clock_(options_.clock != nullptr ? options_.clock : RealClock()),
      lane_(options_.lane) {
  for (int i = 0; i < options_.workers; ++i) {
    threads_.emplace_back([this, i] { WorkerLoop(i); });
  }
}

void BlockScheduler::SetLane(const Lane& lane) {
  absl::MutexLock lock(&mu_);
  lane_ = lane;
  ready_.SignalAll();
}

void BlockScheduler::Wake() {
  if (lane_.workers > 0) {
    ready_.SignalAll();
  } else {
    ready_.Signal();
  }
}

BlockScheduler::~BlockScheduler() { Shutdown(); }

void BlockScheduler::Refresh(Job* job, Entry* cache) const {
  cache->remaining = job->RemainingWork();
  cache->mandatory = job->MandatoryWork();
  cache->optional = job->HasAcceptableAnswer();
  cache->batch_key = job->BatchKey();
  cache->step_times.clear();
  const int rows = cache->batch_key.empty() ? 1 : options_.max_batch;
  for (int r = 1; r <= rows; ++r)
    cache->step_times.push_back(job->NextStepTime(r));
}

absl::StatusOr<BlockScheduler::JobId> BlockScheduler::Submit(
    const JobSpec& spec, std::unique_ptr<Job> job) {
  Entry fresh;
  Refresh(job.get(), &fresh);
  absl::Status refused;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      refused = absl::UnavailableError("the scheduler is shut down");
    } else if (jobs_.size() >= options_.max_jobs) {
      refused = absl::ResourceExhaustedError(
          absl::StrCat("the edge holds ", jobs_.size(), " jobs (max_jobs ",
                       options_.max_jobs, "); task '", spec.task, "' refused"));
    } else {
      return Insert(spec, std::move(job), std::move(fresh));
    }
  }
  job->Cut(refused);
  return refused;
}

BlockScheduler::JobId BlockScheduler::Insert(const JobSpec& spec,
                                             std::unique_ptr<Job> job,
                                             Entry fresh) {
  const JobId id = next_id_++;
  job->OnSubmitted(id);
  Entry& entry = jobs_[id];
  entry = std::move(fresh);
  entry.spec = spec;
  entry.job = std::move(job);
  entry.sequence = id;
  ++counters_.submitted;
  Wake();
  return id;
}

void BlockScheduler::Resume(JobId id) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return;
  if (it->second.running) {
    it->second.resumed_early = true;
  } else if (it->second.waiting) {
    it->second.waiting = false;
    Wake();
  }
}

void BlockScheduler::ResumeHere(JobId id) {
  Work work;
  {
    absl::MutexLock lock(&mu_);
    auto it = jobs_.find(id);
    if (it == jobs_.end()) return;
    Entry& entry = it->second;
    if (entry.running) {
      entry.resumed_early = true;
      return;
    }
    if (!entry.waiting) return;
    entry.waiting = false;
    if (stopping_) {
      Wake();  // Shutdown cuts it.
      return;
    }
    const absl::Time now = clock_->Now();
    work.jobs = {{id, &entry}};
    entry.running = true;
    if (now >= entry.spec.deadline) {
      work.action = Action::kCut;
      work.why = absl::DeadlineExceededError(absl::StrCat(
          "task '", entry.spec.task, "': the deadline passed while waiting"));
    } else {
      entry.started = true;
      if (running_steps_++ == 0) busy_since_ = now;
    }
  }
  Serve(work);
}

bool BlockScheduler::Before(const Entry& a, const Entry& b,
                            absl::Time now) const {
  const bool by_arrival = a.sequence < b.sequence;
  switch (options_.policy) {
    case SchedulingPolicy::kFifo:
      return by_arrival;
    case SchedulingPolicy::kFixedPriority:
      if (a.spec.criticality != b.spec.criticality)
        return a.spec.criticality > b.spec.criticality;
      return by_arrival;
    case SchedulingPolicy::kLeastSlack: {
      const absl::Duration slack_a = a.spec.deadline - now - a.remaining;
      const absl::Duration slack_b = b.spec.deadline - now - b.remaining;
      if (slack_a != slack_b) return slack_a < slack_b;
      return by_arrival;
    }
    case SchedulingPolicy::kImpreciseEdf:
      if (a.optional != b.optional) return !a.optional;
      break;
    case SchedulingPolicy::kTandemRt:
      if (a.spec.criticality != b.spec.criticality)
        return a.spec.criticality > b.spec.criticality;
      if (a.optional != b.optional) return !a.optional;
      break;
    case SchedulingPolicy::kEdfRequest:
    case SchedulingPolicy::kEdfEarlyDrop:
      break;
  }
  if (a.spec.deadline != b.spec.deadline)
    return a.spec.deadline < b.spec.deadline;
  return by_arrival;
}

bool BlockScheduler::Pick(absl::Time now, Serves serves, Work* work) {
  Entry* best = nullptr;
  JobId best_id = 0;
  const bool to_completion = RunsToCompletion(options_.policy);
  for (auto& [entry_id, entry] : jobs_) {
    if (entry.running || entry.waiting || !Takes(serves, entry)) continue;
    if (best != nullptr) {
      // A started job of a run-to-completion policy goes first.
      if (to_completion && entry.started != best->started) {
        if (!entry.started) continue;
      } else if (!Before(entry, *best, now)) {
        continue;
      }
    }
    best = &entry;
    best_id = entry_id;
  }
  if (best == nullptr) return false;
  work->action = Action::kStep;
  work->jobs = {{best_id, best}};
  const Entry& e = *best;
  if (now >= e.spec.deadline) {
    work->action = Action::kCut;
    work->why = absl::DeadlineExceededError(absl::StrCat(
        "task '", e.spec.task, "': the deadline passed before its next block"));
  } else if (now + e.remaining > e.spec.deadline) {
    // tandem_rt keeps a job whose mandatory part still fits (it may answer
    // from an exit ahead); the others judge by the whole rest.
    const bool doomed_cut =
        options_.policy == SchedulingPolicy::kEdfEarlyDrop ||
        (options_.policy == SchedulingPolicy::kTandemRt &&
         (e.optional || now + e.mandatory > e.spec.deadline)) ||
        (options_.policy == SchedulingPolicy::kImpreciseEdf && e.optional);
    if (doomed_cut) {
      work->action = Action::kCut;
      work->why = absl::DeadlineExceededError(absl::StrFormat(
          "task '%s': %.2f ms of blocks left, %.2f ms to the deadline",
          e.spec.task, absl::ToDoubleMilliseconds(e.remaining),
          absl::ToDoubleMilliseconds(e.spec.deadline - now)));
    }
  }
  if (work->action == Action::kStep) {
    // Another job's step while the last one stepped is still ready: the
    // last one was preempted at its block boundary.
    auto last = jobs_.find(last_stepped_);
    if (last_stepped_ != best_id && last != jobs_.end() &&
        !last->second.running && !last->second.waiting) {
      ++counters_.preemptions;
    }
    last_stepped_ = best_id;
    if (options_.max_batch > 1 && !e.batch_key.empty()) Pack(now, serves, work);
  }
  for (auto& [id, entry] : work->jobs) {
    entry->running = true;
    if (work->action == Action::kStep) entry->started = true;
  }
  if (work->action == Action::kStep && running_steps_++ == 0) busy_since_ = now;
  return true;
}

bool BlockScheduler::InLane(const Entry& entry) const {
  const absl::Duration step =
      entry.step_times.empty() ? entry.remaining : entry.step_times.front();
  return entry.spec.criticality >= lane_.criticality || step <= lane_.max_step;
}

bool BlockScheduler::Takes(Serves serves, const Entry& entry) const {
  switch (serves) {
    case Serves::kAll:
      return true;
    case Serves::kLane:
      return InLane(entry);
    case Serves::kOthers:
      return !(lane_.exclusive && lane_.workers > 0) || !InLane(entry);
  }
  return true;
}

BlockScheduler::Serves BlockScheduler::ServesOf(int worker) const {
  return worker < lane_.workers ? Serves::kLane : Serves::kOthers;
}

void BlockScheduler::Pack(absl::Time now, Serves serves, Work* work) {
  Entry& leader = *work->jobs.front().second;
  // Candidates in the policy's order, most urgent first.
  std::vector<std::pair<JobId, Entry*>> candidates;
  for (auto& [id, entry] : jobs_) {
    if (&entry == &leader || entry.running || entry.waiting ||
        entry.batch_key != leader.batch_key || now >= entry.spec.deadline ||
        entry.step_times.empty() || !Takes(serves, entry) ||
        // Rows of a less critical job would lengthen a more critical one's
        // step: only peers pack.
        entry.spec.criticality != leader.spec.criticality) {
      continue;
    }
    candidates.emplace_back(id, &entry);
  }
  std::sort(candidates.begin(), candidates.end(),
            [&](const auto& a, const auto& b) {
              return Before(*a.second, *b.second, now);
            });
  // Whether every member still meets its deadline when the step takes
  // `step` instead of its own single-row time.
  auto all_meet = [&](const std::vector<std::pair<JobId, Entry*>>& members,
                      absl::Duration step) {
    for (const auto& [id, m] : members) {
      if (now + step + (m->remaining - m->step_times.front()) >
          m->spec.deadline) {
        return false;
      }
    }
    return true;
  };
  for (const auto& candidate : candidates) {
    const size_t rows = work->jobs.size() + 1;
    if (rows > leader.step_times.size()) break;
    const absl::Duration step = leader.step_times[rows - 1];
    if (step == absl::InfiniteDuration()) break;
    // A lane worker keeps its batches short too.
    if (serves == Serves::kLane &&
        leader.spec.criticality < lane_.criticality && step > lane_.max_step) {
      break;
    }
    work->jobs.push_back(candidate);
    if (!all_meet(work->jobs, step)) work->jobs.pop_back();
  }
}

std::unique_ptr<Job> BlockScheduler::Erase(JobId id) {
  auto it = jobs_.find(id);
  std::unique_ptr<Job> job = std::move(it->second.job);
  jobs_.erase(it);
  ready_.SignalAll();  // Room under max_jobs; Shutdown may be waiting.
  return job;
}

void BlockScheduler::Serve(const Work& work) {
  // Entries stay valid while `running` is set: only this thread erases them.
  std::vector<std::unique_ptr<Job>> finished;  // Destroyed unlocked.
  if (work.action == Action::kCut) {
    const auto& [id, entry] = work.jobs.front();
    entry->job->Cut(work.why);
    absl::MutexLock lock(&mu_);
    ++counters_.cut;
    finished.push_back(Erase(id));
    return;
  }
  Job* leader = work.jobs.front().second->job.get();
  std::vector<Job*> others;
  for (size_t i = 1; i < work.jobs.size(); ++i)
    others.push_back(work.jobs[i].second->job.get());
  const absl::Time start = clock_->Now();
  const std::vector<Job::Next> next =
      others.empty() ? std::vector<Job::Next>{leader->Step()}
                     : leader->StepBatch(others);
  const absl::Duration busy = clock_->Now() - start;
  std::vector<Entry> fresh(work.jobs.size());
  for (size_t i = 0; i < work.jobs.size(); ++i) {
    if (next[i] != Job::Next::kDone)
      Refresh(work.jobs[i].second->job.get(), &fresh[i]);
  }
  std::vector<Job*> cut_now;
  {
    absl::MutexLock lock(&mu_);
    counters_.busy += busy;
    if (--running_steps_ == 0)
      counters_.any_busy += clock_->Now() - busy_since_;
    if (work.jobs.size() > 1) {
      ++counters_.batches;
      counters_.batched_jobs += static_cast<int64_t>(work.jobs.size());
    }
    for (size_t i = 0; i < work.jobs.size(); ++i) {
      const auto& [id, entry] = work.jobs[i];
      ++counters_.steps;
      entry->running = false;
      entry->remaining = fresh[i].remaining;
      entry->mandatory = fresh[i].mandatory;
      entry->optional = fresh[i].optional;
      entry->batch_key = std::move(fresh[i].batch_key);
      entry->step_times = std::move(fresh[i].step_times);
      if (next[i] == Job::Next::kWait) entry->waiting = !entry->resumed_early;
      entry->resumed_early = false;
      if (next[i] == Job::Next::kDone) {
        ++counters_.done;
        finished.push_back(Erase(id));
      } else if (stopping_) {
        ++counters_.cut;
        finished.push_back(Erase(id));
        cut_now.push_back(finished.back().get());
      } else if (!entry->waiting) {
        Wake();
      }
    }
  }
  for (Job* job : cut_now)
    job->Cut(absl::UnavailableError("the agent is stopping"));
}

bool BlockScheduler::RunOnce() {
  Work work;
  {
    absl::MutexLock lock(&mu_);
    // RunOnce stands for every worker at once.
    if (!Pick(clock_->Now(), Serves::kAll, &work)) return false;
  }
  Serve(work);
  return true;
}

void BlockScheduler::WorkerLoop(int index) {
  if (options_.thread_init) options_.thread_init();
  int nice = 0;  // This thread's.
  while (true) {
    Work work;
    int wanted = 0;  // The nice value the work runs at.
    {
      absl::MutexLock lock(&mu_);
      // Only Submit, Resume and finished steps make a job ready; a ready job
      // is served at once (late ones are cut), so no timed wake-up is needed.
      bool found = false;
      while (!stopping_ &&
             !(found = Pick(clock_->Now(), ServesOf(index), &work))) {
        ready_.Wait(&mu_);
      }
      if (!found) return;
      // OS priority follows criticality: a step of the most critical level
      // runs at nice 0 and every other step in the background, so that a
      // critical step gets most of a shared core at once, on either worker,
      // beside a long block or a less critical short step.
      if (lane_.workers > 0 && work.action == Action::kStep &&
          work.jobs.front().second->spec.criticality < lane_.criticality) {
        wanted = lane_.background_nice;
      }
    }
    if (wanted != nice) {
      // Raising nice is always allowed; lowering it back may need
      // privileges (CAP_SYS_NICE or RLIMIT_NICE), and is then left as it
      // is.
      if (setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)),
                      wanted) == 0) {
        nice = wanted;
      }
    }
    Serve(work);
  }
}

void BlockScheduler::Shutdown() {
  // Concurrent callers queue here; the first joins, the others find no
  // threads left.
  absl::MutexLock shutdown(&shutdown_mu_);
  std::vector<std::unique_ptr<Job>> dropped;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    for (auto it = jobs_.begin(); it != jobs_.end();) {
      if (it->second.running) {
        ++it;
        continue;
      }
      dropped.push_back(std::move(it->second.job));
      ++counters_.cut;
      it = jobs_.erase(it);
    }
    ready_.SignalAll();
  }
  for (std::unique_ptr<Job>& job : dropped) {
    job->Cut(absl::UnavailableError("the agent is stopping"));
  }
  dropped.clear();
  for (std::thread& t : threads_) t.join();
  threads_.clear();
}

size_t BlockScheduler::ready_jobs() const {
  absl::MutexLock lock(&mu_);
  size_t n = 0;
  for (const auto& [id, entry] : jobs_) n += !entry.running && !entry.waiting;
  return n;
}

size_t BlockScheduler::held_jobs() const {
  absl::MutexLock lock(&mu_);
  return jobs_.size();
}

BlockScheduler::Counters BlockScheduler::counters() const {
  absl::MutexLock lock(&mu_);
  Counters now = counters_;
  if (running_steps_ > 0) now.any_busy += clock_->Now() - busy_since_;
  return now;
}

}  // namespace tandem
