#include "common/stats.h"

#include <vector>

#include "gtest/gtest.h"

namespace tandem {
namespace {

TEST(Ewma, FirstSampleSeedsThenBlends) {
  Ewma ewma(0.25);
  EXPECT_FALSE(ewma.has_value());
  ewma.Add(8);
  EXPECT_DOUBLE_EQ(ewma.value(), 8);
  ewma.Add(16);
  EXPECT_DOUBLE_EQ(ewma.value(), 0.25 * 16 + 0.75 * 8);
  EXPECT_EQ(ewma.count(), 2u);
}

TEST(SampleWindow, KeepsOnlyTheNewestSamples) {
  SampleWindow window(3);
  for (double s : {1, 2, 3, 4, 5}) window.Add(s);
  EXPECT_EQ(window.size(), 3u);
  EXPECT_EQ(window.Samples(), (std::vector<double>{3, 4, 5}));
  EXPECT_DOUBLE_EQ(window.Median(), 4);
  EXPECT_DOUBLE_EQ(window.Mean(), 4);
  window.Clear();
  EXPECT_TRUE(window.empty());
  EXPECT_DOUBLE_EQ(window.Median(), 0);
}

TEST(SampleWindow, HarmonicMeanDiscountsOutliers) {
  SampleWindow window(4);
  for (double s : {10, 10, 10, 1000}) window.Add(s);
  EXPECT_NEAR(window.HarmonicMean(), 4 / (0.3 + 0.001), 1e-9);
  EXPECT_LT(window.HarmonicMean(), window.Mean());
}

TEST(Percentile, InterpolatesBetweenRanks) {
  struct Case {
    std::vector<double> values;
    double q;
    double want;
  };
  const Case cases[] = {
      {{}, 50, 0},
      {{7}, 99, 7},
      {{4, 1, 3, 2}, 0, 1},
      {{4, 1, 3, 2}, 100, 4},
      {{4, 1, 3, 2}, 50, 2.5},
      {{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 90, 9.1},
      {{5, 5, 5}, 50, 5},
  };
  for (const Case& c : cases) {
    std::vector<double> values = c.values;
    EXPECT_NEAR(Percentile(values, c.q), c.want, 1e-12) << "q=" << c.q;
  }
}

}  // namespace
}  // namespace tandem
