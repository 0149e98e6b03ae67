// Small statistics for measurements: an exponentially weighted moving average
// and a window of recent samples with percentiles. Not thread-safe: callers
// that share one guard it.
#ifndef TANDEM_COMMON_STATS_H_
#define TANDEM_COMMON_STATS_H_

#include <cstddef>
#include <vector>

namespace tandem {

// Exponentially weighted moving average; the first sample seeds it.
//   Ewma latency(0.2);
//   latency.Add(sample_ms);
//   if (latency.has_value()) use(latency.value());
class Ewma {
 public:
  // `alpha` in (0, 1]: the weight of the newest sample.
  explicit Ewma(double alpha);

  void Add(double sample);
  bool has_value() const { return count_ > 0; }
  double value() const { return value_; }  // 0 before the first sample.
  size_t count() const { return count_; }

 private:
  double alpha_;
  double value_ = 0;
  size_t count_ = 0;
};

// The last `capacity` samples, oldest overwritten first.
class SampleWindow {
 public:
  explicit SampleWindow(size_t capacity);

  void Add(double sample);
  void Clear();
  size_t size() const { return samples_.size(); }
  size_t capacity() const { return capacity_; }
  bool empty() const { return samples_.empty(); }

  // Percentile q in [0, 100] with linear interpolation between ranks; 0 when
  // empty. Costs a copy and a selection: O(size).
  double Percentile(double q) const;
  double Median() const { return Percentile(50); }
  double Mean() const;
  // Harmonic mean of the positive samples: robust to outliers on the high
  // side, the usual estimator for throughput. 0 when none is positive.
  double HarmonicMean() const;
  // Samples oldest first.
  std::vector<double> Samples() const;

 private:
  size_t capacity_;
  size_t next_ = 0;  // Slot the next sample overwrites once full.
  std::vector<double> samples_;
};

// Percentile q in [0, 100] of `values` (linear interpolation); 0 when empty.
// Reorders `values`.
double Percentile(std::vector<double>& values, double q);

}  // namespace tandem

#endif  // TANDEM_COMMON_STATS_H_
