// Prometheus metrics: counter, gauge and histogram families with labels,
// rendered in the text exposition format (version 0.0.4) that Prometheus
// scrapes from /metrics (common/metrics_server.h serves it).
//
// A family is registered once, at startup, with its label names; samples are
// keyed by label values in the same order. Families live as long as the
// registry, so hot paths keep the returned pointers.
//
//   MetricsRegistry registry;
//   CounterFamily* success = registry.AddCounter(
//       "tandem_cloud_request_success", "Requests answered.",
//       {"model", "version", "start_block"});
//   success->Add({"fmnist_branchy", "1", "2"});
//   std::string text = registry.Render();
//
// Label values must come from a bounded set (model names the server loaded,
// gRPC code names, ...): every distinct combination is a time series kept
// forever. Thread-safe.
#ifndef TANDEM_COMMON_METRICS_H_
#define TANDEM_COMMON_METRICS_H_

#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace tandem {

using LabelValues = std::vector<std::string>;

// The part every family shares: name, help, label names, rendering.
class MetricFamily {
 public:
  enum class Type { kCounter, kGauge, kHistogram };

  MetricFamily(std::string name, std::string help, Type type,
               std::vector<std::string> label_names);
  virtual ~MetricFamily() = default;
  MetricFamily(const MetricFamily&) = delete;
  MetricFamily& operator=(const MetricFamily&) = delete;

  const std::string& name() const { return name_; }
  // Appends # HELP, # TYPE and the samples.
  void Render(std::string* out) const;

 protected:
  // Appends the sample lines (no HELP/TYPE).
  virtual void RenderSamples(std::string* out) const = 0;
  // `name{labels} value\n`, with `extra` ("le", "0.5") after the labels.
  void AppendSample(
      absl::string_view suffix, const LabelValues& values, double value,
      std::string* out,
      const std::pair<std::string, std::string>* extra = nullptr) const;
  LabelValues Key(std::initializer_list<absl::string_view> values) const;

 private:
  const std::string name_;
  const std::string help_;
  const Type type_;
  const std::vector<std::string> label_names_;
};

// A value that only goes up (requests, microseconds spent, ...).
class CounterFamily final : public MetricFamily {
 public:
  CounterFamily(std::string name, std::string help,
                std::vector<std::string> label_names);
  // `by` < 0 is ignored: a counter never goes down.
  void Add(std::initializer_list<absl::string_view> values, double by = 1)
      ABSL_LOCKS_EXCLUDED(mu_);
  double Value(std::initializer_list<absl::string_view> values) const
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void RenderSamples(std::string* out) const override ABSL_LOCKS_EXCLUDED(mu_);

  mutable absl::Mutex mu_;
  std::map<LabelValues, double> values_ ABSL_GUARDED_BY(mu_);
};

// A value that goes up and down (queue depth, readiness, link estimate).
class GaugeFamily final : public MetricFamily {
 public:
  GaugeFamily(std::string name, std::string help,
              std::vector<std::string> label_names);
  void Set(std::initializer_list<absl::string_view> values, double value)
      ABSL_LOCKS_EXCLUDED(mu_);
  void Add(std::initializer_list<absl::string_view> values, double by)
      ABSL_LOCKS_EXCLUDED(mu_);
  double Value(std::initializer_list<absl::string_view> values) const
      ABSL_LOCKS_EXCLUDED(mu_);
  // Drops every series (e.g. before re-setting readiness of a new model set).
  void Clear() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void RenderSamples(std::string* out) const override ABSL_LOCKS_EXCLUDED(mu_);

  mutable absl::Mutex mu_;
  std::map<LabelValues, double> values_ ABSL_GUARDED_BY(mu_);
};

// Observations counted into cumulative buckets (`le`), with their sum.
class HistogramFamily final : public MetricFamily {
 public:
  // `bounds`: the buckets' upper bounds, ascending (+Inf is implied).
  HistogramFamily(std::string name, std::string help,
                  std::vector<std::string> label_names,
                  std::vector<double> bounds);
  void Observe(std::initializer_list<absl::string_view> values, double value)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Observations so far (the _count sample).
  int64_t Count(std::initializer_list<absl::string_view> values) const
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Series {
    std::vector<int64_t> buckets;  // Per bound, not cumulative; +Inf last.
    double sum = 0;
    int64_t count = 0;
  };
  void RenderSamples(std::string* out) const override ABSL_LOCKS_EXCLUDED(mu_);

  const std::vector<double> bounds_;
  mutable absl::Mutex mu_;
  std::map<LabelValues, Series> series_ ABSL_GUARDED_BY(mu_);
};

// A family whose samples are read when scraped (process memory, link
// estimates): `read` returns (label values, value) pairs.
class CallbackFamily final : public MetricFamily {
 public:
  using Read = std::function<std::vector<std::pair<LabelValues, double>>()>;
  CallbackFamily(std::string name, std::string help, Type type,
                 std::vector<std::string> label_names, Read read);

 private:
  void RenderSamples(std::string* out) const override;

  const Read read_;
};

class MetricsRegistry {
 public:
  MetricsRegistry() = default;
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // Names must match [a-zA-Z_:][a-zA-Z0-9_:]* and be new to the registry
  // (a programming error otherwise: logged FATAL).
  CounterFamily* AddCounter(std::string name, std::string help,
                            std::vector<std::string> label_names = {})
      ABSL_LOCKS_EXCLUDED(mu_);
  GaugeFamily* AddGauge(std::string name, std::string help,
                        std::vector<std::string> label_names = {})
      ABSL_LOCKS_EXCLUDED(mu_);
  HistogramFamily* AddHistogram(std::string name, std::string help,
                                std::vector<std::string> label_names,
                                std::vector<double> bounds)
      ABSL_LOCKS_EXCLUDED(mu_);
  // A gauge (or counter) read at scrape time. `read` runs on the scraping
  // thread and must not call back into the registry.
  void AddCallback(std::string name, std::string help, MetricFamily::Type type,
                   std::vector<std::string> label_names,
                   CallbackFamily::Read read) ABSL_LOCKS_EXCLUDED(mu_);

  // Every family, in registration order, in the text exposition format.
  std::string Render() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  template <typename Family, typename... Args>
  Family* Add(Args&&... args) ABSL_LOCKS_EXCLUDED(mu_);

  mutable absl::Mutex mu_;
  std::vector<std::unique_ptr<MetricFamily>> families_ ABSL_GUARDED_BY(mu_);
};

// Registers the standard process_* metrics Prometheus client libraries
// export (from /proc/self): resident and virtual memory, open file
// descriptors, threads, CPU seconds and start time.
void AddProcessMetrics(MetricsRegistry* registry);

}  // namespace tandem

#endif  // TANDEM_COMMON_METRICS_H_
