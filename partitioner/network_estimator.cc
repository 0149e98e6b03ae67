#include "partitioner/network_estimator.h"

#include <algorithm>

namespace tandem {

NetworkEstimator::NetworkEstimator(Options options, Clock* clock)
    : options_(options),
      clock_(clock),
      throughput_(options.window),
      pending_(std::max(options.change_samples, 1)) {}

void NetworkEstimator::AddTransfer(int64_t bytes, absl::Duration elapsed,
                                   absl::Duration rtt_part) {
  last_sample_ = clock_->Now();
  const absl::Duration sending = elapsed - rtt_part;
  // Too short to time (a tiny tensor, or the tbf burst): a latency sample.
  if (bytes <= 0 || sending <= absl::Microseconds(50)) return;
  AddThroughput(bytes * 8.0 / absl::ToDoubleMicroseconds(sending));
}

void NetworkEstimator::AddIncompleteTransfer(int64_t bytes,
                                             absl::Duration elapsed) {
  last_sample_ = clock_->Now();
  if (bytes <= 0 || elapsed <= absl::ZeroDuration()) return;
  AddThroughput(0.25 * bytes * 8.0 / absl::ToDoubleMicroseconds(elapsed));
}

void NetworkEstimator::AddThroughput(double mbit) {
  const double current = uplink_mbit();
  const bool deviates =
      current > 0 && (mbit > current * options_.change_factor ||
                      mbit < current / options_.change_factor);
  if (!deviates) {
    deviations_ = 0;
    pending_.Clear();
    throughput_.Add(mbit);
    return;
  }
  ++deviations_;
  pending_.Add(mbit);
  if (deviations_ >= options_.change_samples) {
    // The link changed: forget the old samples, keep the new run.
    throughput_.Clear();
    for (double sample : pending_.Samples()) throughput_.Add(sample);
    pending_.Clear();
    deviations_ = 0;
    ++changes_;
  }
}

void NetworkEstimator::AddRtt(absl::Duration rtt) {
  last_sample_ = clock_->Now();
  rtt_ms_.Add(absl::ToDoubleMilliseconds(rtt));
}

double NetworkEstimator::uplink_mbit() const {
  return throughput_.empty() ? options_.initial_uplink_mbit
                             : throughput_.HarmonicMean();
}

double NetworkEstimator::rtt_ms() const {
  return rtt_ms_.has_value() ? rtt_ms_.value() : options_.initial_rtt_ms;
}

bool NetworkEstimator::NeedsProbe() const {
  return clock_->Now() - last_sample_ > options_.max_age;
}

tandem::v1::NetworkState NetworkEstimator::State() const {
  tandem::v1::NetworkState state;
  state.set_uplink_mbit(uplink_mbit());
  state.set_rtt_ms(rtt_ms());
  state.set_measured(!throughput_.empty());
  return state;
}

}  // namespace tandem
