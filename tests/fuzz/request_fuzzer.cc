// libFuzzer target: the range checks both services make before any work
// (models/request_checks.h) and the tensor-spec validation that follows
// (models/tensor_spec.h), against the Fashion-MNIST model's config.
//
// Input: one selector byte (even: tandem.v1.InferRequest for the edge; odd:
// tandem.v1.ContinueRequest for the cloud), then the serialized request.
// A request the checks pass must have what they promise; anything else
// traps.
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "models/request_checks.h"
#include "models/tensor_spec.h"
#include "tandem/v1/cloud_service.pb.h"
#include "tandem/v1/edge_service.pb.h"
#include "tandem/v1/model_config.pb.h"

namespace {

// Four blocks with exits after each, as fmnist_branchy.
const tandem::v1::ModelConfig& Config() {
  static const tandem::v1::ModelConfig* config = [] {
    auto* c = new tandem::v1::ModelConfig;
    c->set_name("fmnist_branchy");
    c->set_platform("tandem_torchscript");
    c->set_num_blocks(4);
    c->mutable_input()->set_datatype("FP32");
    for (int d : {1, 28, 28}) c->mutable_input()->add_dims(d);
    for (int b = 0; b < 4; ++b) {
      auto* exit = c->add_exits();
      exit->set_block(b);
      exit->set_threshold(b == 3 ? 0 : 0.8f);
    }
    return c;
  }();
  return *config;
}

template <typename Request>
void ValidateInputs(const Request& request) {
  tandem::DecodeLimits limits;
  limits.max_tensor_bytes = 1 << 20;
  for (int i = 0;
       i < request.inputs_size() && i < request.raw_input_contents_size();
       ++i) {
    (void)tandem::ValidateTensorSpec(
        request.inputs(i), request.raw_input_contents(i).size(), limits);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const int body = static_cast<int>(size - 1);
  if (data[0] % 2 == 0) {
    tandem::v1::InferRequest request;
    if (!request.ParseFromArray(data + 1, body)) return 0;
    if (tandem::CheckInferRequest(request, Config()).ok()) {
      if (request.inputs_size() != 1 || request.raw_input_contents_size() != 1)
        __builtin_trap();
      if (!(request.min_accuracy() >= 0 && request.min_accuracy() <= 1))
        __builtin_trap();
      if (request.top_k() < 0) __builtin_trap();
    }
    ValidateInputs(request);
  } else {
    tandem::v1::ContinueRequest request;
    if (!request.ParseFromArray(data + 1, body)) return 0;
    if (tandem::CheckContinueRequest(request, Config()).ok()) {
      if (request.start_block() < 0 ||
          request.start_block() >= Config().num_blocks())
        __builtin_trap();
      for (const auto& [block, threshold] : request.exit_thresholds()) {
        if (!(threshold >= 0 && threshold <= 1) ||
            block < request.start_block())
          __builtin_trap();
      }
      if (request.deadline_remaining_us() < 0) __builtin_trap();
    }
    ValidateInputs(request);
  }
  return 0;
}
