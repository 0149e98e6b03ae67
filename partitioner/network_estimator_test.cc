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

TEST(NetworkEstimator, ADeviatingSampleLeavesAChangePendingUntilTheNext) {
  FakeClock clock;
  NetworkEstimator estimator({}, &clock);
  for (int i = 0; i < 8; ++i) Transfer(estimator, 0.13, 1000);
  EXPECT_FALSE(estimator.ChangePending());
  Transfer(estimator, 18.9, 1000);  // The link may be back: confirm now.
  EXPECT_TRUE(estimator.ChangePending());
  Transfer(estimator, 18.9, 1000);
  EXPECT_FALSE(estimator.ChangePending());
  EXPECT_EQ(estimator.changes(), 1);
  Transfer(estimator, 0.13, 1000);
  Transfer(estimator, 18.9, 1000);  // Noise, not a change: nothing pending.
  EXPECT_FALSE(estimator.ChangePending());
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

TEST(NetworkEstimator, TheRttIsTheLeastRoundTripOfTheWindow) {
  FakeClock clock;
  NetworkEstimator::Options options;
  options.rtt_window = absl::Seconds(10);
  NetworkEstimator estimator(options, &clock);
  for (int i = 0; i < 5; ++i) estimator.AddRtt(absl::Seconds(2));  // Queued.
  EXPECT_EQ(estimator.rtt_ms(), 2000);
  estimator.AddRtt(absl::Milliseconds(5));  // The queue drained: at once.
  EXPECT_EQ(estimator.rtt_ms(), 5);
  clock.Advance(absl::Seconds(4));
  estimator.AddRtt(absl::Milliseconds(90));  // Queued behind a transfer.
  estimator.AddRtt(absl::Milliseconds(9));
  EXPECT_EQ(estimator.rtt_ms(), 5);
  // The 5 ms sample leaves the window: the least of the rest.
  clock.Advance(absl::Seconds(7));
  EXPECT_EQ(estimator.rtt_ms(), 9);
  // A path that became longer shows once its shorter samples are old.
  clock.Advance(absl::Seconds(11));
  estimator.AddRtt(absl::Milliseconds(40));
  EXPECT_EQ(estimator.rtt_ms(), 40);
}

TEST(NetworkEstimator, PingsDoNotCountAsMeasuringTheLink) {
  FakeClock clock;
  NetworkEstimator estimator({}, &clock);
  ASSERT_TRUE(estimator.NeedsProbe());
  estimator.AddPing(absl::Milliseconds(3));
  EXPECT_EQ(estimator.rtt_ms(), 3);
  EXPECT_TRUE(estimator.NeedsProbe());  // The bandwidth is still unknown.
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

TEST(NetworkEstimator, SizeClassesSeparateATokenBucketsTwoRegimes) {
  // A 1.1 Mbit/s link whose bucket passes 1 KB at once: 850-byte transfers
  // go through untimed, 3 KB ones take the rate. One window would swing
  // between the two; each class holds its own.
  FakeClock clock;
  NetworkEstimator estimator({}, &clock);
  for (int i = 0; i < 6; ++i) {
    estimator.AddTransfer(850, absl::Microseconds(10), absl::ZeroDuration());
    Transfer(estimator, 1.1, 3136, 0);
  }
  EXPECT_NEAR(estimator.ClassUplinkMbit(3136), 1.1, 1e-6);
  EXPECT_NEAR(estimator.ClassUplinkMbit(850), 850 * 8 / 50.0, 1e-6);
  EXPECT_EQ(estimator.ClassUplinkMbit(100000), 0);  // No samples that size.
  EXPECT_NEAR(estimator.uplink_mbit(), 1.1, 1e-6);  // Timed samples only.
  const tandem::v1::NetworkState state = estimator.State();
  ASSERT_EQ(state.size_classes_size(), 2);
  EXPECT_EQ(state.size_classes(0).min_bytes(), 512);
  EXPECT_EQ(state.size_classes(0).max_bytes(), 1023);
  EXPECT_EQ(state.size_classes(1).min_bytes(), 2048);
  EXPECT_NEAR(state.size_classes(1).uplink_mbit(), 1.1, 1e-6);
  // Stale classes are not reported.
  clock.Advance(absl::Seconds(11));
  EXPECT_EQ(estimator.ClassUplinkMbit(3136), 0);
  EXPECT_EQ(estimator.State().size_classes_size(), 0);
}

TEST(NetworkEstimator, ASizeClassFollowsAFallingLink) {
  FakeClock clock;
  NetworkEstimator estimator({}, &clock);
  for (int i = 0; i < 8; ++i) Transfer(estimator, 18.9, 3000, 1);
  Transfer(estimator, 0.13, 3000, 1);
  EXPECT_GT(estimator.ClassUplinkMbit(3000), 10);
  EXPECT_EQ(estimator.class_changes(), 0);
  Transfer(estimator, 0.13, 3000, 1);
  EXPECT_NEAR(estimator.ClassUplinkMbit(3000), 0.13, 1e-6);
  EXPECT_EQ(estimator.class_changes(), 1);
}

}  // namespace
}  // namespace tandem
