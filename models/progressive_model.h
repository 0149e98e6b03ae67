// A progressive (early-exit) model loaded from a model package:
//   <model_dir>/config.pbtxt        tandem.v1.ModelConfig
//   <model_dir>/<version>/model.pt  TorchScript with `blocks` and `exits`
// (docs/model_format.md). Loading checks the package against its config and
// runs one sample through every block and exit head.
//
// Thread-safe: the const methods may run concurrently from many threads. Each
// call enters c10::InferenceMode on the calling thread itself.
//
//   ASSIGN_OR_RETURN(auto model, ProgressiveModel::Load(dir, {}));
//   ASSIGN_OR_RETURN(at::Tensor mid, model->RunBlocks(image, 0, 2));
//   ASSIGN_OR_RETURN(ExitEvaluation exit, model->EvaluateExit(1, mid));
#ifndef TANDEM_MODELS_PROGRESSIVE_MODEL_H_
#define TANDEM_MODELS_PROGRESSIVE_MODEL_H_

#include <ATen/core/Tensor.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "models/model_config.h"
#include "tandem/v1/model_config.pb.h"

namespace tandem {

// An exit head's verdict on a batch.
struct ExitEvaluation {
  at::Tensor probabilities;        // [B, classes] softmax, on the CPU.
  std::vector<int32_t> predicted;  // Argmax per sample.
  std::vector<float> confidence;   // Max probability per sample.
  std::vector<float> entropy;      // Softmax entropy per sample, in nats.
};

struct ModelLoadOptions {
  // Version directory to load; empty: the highest numbered one.
  std::string version;
  // ModelRepository: load only each package's highest numbered version,
  // whatever its version_policy says (the edge agent runs one version).
  bool newest_version_only = false;
  // "cpu", "cuda", "cuda:1". CUDA falls back to an error when absent.
  std::string device = "cpu";
  // Full passes (every block and exit) after loading, so that the profiling
  // executor has compiled before the first real request.
  int warmup_runs = 0;
  // Device emulation, for benchmarks only: after each call that runs the
  // network (RunBlocks, EvaluateExit, Forward, or a whole EmulatedDevice
  // scope around several) the calling thread stays busy for (s - 1) times
  // the call's own CPU time, so the device looks s times slower at every
  // model size while CPU contention stays real (the worker spins, it does
  // not sleep, and a worker sharing its core is charged only for the time it
  // ran). 1: the device as it is.
  double emulated_slowdown = 1.0;
};

class ProgressiveModel {
 public:
  // INVALID_ARGUMENT (naming the file and problem) for a package that does
  // not match its config; NOT_FOUND when the config or version is missing.
  static absl::StatusOr<std::unique_ptr<ProgressiveModel>> Load(
      const std::string& model_dir, const ModelLoadOptions& options);

  ~ProgressiveModel();
  ProgressiveModel(const ProgressiveModel&) = delete;
  ProgressiveModel& operator=(const ProgressiveModel&) = delete;

  const tandem::v1::ModelConfig& config() const { return config_; }
  const std::string& name() const { return config_.name(); }
  const std::string& version() const { return version_; }
  int num_blocks() const { return config_.num_blocks(); }
  bool HasExit(int block) const;
  // Blocks with an exit head, ascending; the last is num_blocks() - 1.
  const std::vector<int>& exit_blocks() const { return exit_blocks_; }
  // The calibrated threshold of the exit after `block` (0 for the final).
  float CalibratedThreshold(int block) const;

  // Per-sample shape (no batch dimension) of the input of `block`, for block
  // in [0, num_blocks()]; block num_blocks() is the last block's output.
  const std::vector<int64_t>& BlockInputShape(int block) const {
    return block_input_shapes_[block];
  }
  int64_t num_classes() const { return num_classes_; }

  // INVALID_ARGUMENT unless `input` is [B, BlockInputShape(block)...] FP32
  // with 1 <= B <= max_batch_size (when the config sets one).
  absl::Status ValidateBlockInput(int block, const at::Tensor& input) const;

  // Runs blocks [begin, end) on `input` (the input of block `begin`) and
  // returns the input of block `end`, on the model's device.
  absl::StatusOr<at::Tensor> RunBlocks(const at::Tensor& input, int begin,
                                       int end) const;

  // Evaluates the exit head after `block` on that block's output.
  absl::StatusOr<ExitEvaluation> EvaluateExit(
      int block, const at::Tensor& block_output) const;

  // The module's own forward(): final-exit logits for a model input.
  absl::StatusOr<at::Tensor> Forward(const at::Tensor& input) const;

  // Device emulation over a span of work (ModelLoadOptions::
  // emulated_slowdown): the calls made inside the scope are dilated as one,
  // at its end, together with the caller's own work between them, so that
  // everything timed as this model's compute is s times slower — not only
  // the time inside LibTorch. Nested scopes (and the calls' own) defer to
  // the outermost. Per thread; free when the slowdown is 1.
  class EmulatedDevice {
   public:
    explicit EmulatedDevice(const ProgressiveModel& model);
    ~EmulatedDevice();
    EmulatedDevice(const EmulatedDevice&) = delete;
    EmulatedDevice& operator=(const EmulatedDevice&) = delete;

   private:
    const ProgressiveModel& model_;
    bool outermost_ = false;
    std::chrono::nanoseconds start_{0};
  };

 private:
  struct Modules;
  ProgressiveModel();
  absl::Status Bind(const std::string& model_pt);
  absl::Status DryRun(int runs);
  // Spins until the calling thread's CPU time since `start` has grown to
  // slowdown_ times itself.
  void Dilate(std::chrono::nanoseconds start) const;

  tandem::v1::ModelConfig config_;
  std::string version_;
  std::unique_ptr<Modules> modules_;
  std::vector<int> exit_blocks_;
  std::vector<std::vector<int64_t>> block_input_shapes_;
  int64_t num_classes_ = 0;
  double slowdown_ = 1.0;  // ModelLoadOptions::emulated_slowdown.
};

}  // namespace tandem

#endif  // TANDEM_MODELS_PROGRESSIVE_MODEL_H_
