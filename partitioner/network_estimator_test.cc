#include "partitioner/network_estimator.h"

#include "gtest/gtest.h"

namespace tandem {
namespace {

// A transfer of `mbit` Mbit/s worth of `bytes` plus `rtt_ms` of waiting.
void Transfer(NetworkEstimator& estimator, double mbit, int64_t bytes = 100000,
              double rtt_ms = 10) {
  const absl::Duration sending = absl::Microseconds(bytes * 8.0 / mbit);
  estimator.AddTransfer(bytes, sending + absl::Milliseconds(rtt_ms),
                        absl::Milliseconds(rtt_ms));
}

TEST(NetworkEstimator, HarmonicMeanResistsFastOutliers) {
  FakeClock clock;
  NetworkEstimator estimator({}, &clock);
  EXPECT_FALSE(estimator.has_estimate());
  for (int i = 0; i < 6; ++i) Transfer(estimator, 10);
  Transfer(estimator, 19);  // Within the change factor: a sample, not a change.
  EXPECT_NEAR(estimator.uplink_mbit(), 7 / (6 / 10.0 + 1 / 19.0), 1e-6);
  EXPECT_LT(estimator.uplink_mbit(), 11);
  EXPECT_EQ(estimator.changes(), 0);
}

TEST(NetworkEstimator, FollowsASustainedDropWithinTwoSamples) {
  FakeClock clock;
  NetworkEstimator estimator({}, &clock);
  for (int i = 0; i < 8; ++i) Transfer(estimator, 18.9);
  Transfer(estimator, 1.1);  // One slow transfer: maybe noise.
  EXPECT_GT(estimator.uplink_mbit(), 10);
  Transfer(estimator, 1.1);  // Two in a row: the link changed.
  EXPECT_NEAR(estimator.uplink_mbit(), 1.1, 1e-6);
  EXPECT_EQ(estimator.changes(), 1);
  Transfer(estimator, 18.9);
  Transfer(estimator, 18.9);  // And back up.
  EXPECT_NEAR(estimator.uplink_mbit(), 18.9, 1e-6);
  EXPECT_EQ(estimator.changes(), 2);
}

TEST(NetworkEstimator, CutOffTransfersRevealAFallenLink) {
  FakeClock clock;
  NetworkEstimator estimator({}, &clock);
  for (int i = 0; i < 8; ++i) Transfer(estimator, 50);
  // 100 KB planned at 50 Mbit/s (16 ms), cut off after 40 ms twice.
  estimator.AddIncompleteTransfer(100000, absl::Milliseconds(40));
  estimator.AddIncompleteTransfer(100000, absl::Milliseconds(40));
  EXPECT_EQ(estimator.changes(), 1);
  EXPECT_NEAR(estimator.uplink_mbit(), 0.25 * 100000 * 8 / 40000.0, 1e-9);
}

TEST(NetworkEstimator, AnIsolatedOutlierIsForgotten) {
  FakeClock clock;
  NetworkEstimator estimator({}, &clock);
  for (int i = 0; i < 4; ++i) Transfer(estimator, 5.85);
  Transfer(estimator, 0.5);
  Transfer(estimator, 5.85);
  EXPECT_NEAR(estimator.uplink_mbit(), 5.85, 1e-6);
  EXPECT_EQ(estimator.changes(), 0);
}

TEST(NetworkEstimator, RttAndProbeTiming) {
  FakeClock clock;
  NetworkEstimator::Options options;
  options.max_age = absl::Seconds(5);
  options.initial_rtt_ms = 30;
  NetworkEstimator estimator(options, &clock);
  EXPECT_TRUE(estimator.NeedsProbe());
  EXPECT_EQ(estimator.rtt_ms(), 30);
  estimator.AddRtt(absl::Milliseconds(20));
  EXPECT_EQ(estimator.rtt_ms(), 20);
  EXPECT_FALSE(estimator.NeedsProbe());
  clock.Advance(absl::Seconds(6));
  EXPECT_TRUE(estimator.NeedsProbe());
  // Tiny transfers time the latency, not the bandwidth.
  estimator.AddTransfer(100, absl::Microseconds(30), absl::ZeroDuration());
  EXPECT_FALSE(estimator.has_estimate());
  EXPECT_FALSE(estimator.NeedsProbe());
}

}  // namespace
}  // namespace tandem
