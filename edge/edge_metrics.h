// The edge agent's Prometheus metrics (tandem_edge_*):
//
//   tandem_edge_request_success{model,task}         requests answered
//   tandem_edge_request_failure{model,task,code}    requests that failed
//   tandem_edge_request_duration_us{model,task}     receipt to answer, summed
//   tandem_edge_answers{model,site}                 answers by the site whose
//                                                   exit gave them (edge,
//                                                   cloud)
//   tandem_edge_offloads{model}                     answers that sent a tensor
//   tandem_edge_cloud_fallbacks{model}              offloads the edge finished
//   tandem_edge_offload_share{model}                offloads / answers so far
//   tandem_edge_deadline_misses{model,task}         answered late, or failed
//                                                   with DEADLINE_EXCEEDED
//
// plus what the agent's parts report when scraped (plan switches, the link
// estimate: see EdgeAgent::Create). Requests refused before they matched a
// loaded model or a configured task carry empty labels for it, so that a
// client cannot mint new series. Thread-safe.
#ifndef TANDEM_EDGE_EDGE_METRICS_H_
#define TANDEM_EDGE_EDGE_METRICS_H_

#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/metrics.h"
#include "tandem/v1/edge_service.pb.h"

namespace tandem {

class EdgeMetrics {
 public:
  // Registers the families in `registry`, which must outlive this.
  explicit EdgeMetrics(MetricsRegistry* registry);

  // A request ended with `result`, `took` after it was received; `late`: it
  // ended after its deadline.
  void OnOutcome(const std::string& model, const std::string& task,
                 const absl::StatusOr<tandem::v1::InferResponse>& result,
                 absl::Duration took, bool late) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Share {
    double answers = 0;
    double offloads = 0;
  };

  CounterFamily* const success_;
  CounterFamily* const failure_;
  CounterFamily* const duration_us_;
  CounterFamily* const answers_;
  CounterFamily* const offloads_;
  CounterFamily* const fallbacks_;
  CounterFamily* const misses_;
  absl::Mutex mu_;
  std::map<std::string, Share> shares_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tandem

#endif  // TANDEM_EDGE_EDGE_METRICS_H_
