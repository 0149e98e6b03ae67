#include "common/stats.h"

#include <algorithm>
#include <cassert>
#include <cmath>

namespace tandem {

Ewma::Ewma(double alpha) : alpha_(alpha) { assert(alpha > 0 && alpha <= 1); }

void Ewma::Add(double sample) {
  value_ = count_ == 0 ? sample : alpha_ * sample + (1 - alpha_) * value_;
  ++count_;
}

SampleWindow::SampleWindow(size_t capacity)
    : capacity_(std::max<size_t>(capacity, 1)) {
  samples_.reserve(capacity_);
}

void SampleWindow::Add(double sample) {
  if (samples_.size() < capacity_) {
    samples_.push_back(sample);
    return;
  }
  samples_[next_] = sample;
  next_ = (next_ + 1) % capacity_;
}

void SampleWindow::Clear() {
  samples_.clear();
  next_ = 0;
}

double SampleWindow::Percentile(double q) const {
  std::vector<double> copy = samples_;
  return tandem::Percentile(copy, q);
}

double SampleWindow::Mean() const {
  if (samples_.empty()) return 0;
  double sum = 0;
  for (double s : samples_) sum += s;
  return sum / samples_.size();
}

double SampleWindow::HarmonicMean() const {
  double inverse_sum = 0;
  size_t n = 0;
  for (double s : samples_) {
    if (s > 0) {
      inverse_sum += 1 / s;
      ++n;
    }
  }
  return n == 0 ? 0 : n / inverse_sum;
}

std::vector<double> SampleWindow::Samples() const {
  std::vector<double> out;
  out.reserve(samples_.size());
  for (size_t i = 0; i < samples_.size(); ++i) {
    out.push_back(samples_[(next_ + i) % samples_.size()]);
  }
  return out;
}

double Percentile(std::vector<double>& values, double q) {
  if (values.empty()) return 0;
  q = std::clamp(q, 0.0, 100.0);
  const double rank = q / 100 * (values.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(rank));
  const size_t hi = std::min(lo + 1, values.size() - 1);
  std::nth_element(values.begin(), values.begin() + lo, values.end());
  const double lo_value = values[lo];
  if (hi == lo) return lo_value;
  // The next order statistic is the minimum of the upper part.
  const double hi_value =
      *std::min_element(values.begin() + lo + 1, values.end());
  return lo_value + (rank - lo) * (hi_value - lo_value);
}

}  // namespace tandem
