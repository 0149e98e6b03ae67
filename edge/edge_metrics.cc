#include "edge/edge_metrics.h"

#include <utility>
#include <vector>

namespace tandem {

EdgeMetrics::EdgeMetrics(MetricsRegistry* registry)
    : success_(registry->AddCounter("tandem_edge_request_success",
                                    "Inference requests answered.",
                                    {"model", "task"})),
      failure_(registry->AddCounter(
          "tandem_edge_request_failure",
          "Inference requests that ended in an error, by gRPC code.",
          {"model", "task", "code"})),
      duration_us_(registry->AddCounter(
          "tandem_edge_request_duration_us",
          "Microseconds from receipt to answer, summed over requests.",
          {"model", "task"})),
      answers_(registry->AddCounter(
          "tandem_edge_answers",
          "Answers by the site whose exit gave them (edge or cloud).",
          {"model", "site"})),
      offloads_(registry->AddCounter(
          "tandem_edge_offloads",
          "Answered requests that sent a tensor to the cloud.", {"model"})),
      fallbacks_(registry->AddCounter(
          "tandem_edge_cloud_fallbacks",
          "Answered requests the edge finished after the cloud failed or "
          "was too slow.",
          {"model"})),
      misses_(registry->AddCounter(
          "tandem_edge_deadline_misses",
          "Requests answered after their deadline or failed with "
          "DEADLINE_EXCEEDED.",
          {"model", "task"})) {
  registry->AddCallback(
      "tandem_edge_offload_share",
      "Share of answered requests that sent a tensor to the cloud, since "
      "start.",
      MetricFamily::Type::kGauge, {"model"}, [this] {
        std::vector<std::pair<LabelValues, double>> out;
        absl::MutexLock lock(&mu_);
        for (const auto& [model, share] : shares_) {
          out.push_back({{model}, share.offloads / share.answers});
        }
        return out;
      });
}

void EdgeMetrics::OnOutcome(
    const std::string& model, const std::string& task,
    const absl::StatusOr<tandem::v1::InferResponse>& result,
    absl::Duration took, bool late) {
  duration_us_->Add({model, task}, absl::ToDoubleMicroseconds(took));
  if (late || absl::IsDeadlineExceeded(result.status())) {
    misses_->Add({model, task});
  }
  if (!result.ok()) {
    failure_->Add(
        {model, task, absl::StatusCodeToString(result.status().code())});
    return;
  }
  success_->Add({model, task});
  const bool cloud = result->answered_by() == tandem::v1::SITE_CLOUD;
  answers_->Add({model, cloud ? "cloud" : "edge"});
  const bool offloaded = result->bytes_sent() > 0;
  if (offloaded) offloads_->Add({model});
  if (!result->fallback_reason().empty()) fallbacks_->Add({model});
  absl::MutexLock lock(&mu_);
  Share& share = shares_[model];
  share.answers += 1;
  if (offloaded) share.offloads += 1;
}

}  // namespace tandem
