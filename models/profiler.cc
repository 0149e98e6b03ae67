#include "models/profiler.h"

#include <torch/torch.h>

#include <string>
#include <vector>

#include "common/clock.h"
#include "common/stats.h"
#include "common/status_macros.h"
#include "models/tensor_codec.h"

namespace tandem {
namespace {

// Encodes `tensor` (one sample) every way the wire allows and records sizes.
absl::Status AddSizes(
    const at::Tensor& tensor,
    google::protobuf::RepeatedPtrField<tandem::v1::EncodedSize>* sizes) {
  for (auto encoding : {tandem::v1::ENCODING_RAW, tandem::v1::ENCODING_FP16,
                        tandem::v1::ENCODING_AFFINE_UINT8}) {
    for (auto compression :
         {tandem::v1::COMPRESSION_NONE, tandem::v1::COMPRESSION_ZSTD}) {
      EncodeOptions options;
      options.encoding = encoding;
      options.compression = compression;
      tandem::v1::TensorSpec spec;
      std::string payload;
      RETURN_IF_ERROR(EncodeTensor(tensor, options, &spec, &payload));
      tandem::v1::EncodedSize* size = sizes->Add();
      size->set_encoding(encoding);
      size->set_compression(compression);
      size->set_bytes(static_cast<int64_t>(payload.size()));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<tandem::v1::ModelProfile> ProfileModel(
    const ProgressiveModel& model, const ProfileOptions& options) {
  const int n = model.num_blocks();
  std::vector<int64_t> shape = {options.batch_size};
  shape.insert(shape.end(), model.BlockInputShape(0).begin(),
               model.BlockInputShape(0).end());
  // A deterministic input in the model's range ([0, 1] pixels).
  torch::manual_seed(0);
  const torch::Tensor input = torch::rand(shape);
  std::vector<SampleWindow> block_us(n, SampleWindow(options.runs));
  std::vector<SampleWindow> exit_us(n, SampleWindow(options.runs));
  std::vector<at::Tensor> outputs(n);
  Clock* clock = RealClock();
  for (int run = -options.warmup_runs; run < options.runs; ++run) {
    at::Tensor x = input;
    for (int b = 0; b < n; ++b) {
      const absl::Time start = clock->Now();
      ASSIGN_OR_RETURN(x, model.RunBlocks(x, b, b + 1));
      const absl::Time ran = clock->Now();
      if (model.HasExit(b)) RETURN_IF_ERROR(model.EvaluateExit(b, x).status());
      if (run < 0) continue;
      block_us[b].Add(absl::ToDoubleMicroseconds(ran - start));
      exit_us[b].Add(absl::ToDoubleMicroseconds(clock->Now() - ran));
      if (run == 0) outputs[b] = x;
    }
  }
  tandem::v1::ModelProfile profile;
  profile.set_model_name(model.name());
  profile.set_model_version(model.version());
  profile.set_device(options.device);
  profile.set_batch_size(options.batch_size);
  profile.set_samples(options.runs);
  profile.set_measured_unix_ms(absl::ToUnixMillis(absl::Now()));
  for (int b = 0; b < n; ++b) {
    tandem::v1::BlockProfile* block = profile.add_blocks();
    block->set_block(b);
    block->set_latency_us(block_us[b].Median());
    block->set_exit_latency_us(model.HasExit(b) ? exit_us[b].Median() : 0);
    int64_t elements = 1;
    for (int64_t d : model.BlockInputShape(b + 1)) elements *= d;
    block->set_output_elements(elements);
    if (options.runs > 0) {
      RETURN_IF_ERROR(
          AddSizes(outputs[b].narrow(0, 0, 1), block->mutable_output_sizes()));
    }
  }
  RETURN_IF_ERROR(
      AddSizes(input.narrow(0, 0, 1), profile.mutable_input_sizes()));
  return profile;
}

}  // namespace tandem
