#include "edge/block_scheduler.h"

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
      clock_(options_.clock != nullptr ? options_.clock : RealClock()) {
  for (int i = 0; i < options_.workers; ++i) {
    threads_.emplace_back([this] { WorkerLoop(); });
  }
}

BlockScheduler::~BlockScheduler() { Shutdown(); }

absl::StatusOr<BlockScheduler::JobId> BlockScheduler::Submit(
    const JobSpec& spec, std::unique_ptr<Job> job) {
  const absl::Duration remaining = job->RemainingWork();
  absl::MutexLock lock(&mu_);
  if (stopping_) return absl::UnavailableError("the scheduler is shut down");
  if (jobs_.size() >= options_.max_jobs) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the edge holds ", jobs_.size(), " jobs (max_jobs ",
                     options_.max_jobs, "); task '", spec.task, "' refused"));
  }
  const JobId id = next_id_++;
  Entry& entry = jobs_[id];
  entry.spec = spec;
  entry.job = std::move(job);
  entry.sequence = id;
  entry.remaining = remaining;
  ++counters_.submitted;
  ready_.Signal();
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
    ready_.Signal();
  }
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

BlockScheduler::Entry* BlockScheduler::Pick(absl::Time now, JobId* id,
                                            Action* action, absl::Status* why) {
  Entry* best = nullptr;
  const bool to_completion = RunsToCompletion(options_.policy);
  for (auto& [entry_id, entry] : jobs_) {
    if (entry.running || entry.waiting) continue;
    if (best != nullptr) {
      // A started job of a run-to-completion policy goes first.
      if (to_completion && entry.started != best->started) {
        if (!entry.started) continue;
      } else if (!Before(entry, *best, now)) {
        continue;
      }
    }
    best = &entry;
    *id = entry_id;
  }
  if (best == nullptr) return nullptr;
  *action = Action::kStep;
  const Entry& e = *best;
  if (now >= e.spec.deadline) {
    *action = Action::kCut;
    *why = absl::DeadlineExceededError(absl::StrCat(
        "task '", e.spec.task, "': the deadline passed before its next block"));
  } else if (now + e.remaining > e.spec.deadline) {
    const bool doomed_cut =
        options_.policy == SchedulingPolicy::kEdfEarlyDrop ||
        options_.policy == SchedulingPolicy::kTandemRt ||
        (options_.policy == SchedulingPolicy::kImpreciseEdf && e.optional);
    if (doomed_cut) {
      *action = Action::kCut;
      *why = absl::DeadlineExceededError(absl::StrFormat(
          "task '%s': %.2f ms of blocks left, %.2f ms to the deadline",
          e.spec.task, absl::ToDoubleMilliseconds(e.remaining),
          absl::ToDoubleMilliseconds(e.spec.deadline - now)));
    }
  }
  if (*action == Action::kStep) {
    // Another job's step while the last one stepped is still ready: the
    // last one was preempted at its block boundary.
    auto last = jobs_.find(last_stepped_);
    if (last_stepped_ != *id && last != jobs_.end() && !last->second.running &&
        !last->second.waiting) {
      ++counters_.preemptions;
    }
    last_stepped_ = *id;
    best->started = true;
  }
  best->running = true;
  return best;
}

std::unique_ptr<Job> BlockScheduler::Erase(JobId id) {
  auto it = jobs_.find(id);
  std::unique_ptr<Job> job = std::move(it->second.job);
  jobs_.erase(it);
  ready_.SignalAll();  // Room under max_jobs; Shutdown may be waiting.
  return job;
}

void BlockScheduler::Serve(JobId id, Entry* entry, Action action,
                           const absl::Status& why) {
  // `entry` stays valid while `running` is set: only this thread erases it.
  Job* job = entry->job.get();
  std::unique_ptr<Job> finished;  // Destroyed unlocked: it may hold tensors.
  if (action == Action::kCut) {
    job->Cut(why);
    absl::MutexLock lock(&mu_);
    ++counters_.cut;
    finished = Erase(id);
    return;
  }
  const Job::Next next = job->Step();
  const absl::Duration remaining =
      next == Job::Next::kDone ? absl::ZeroDuration() : job->RemainingWork();
  const bool optional = next != Job::Next::kDone && job->HasAcceptableAnswer();
  bool cut_now = false;
  {
    absl::MutexLock lock(&mu_);
    ++counters_.steps;
    entry->running = false;
    entry->remaining = remaining;
    entry->optional = optional;
    if (next == Job::Next::kWait) entry->waiting = !entry->resumed_early;
    entry->resumed_early = false;
    if (next == Job::Next::kDone) {
      ++counters_.done;
      finished = Erase(id);
    } else if (stopping_) {
      ++counters_.cut;
      cut_now = true;
      finished = Erase(id);
    } else if (!entry->waiting) {
      ready_.Signal();
    }
  }
  if (cut_now) finished->Cut(absl::UnavailableError("the agent is stopping"));
}

bool BlockScheduler::RunOnce() {
  JobId id = 0;
  Action action;
  absl::Status why;
  Entry* entry;
  {
    absl::MutexLock lock(&mu_);
    entry = Pick(clock_->Now(), &id, &action, &why);
    if (entry == nullptr) return false;
  }
  Serve(id, entry, action, why);
  return true;
}

void BlockScheduler::WorkerLoop() {
  if (options_.thread_init) options_.thread_init();
  while (true) {
    JobId id = 0;
    Action action;
    absl::Status why;
    Entry* entry = nullptr;
    {
      absl::MutexLock lock(&mu_);
      // Only Submit, Resume and finished steps make a job ready; a ready job
      // is served at once (late ones are cut), so no timed wake-up is needed.
      while (!stopping_ &&
             (entry = Pick(clock_->Now(), &id, &action, &why)) == nullptr) {
        ready_.Wait(&mu_);
      }
      if (entry == nullptr) return;
    }
    Serve(id, entry, action, why);
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
  return counters_;
}

}  // namespace tandem
