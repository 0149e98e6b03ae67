// The cloud server's Prometheus metrics, shaped after Triton's
// nv_inference_* family (renamed tandem_cloud_*), labelled by model, version
// and start block:
//
//   tandem_cloud_request_success / _failure{code}   requests answered / not
//   tandem_cloud_inference_count                    rows run (batched or not)
//   tandem_cloud_exec_count                         batches run
//   tandem_cloud_request_duration_us                receipt to answer, summed
//   tandem_cloud_queue_duration_us                  waiting for a batch, summed
//   tandem_cloud_compute_infer_duration_us          the batch's run, per
//   request tandem_cloud_batch_size                         histogram of rows
//   per batch tandem_cloud_queue_depth                        requests waiting
//   now
//
// The durations are cumulative counters: the per-request mean over a window
// is increase(duration) / increase(success), which the Kubernetes HPA scales
// on (deploy/k8s/cloud-hpa.yaml). Requests refused before they matched a
// loaded model carry empty model, version and start_block labels, so that a
// client cannot mint new series. Thread-safe.
#ifndef TANDEM_CLOUD_CLOUD_METRICS_H_
#define TANDEM_CLOUD_CLOUD_METRICS_H_

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/metrics.h"
#include "tandem/v1/cloud_service.pb.h"

namespace tandem {

class CloudMetrics {
 public:
  // What a request's series are keyed by.
  struct Key {
    std::string model;
    std::string version;
    std::string start_block;
  };

  // The key of `request`; `version`: the loaded version it resolves to
  // ("" when no loaded model matches); `checked`: it passed the request
  // checks (only then is its start block a bounded label).
  static Key KeyOf(const tandem::v1::ContinueRequest& request,
                   std::string version, bool checked);

  // Registers the families in `registry`, which must outlive this;
  // `queue_depth` is read at scrape time.
  CloudMetrics(MetricsRegistry* registry, std::function<double()> queue_depth);

  // A request answered with `status`, `took` after it was received.
  void OnRequest(const Key& key, const absl::Status& status,
                 absl::Duration took);
  // A batch of `rows` requests ran for `compute`; `queued` is the sum of
  // their waits in the queue.
  void OnBatch(const Key& key, int rows, absl::Duration queued,
               absl::Duration compute);

 private:
  CounterFamily* const success_;
  CounterFamily* const failure_;
  CounterFamily* const inference_count_;
  CounterFamily* const exec_count_;
  CounterFamily* const request_us_;
  CounterFamily* const queue_us_;
  CounterFamily* const compute_us_;
  HistogramFamily* const batch_size_;
};

}  // namespace tandem

#endif  // TANDEM_CLOUD_CLOUD_METRICS_H_
