// Estimates uplink bandwidth and round-trip time from passive samples (every
// transfer the agent makes) and active probes. Bandwidth is the harmonic
// mean of the recent throughput samples, robust to a few fast outliers; a
// sustained shift (several samples in a row far from the estimate) is taken
// as a change of link and restarts the window, so the estimate follows a
// falling link within a few requests instead of averaging it away.
//
// Thread-compatible: callers that share one guard it. Time comes from the
// injected Clock (tests use FakeClock).
#ifndef TANDEM_PARTITIONER_NETWORK_ESTIMATOR_H_
#define TANDEM_PARTITIONER_NETWORK_ESTIMATOR_H_

#include <cstdint>

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
  void AddRtt(absl::Duration rtt);

  bool has_estimate() const { return uplink_mbit() > 0; }
  double uplink_mbit() const;
  double rtt_ms() const;
  // True when no sample arrived within max_age: time for an active probe.
  bool NeedsProbe() const;
  // Times the estimator decided the link had changed.
  int changes() const { return changes_; }

  tandem::v1::NetworkState State() const;

 private:
  void AddThroughput(double mbit);

  const Options options_;
  Clock* const clock_;
  SampleWindow throughput_;
  Ewma rtt_ms_{0.3};
  int deviations_ = 0;
  int changes_ = 0;
  SampleWindow pending_;  // The deviating run, becomes the window on a change.
  absl::Time last_sample_ = absl::InfinitePast();
};

}  // namespace tandem

#endif  // TANDEM_PARTITIONER_NETWORK_ESTIMATOR_H_
