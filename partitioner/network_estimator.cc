#include "partitioner/network_estimator.h"

#include <algorithm>

namespace tandem {

NetworkEstimator::Rate::Rate(size_t window, int change_samples)
    : window_(window), pending_(std::max(change_samples, 1)) {}

bool NetworkEstimator::Rate::Add(double mbit, double change_factor,
                                 int change_samples) {
  const double current = Estimate();
  const bool deviates = current > 0 && (mbit > current * change_factor ||
                                        mbit < current / change_factor);
  if (!deviates) {
    deviations_ = 0;
    pending_.Clear();
    window_.Add(mbit);
    return false;
  }
  ++deviations_;
  pending_.Add(mbit);
  if (deviations_ < change_samples) return false;
  // The link changed: forget the old samples, keep the new run.
  window_.Clear();
  for (double sample : pending_.Samples()) window_.Add(sample);
  pending_.Clear();
  deviations_ = 0;
  return true;
}

double NetworkEstimator::Rate::Estimate() const {
  return window_.empty() ? 0 : window_.HarmonicMean();
}

NetworkEstimator::NetworkEstimator(Options options, Clock* clock)
    : options_(options),
      clock_(clock),
      throughput_(options.window, options.change_samples) {}

// Shortest sending time a throughput sample is computed from: below it the
// transfer went through faster than it can be timed.
constexpr absl::Duration kMinSending = absl::Microseconds(50);

void NetworkEstimator::AddTransfer(int64_t bytes, absl::Duration elapsed,
                                   absl::Duration rtt_part) {
  last_sample_ = clock_->Now();
  const absl::Duration sending = elapsed - rtt_part;
  if (bytes <= 0) return;
  // Too short to time (a tiny tensor, or one the link's bucket let through):
  // no sample of the link's rate, but its size class learns that transfers
  // of this size are at least that fast.
  const double mbit =
      bytes * 8.0 / absl::ToDoubleMicroseconds(std::max(sending, kMinSending));
  AddClassSample(bytes, mbit);
  if (sending <= kMinSending) return;
  AddThroughput(mbit);
}

void NetworkEstimator::AddIncompleteTransfer(int64_t bytes,
                                             absl::Duration elapsed) {
  last_sample_ = clock_->Now();
  if (bytes <= 0 || elapsed <= absl::ZeroDuration()) return;
  const double mbit = 0.25 * bytes * 8.0 / absl::ToDoubleMicroseconds(elapsed);
  AddClassSample(bytes, mbit);
  AddThroughput(mbit);
}

void NetworkEstimator::AddThroughput(double mbit) {
  if (throughput_.Add(mbit, options_.change_factor, options_.change_samples))
    ++changes_;
}

int NetworkEstimator::ClassOf(int64_t bytes) {
  int c = 0;
  while (bytes > 1) {
    bytes >>= 1;
    ++c;
  }
  return c;
}

void NetworkEstimator::AddClassSample(int64_t bytes, double mbit) {
  auto [it, added] = classes_.try_emplace(
      ClassOf(bytes),
      SizeClass{Rate(options_.window, options_.change_samples)});
  if (it->second.rate.Add(mbit, options_.change_factor,
                          options_.change_samples)) {
    ++class_changes_;
  }
  it->second.last_sample = clock_->Now();
}

double NetworkEstimator::ClassUplinkMbit(int64_t bytes) const {
  auto it = classes_.find(ClassOf(bytes));
  if (it == classes_.end() || it->second.rate.size() < 2 ||
      clock_->Now() - it->second.last_sample > options_.max_age) {
    return 0;
  }
  return it->second.rate.Estimate();
}

void NetworkEstimator::AddRtt(absl::Duration rtt) {
  last_sample_ = clock_->Now();
  AddRttSample(absl::ToDoubleMilliseconds(rtt));
}

void NetworkEstimator::AddPing(absl::Duration rtt) {
  AddRttSample(absl::ToDoubleMilliseconds(rtt));
}

void NetworkEstimator::AddRttSample(double ms) {
  constexpr size_t kMaxSamples = 256;
  const absl::Time now = clock_->Now();
  // A later, shorter round trip makes every longer one before it irrelevant
  // to the minimum: no queue makes a round trip faster than the path allows.
  while (!rtt_ms_.empty() && rtt_ms_.back().second >= ms) rtt_ms_.pop_back();
  rtt_ms_.emplace_back(now, ms);
  while (rtt_ms_.size() > 1 &&
         (now - rtt_ms_.front().first > options_.rtt_window ||
          rtt_ms_.size() > kMaxSamples)) {
    rtt_ms_.pop_front();
  }
}

double NetworkEstimator::uplink_mbit() const {
  return throughput_.size() == 0 ? options_.initial_uplink_mbit
                                 : throughput_.Estimate();
}

double NetworkEstimator::rtt_ms() const {
  if (rtt_ms_.empty()) return options_.initial_rtt_ms;
  const absl::Time since = clock_->Now() - options_.rtt_window;
  for (const auto& [when, ms] : rtt_ms_) {
    if (when >= since) return ms;
  }
  return rtt_ms_.back().second;  // All old: the newest is still the best.
}

bool NetworkEstimator::NeedsProbe() const {
  return clock_->Now() - last_sample_ > options_.max_age;
}

tandem::v1::NetworkState NetworkEstimator::State() const {
  tandem::v1::NetworkState state;
  state.set_uplink_mbit(uplink_mbit());
  state.set_rtt_ms(rtt_ms());
  state.set_measured(throughput_.size() > 0);
  for (const auto& [c, size_class] : classes_) {
    const int64_t min_bytes = int64_t{1} << c;
    const double mbit = ClassUplinkMbit(min_bytes);
    if (mbit <= 0) continue;
    tandem::v1::NetworkState::SizeClass* out = state.add_size_classes();
    out->set_min_bytes(min_bytes);
    out->set_max_bytes(2 * min_bytes - 1);
    out->set_uplink_mbit(mbit);
  }
  return state;
}

}  // namespace tandem
