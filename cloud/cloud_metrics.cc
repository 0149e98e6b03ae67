#include "cloud/cloud_metrics.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace tandem {
namespace {

const std::vector<std::string> kLabels = {"model", "version", "start_block"};

std::vector<std::string> With(std::string extra) {
  std::vector<std::string> labels = kLabels;
  labels.push_back(std::move(extra));
  return labels;
}

}  // namespace

CloudMetrics::Key CloudMetrics::KeyOf(
    const tandem::v1::ContinueRequest& request, std::string version,
    bool checked) {
  Key key;
  if (version.empty()) return key;
  key.model = request.model_name();
  key.version = std::move(version);
  if (checked) key.start_block = absl::StrCat(request.start_block());
  return key;
}

CloudMetrics::CloudMetrics(MetricsRegistry* registry,
                           std::function<double()> queue_depth)
    : success_(registry->AddCounter("tandem_cloud_request_success",
                                    "Continue requests answered.", kLabels)),
      failure_(registry->AddCounter(
          "tandem_cloud_request_failure",
          "Continue requests that ended in an error, by gRPC code.",
          With("code"))),
      inference_count_(registry->AddCounter(
          "tandem_cloud_inference_count",
          "Rows run by the model (a batch of n counts n).", kLabels)),
      exec_count_(registry->AddCounter("tandem_cloud_exec_count",
                                       "Batches run by the model.", kLabels)),
      request_us_(registry->AddCounter(
          "tandem_cloud_request_duration_us",
          "Microseconds from receipt to answer, summed over requests.",
          kLabels)),
      queue_us_(registry->AddCounter(
          "tandem_cloud_queue_duration_us",
          "Microseconds requests waited for a batch, summed over requests.",
          kLabels)),
      compute_us_(registry->AddCounter(
          "tandem_cloud_compute_infer_duration_us",
          "Microseconds of the batch each request ran in, summed over "
          "requests.",
          kLabels)),
      batch_size_(registry->AddHistogram("tandem_cloud_batch_size",
                                         "Rows per batch run.", kLabels,
                                         {1, 2, 4, 8, 16, 32, 64})) {
  registry->AddCallback(
      "tandem_cloud_queue_depth", "Requests waiting for a batch now.",
      MetricFamily::Type::kGauge, {}, [queue_depth = std::move(queue_depth)] {
        return std::vector<std::pair<LabelValues, double>>{
            {LabelValues{}, queue_depth()}};
      });
}

void CloudMetrics::OnRequest(const Key& key, const absl::Status& status,
                             absl::Duration took) {
  if (status.ok()) {
    success_->Add({key.model, key.version, key.start_block});
  } else {
    failure_->Add({key.model, key.version, key.start_block,
                   absl::StatusCodeToString(status.code())});
  }
  request_us_->Add({key.model, key.version, key.start_block},
                   absl::ToDoubleMicroseconds(took));
}

void CloudMetrics::OnBatch(const Key& key, int rows, absl::Duration queued,
                           absl::Duration compute) {
  const std::initializer_list<absl::string_view> labels = {
      key.model, key.version, key.start_block};
  exec_count_->Add(labels);
  inference_count_->Add(labels, rows);
  queue_us_->Add(labels, absl::ToDoubleMicroseconds(queued));
  compute_us_->Add(labels, rows * absl::ToDoubleMicroseconds(compute));
  batch_size_->Observe(labels, rows);
}

}  // namespace tandem
