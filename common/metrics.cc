#include "common/metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/logging.h"

namespace tandem {
namespace {

bool ValidName(absl::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        c == '_' || c == ':';
    if (!letter && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

// Integers exactly (counters of microseconds pass 1e6 quickly, and "%g"
// would round them), other values with full precision.
std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == std::floor(value) && std::fabs(value) < 9.007199254740992e15) {
    return absl::StrCat(static_cast<int64_t>(value));
  }
  // The shortest of %.15g / %.17g that reads back as the same double.
  std::string text = absl::StrFormat("%.15g", value);
  if (std::strtod(text.c_str(), nullptr) != value) {
    text = absl::StrFormat("%.17g", value);
  }
  return text;
}

// Label values escape backslash, double quote and newline; help text
// escapes backslash and newline.
void AppendEscaped(absl::string_view text, bool quotes, std::string* out) {
  for (const char c : text) {
    if (c == '\\') {
      out->append("\\\\");
    } else if (c == '\n') {
      out->append("\\n");
    } else if (quotes && c == '"') {
      out->append("\\\"");
    } else {
      out->push_back(c);
    }
  }
}

const char* TypeName(MetricFamily::Type type) {
  switch (type) {
    case MetricFamily::Type::kCounter:
      return "counter";
    case MetricFamily::Type::kGauge:
      return "gauge";
    case MetricFamily::Type::kHistogram:
      return "histogram";
  }
  return "untyped";
}

}  // namespace

MetricFamily::MetricFamily(std::string name, std::string help, Type type,
                           std::vector<std::string> label_names)
    : name_(std::move(name)),
      help_(std::move(help)),
      type_(type),
      label_names_(std::move(label_names)) {
  if (!ValidName(name_)) TANDEM_LOG(FATAL) << "bad metric name: " << name_;
  for (const std::string& label : label_names_) {
    if (!ValidName(label) || label == "le" || label.rfind("__", 0) == 0) {
      TANDEM_LOG(FATAL) << "bad label name for " << name_ << ": " << label;
    }
  }
}

void MetricFamily::Render(std::string* out) const {
  absl::StrAppend(out, "# HELP ", name_, " ");
  AppendEscaped(help_, /*quotes=*/false, out);
  absl::StrAppend(out, "\n# TYPE ", name_, " ", TypeName(type_), "\n");
  RenderSamples(out);
}

void MetricFamily::AppendSample(
    absl::string_view suffix, const LabelValues& values, double value,
    std::string* out, const std::pair<std::string, std::string>* extra) const {
  absl::StrAppend(out, name_, suffix);
  if (!label_names_.empty() || extra != nullptr) {
    out->push_back('{');
    bool first = true;
    for (size_t i = 0; i < label_names_.size(); ++i) {
      if (!first) out->push_back(',');
      first = false;
      absl::StrAppend(out, label_names_[i], "=\"");
      AppendEscaped(i < values.size() ? values[i] : "", /*quotes=*/true, out);
      out->push_back('"');
    }
    if (extra != nullptr) {
      if (!first) out->push_back(',');
      absl::StrAppend(out, extra->first, "=\"", extra->second, "\"");
    }
    out->push_back('}');
  }
  absl::StrAppend(out, " ", FormatValue(value), "\n");
}

LabelValues MetricFamily::Key(
    std::initializer_list<absl::string_view> values) const {
  if (values.size() != label_names_.size()) {
    TANDEM_LOG(FATAL) << name_ << " has " << label_names_.size() << " labels; "
                      << values.size() << " values given";
  }
  LabelValues key;
  key.reserve(values.size());
  for (absl::string_view value : values) key.emplace_back(value);
  return key;
}

CounterFamily::CounterFamily(std::string name, std::string help,
                             std::vector<std::string> label_names)
    : MetricFamily(std::move(name), std::move(help), Type::kCounter,
                   std::move(label_names)) {}

void CounterFamily::Add(std::initializer_list<absl::string_view> values,
                        double by) {
  if (!(by >= 0)) return;
  LabelValues key = Key(values);
  absl::MutexLock lock(&mu_);
  values_[std::move(key)] += by;
}

double CounterFamily::Value(
    std::initializer_list<absl::string_view> values) const {
  const LabelValues key = Key(values);
  absl::MutexLock lock(&mu_);
  const auto it = values_.find(key);
  return it == values_.end() ? 0 : it->second;
}

void CounterFamily::RenderSamples(std::string* out) const {
  absl::MutexLock lock(&mu_);
  for (const auto& [key, value] : values_) AppendSample("", key, value, out);
}

GaugeFamily::GaugeFamily(std::string name, std::string help,
                         std::vector<std::string> label_names)
    : MetricFamily(std::move(name), std::move(help), Type::kGauge,
                   std::move(label_names)) {}

void GaugeFamily::Set(std::initializer_list<absl::string_view> values,
                      double value) {
  LabelValues key = Key(values);
  absl::MutexLock lock(&mu_);
  values_[std::move(key)] = value;
}

void GaugeFamily::Add(std::initializer_list<absl::string_view> values,
                      double by) {
  LabelValues key = Key(values);
  absl::MutexLock lock(&mu_);
  values_[std::move(key)] += by;
}

double GaugeFamily::Value(
    std::initializer_list<absl::string_view> values) const {
  const LabelValues key = Key(values);
  absl::MutexLock lock(&mu_);
  const auto it = values_.find(key);
  return it == values_.end() ? 0 : it->second;
}

void GaugeFamily::Clear() {
  absl::MutexLock lock(&mu_);
  values_.clear();
}

void GaugeFamily::RenderSamples(std::string* out) const {
  absl::MutexLock lock(&mu_);
  for (const auto& [key, value] : values_) AppendSample("", key, value, out);
}

HistogramFamily::HistogramFamily(std::string name, std::string help,
                                 std::vector<std::string> label_names,
                                 std::vector<double> bounds)
    : MetricFamily(std::move(name), std::move(help), Type::kHistogram,
                   std::move(label_names)),
      bounds_(std::move(bounds)) {
  for (size_t i = 1; i < bounds_.size(); ++i) {
    if (!(bounds_[i - 1] < bounds_[i])) {
      TANDEM_LOG(FATAL) << this->name() << ": bucket bounds not ascending";
    }
  }
}

void HistogramFamily::Observe(std::initializer_list<absl::string_view> values,
                              double value) {
  LabelValues key = Key(values);
  size_t bucket = 0;
  while (bucket < bounds_.size() && value > bounds_[bucket]) ++bucket;
  absl::MutexLock lock(&mu_);
  Series& series = series_[std::move(key)];
  if (series.buckets.empty()) series.buckets.assign(bounds_.size() + 1, 0);
  ++series.buckets[bucket];
  series.sum += value;
  ++series.count;
}

int64_t HistogramFamily::Count(
    std::initializer_list<absl::string_view> values) const {
  const LabelValues key = Key(values);
  absl::MutexLock lock(&mu_);
  const auto it = series_.find(key);
  return it == series_.end() ? 0 : it->second.count;
}

void HistogramFamily::RenderSamples(std::string* out) const {
  absl::MutexLock lock(&mu_);
  for (const auto& [key, series] : series_) {
    int64_t cumulative = 0;
    for (size_t i = 0; i <= bounds_.size(); ++i) {
      cumulative += series.buckets[i];
      const std::pair<std::string, std::string> le(
          "le", i < bounds_.size() ? FormatValue(bounds_[i]) : "+Inf");
      AppendSample("_bucket", key, static_cast<double>(cumulative), out, &le);
    }
    AppendSample("_sum", key, series.sum, out);
    AppendSample("_count", key, static_cast<double>(series.count), out);
  }
}

CallbackFamily::CallbackFamily(std::string name, std::string help, Type type,
                               std::vector<std::string> label_names, Read read)
    : MetricFamily(std::move(name), std::move(help), type,
                   std::move(label_names)),
      read_(std::move(read)) {}

void CallbackFamily::RenderSamples(std::string* out) const {
  for (const auto& [key, value] : read_()) AppendSample("", key, value, out);
}

template <typename Family, typename... Args>
Family* MetricsRegistry::Add(Args&&... args) {
  auto family = std::make_unique<Family>(std::forward<Args>(args)...);
  Family* raw = family.get();
  absl::MutexLock lock(&mu_);
  for (const auto& existing : families_) {
    if (existing->name() == raw->name()) {
      TANDEM_LOG(FATAL) << "metric registered twice: " << raw->name();
    }
  }
  families_.push_back(std::move(family));
  return raw;
}

CounterFamily* MetricsRegistry::AddCounter(
    std::string name, std::string help, std::vector<std::string> label_names) {
  return Add<CounterFamily>(std::move(name), std::move(help),
                            std::move(label_names));
}

GaugeFamily* MetricsRegistry::AddGauge(std::string name, std::string help,
                                       std::vector<std::string> label_names) {
  return Add<GaugeFamily>(std::move(name), std::move(help),
                          std::move(label_names));
}

HistogramFamily* MetricsRegistry::AddHistogram(
    std::string name, std::string help, std::vector<std::string> label_names,
    std::vector<double> bounds) {
  return Add<HistogramFamily>(std::move(name), std::move(help),
                              std::move(label_names), std::move(bounds));
}

void MetricsRegistry::AddCallback(std::string name, std::string help,
                                  MetricFamily::Type type,
                                  std::vector<std::string> label_names,
                                  CallbackFamily::Read read) {
  Add<CallbackFamily>(std::move(name), std::move(help), type,
                      std::move(label_names), std::move(read));
}

std::string MetricsRegistry::Render() const {
  std::string out;
  absl::MutexLock lock(&mu_);
  for (const auto& family : families_) family->Render(&out);
  return out;
}

namespace {

// Fields 1 and 2 of /proc/self/statm: virtual and resident pages.
std::pair<double, double> MemoryBytes() {
  std::ifstream statm("/proc/self/statm");
  double pages_virtual = 0;
  double pages_resident = 0;
  statm >> pages_virtual >> pages_resident;
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  return {pages_virtual * page, pages_resident * page};
}

double OpenFds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return 0;
  double count = 0;
  while (const dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  closedir(dir);
  return count - 1;  // The directory's own descriptor.
}

double Threads() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("Threads:", 0) == 0) {
      std::istringstream fields(line.substr(8));
      double threads = 0;
      fields >> threads;
      return threads;
    }
  }
  return 0;
}

double CpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

std::vector<std::pair<LabelValues, double>> One(double value) {
  return {{LabelValues{}, value}};
}

}  // namespace

void AddProcessMetrics(MetricsRegistry* registry) {
  using Type = MetricFamily::Type;
  registry->AddCallback("process_resident_memory_bytes",
                        "Resident memory size in bytes.", Type::kGauge, {},
                        [] { return One(MemoryBytes().second); });
  registry->AddCallback("process_virtual_memory_bytes",
                        "Virtual memory size in bytes.", Type::kGauge, {},
                        [] { return One(MemoryBytes().first); });
  registry->AddCallback("process_open_fds", "Open file descriptors.",
                        Type::kGauge, {}, [] { return One(OpenFds()); });
  registry->AddCallback("process_threads", "OS threads of the process.",
                        Type::kGauge, {}, [] { return One(Threads()); });
  registry->AddCallback("process_cpu_seconds_total",
                        "User and system CPU time spent, in seconds.",
                        Type::kCounter, {}, [] { return One(CpuSeconds()); });
  // When metrics began, which is within the daemon's startup.
  const double start = absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch());
  registry->AddCallback("process_start_time_seconds",
                        "Start time of the process since the Unix epoch.",
                        Type::kGauge, {}, [start] { return One(start); });
}

}  // namespace tandem
