#include "edge/sdk/wire_conversion.h"

#include <algorithm>
#include <cstdint>

namespace tandem {
namespace client_internal {
namespace {

InferResult::Site ToSite(tandem::v1::Site site) {
  switch (site) {
    case tandem::v1::SITE_EDGE:
      return InferResult::Site::kEdge;
    case tandem::v1::SITE_CLOUD:
      return InferResult::Site::kCloud;
    default:
      return InferResult::Site::kUnknown;
  }
}

InferResult::Timings ToTimings(const tandem::v1::Timings& timings) {
  InferResult::Timings out;
  out.edge_compute = absl::Microseconds(timings.edge_compute_us());
  out.encode = absl::Microseconds(timings.encode_us());
  out.transfer = absl::Microseconds(timings.transfer_us());
  out.cloud_queue = absl::Microseconds(timings.cloud_queue_us());
  out.cloud_compute = absl::Microseconds(timings.cloud_compute_us());
  out.edge_queue = absl::Microseconds(timings.edge_queue_us());
  out.total = absl::Microseconds(timings.total_us());
  return out;
}

}  // namespace

tandem::v1::InferRequest BuildInferRequest(const std::string& model,
                                           const InputTensor& input,
                                           const InferOptions& options) {
  tandem::v1::InferRequest request;
  request.set_model_name(model);
  request.set_model_version(options.model_version);
  request.set_id(options.id);
  request.set_min_accuracy(options.min_accuracy);
  if (options.split_point.has_value()) {
    request.set_split_point(*options.split_point);
  }
  request.set_allow_partial(options.allow_partial);
  request.set_disable_early_exits(options.disable_early_exits);
  request.set_top_k(options.top_k);
  if (options.encoding.has_value()) request.set_encoding(*options.encoding);
  request.set_task(options.task);
  if (options.criticality.has_value()) {
    request.set_criticality(*options.criticality);
  }

  tandem::v1::TensorSpec* spec = request.add_inputs();
  spec->set_name(kInputTensorName);
  spec->set_datatype(input.datatype);
  spec->mutable_shape()->Add(input.shape.begin(), input.shape.end());
  spec->set_encoding(input.encoding);
  spec->mutable_scale()->Add(input.scale.begin(), input.scale.end());
  spec->mutable_zero_point()->Add(input.zero_point.begin(),
                                  input.zero_point.end());
  spec->set_encoded_bytes(static_cast<int64_t>(input.data.size()));
  request.add_raw_input_contents(input.data);
  return request;
}

InferResult ToInferResult(const tandem::v1::InferResponse& response) {
  InferResult result;
  result.id = response.id();
  result.model_version = response.model_version();
  result.top_k.reserve(response.top_k_size());
  for (const tandem::v1::ClassScore& score : response.top_k()) {
    result.top_k.push_back({score.index(), score.label(), score.probability()});
  }
  result.exit_block = response.exit_block();
  result.answered_by = ToSite(response.answered_by());
  result.split_point = response.split_point();
  result.timings = ToTimings(response.timings());
  result.bytes_sent = response.bytes_sent();
  result.fallback_reason = response.fallback_reason();
  result.confidence = response.confidence();
  result.energy_mj = response.energy_mj();
  result.energy_measured = response.energy_measured();
  result.task = response.task();
  result.scaling_level = response.scaling_level();
  result.batch_size = std::max(1, response.batch_size());
  result.cut_short = response.cut_short();
  return result;
}

ModelInfo ToModelInfo(const tandem::v1::ModelSummary& summary) {
  ModelInfo info;
  info.name = summary.name();
  info.version = summary.version();
  info.num_blocks = summary.num_blocks();
  info.exit_blocks.assign(summary.exit_blocks().begin(),
                          summary.exit_blocks().end());
  info.input_shape.assign(summary.input_shape().begin(),
                          summary.input_shape().end());
  info.input_datatype = summary.input_datatype();
  info.trained = summary.trained();
  return info;
}

}  // namespace client_internal
}  // namespace tandem
