// Estimates uplink bandwidth and round-trip time from passive samples (every
// transfer the agent makes) and active probes. Bandwidth is the harmonic
// mean of the recent throughput samples, robust to a few fast outliers; a
// sustained shift (several samples in a row far from the estimate) is taken
// as a change of link and restarts the window, so the estimate follows a
// falling link within a few requests instead of averaging it away.
//
// Links treat sizes differently: a token bucket (a shaped cellular uplink,
// tc tbf) lets a transfer that fits in its bucket through at line rate and
// holds larger ones to the rate, so one window mixing sizes swings between
// two regimes. The estimator therefore also keeps one window per size class
// (powers of two), with the same change detection, and State() reports the
// classes with fresh samples; the planner prices a transfer at its own
// class's throughput when there is one (UplinkMbitFor in planner.h).
//
// Thread-compatible: callers that share one guard it. Time comes from the
// injected Clock (tests use FakeClock).
#ifndef TANDEM_PARTITIONER_NETWORK_ESTIMATOR_H_
#define TANDEM_PARTITIONER_NETWORK_ESTIMATOR_H_

#include <cstdint>
#include <deque>
#include <map>
#include <utility>

#include "absl/time/time.h"
#include "common/clock.h"
#include "common/stats.h"
#include "tandem/v1/profile.pb.h"

namespace tandem {

class NetworkEstimator {
 public:
  struct Options {
    size_t window = 8;  // Throughput samples kept.
    double change_factor =
        2.0;  // A sample this far off (either way) is a deviation...
    int change_samples = 2;  // ...and this many in a row a change of link.
    absl::Duration max_age =
        absl::Seconds(10);           // Older estimates call for a probe.
    double initial_uplink_mbit = 0;  // Assumed before any sample; 0: unknown.
    double initial_rtt_ms = 0;
    // The RTT estimate is the least round trip seen this long (BBR's
    // min_rtt): queueing only ever adds to a round trip.
    absl::Duration rtt_window = absl::Seconds(10);
  };

  NetworkEstimator(Options options, Clock* clock);

  // A transfer of `bytes` that took `seconds` from the first byte sent to the
  // answer (the round trip), of which `rtt` was not spent sending.
  void AddTransfer(int64_t bytes, absl::Duration elapsed,
                   absl::Duration rtt_part);
  // A transfer of `bytes` cut off after `elapsed` (its deadline passed): the
  // link carried only part of it. Counted as a quarter of bytes / elapsed, a
  // pessimistic sample that lets a fallen link be noticed within two of them.
  void AddIncompleteTransfer(int64_t bytes, absl::Duration elapsed);
  // A round trip measured along with a probe or a transfer (a transfer's
  // whole network time bounds the round trip from above).
  void AddRtt(absl::Duration rtt);
  // A lone ping's round trip: an RTT sample that does not count as having
  // measured the link (NeedsProbe is unchanged), so that pings can run while
  // the link is busy, where queued behind transfers they read high and the
  // windowed minimum ignores them.
  void AddPing(absl::Duration rtt);

  bool has_estimate() const { return uplink_mbit() > 0; }
  double uplink_mbit() const;
  double rtt_ms() const;
  // True when no sample arrived within max_age: time for an active probe.
  bool NeedsProbe() const;
  // True when the last throughput sample deviated from the estimate and the
  // next decides whether the link changed: a prober confirms it at once
  // instead of after its interval, halving the time a recovered link goes
  // unnoticed while nothing else uses it.
  bool ChangePending() const { return throughput_.pending(); }
  // Times the estimator decided the link had changed.
  int changes() const { return changes_; }
  // Changes of link seen by any size class (each class detects its own).
  int class_changes() const { return class_changes_; }
  // The throughput of transfers in `bytes`'s size class, when that class has
  // at least two samples and one younger than max_age; else 0.
  double ClassUplinkMbit(int64_t bytes) const;
  // What the planner prices a transfer of `bytes` at (UplinkMbitFor of
  // State(), without building it): its class's throughput, else the overall
  // estimate.
  double UplinkMbitFor(int64_t bytes) const {
    const double mbit = ClassUplinkMbit(bytes);
    return mbit > 0 ? mbit : uplink_mbit();
  }

  tandem::v1::NetworkState State() const;

 private:
  // A window of throughput samples with change detection.
  class Rate {
   public:
    Rate(size_t window, int change_samples);
    // True when the sample completed a change of link.
    bool Add(double mbit, double change_factor, int change_samples);
    double Estimate() const;  // 0 when empty.
    bool pending() const { return deviations_ > 0; }
    size_t size() const { return window_.size(); }

   private:
    SampleWindow window_;
    SampleWindow pending_;  // The deviating run, the window after a change.
    int deviations_ = 0;
  };
  struct SizeClass {
    Rate rate;
    absl::Time last_sample = absl::InfinitePast();
  };

  void AddThroughput(double mbit);
  void AddRttSample(double ms);
  void AddClassSample(int64_t bytes, double mbit);
  static int ClassOf(int64_t bytes);

  const Options options_;
  Clock* const clock_;
  Rate throughput_;
  std::map<int, SizeClass> classes_;  // By floor(log2(bytes)).
  // Round trips of the last rtt_window, increasing from the front (each
  // sample evicts the larger ones before it): the front is the minimum.
  std::deque<std::pair<absl::Time, double>> rtt_ms_;
  int changes_ = 0;
  int class_changes_ = 0;
  absl::Time last_sample_ = absl::InfinitePast();
};

}  // namespace tandem

#endif  // TANDEM_PARTITIONER_NETWORK_ESTIMATOR_H_
