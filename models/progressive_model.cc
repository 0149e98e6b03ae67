#include "models/progressive_model.h"

#include <time.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/clock.h"
#include "common/status_macros.h"
#include "common/text_proto.h"
#include "models/model_config.h"
#include "models/tensor_spec.h"
#include "models/torch_status.h"

namespace tandem {

namespace fs = std::filesystem;

struct ProgressiveModel::Modules {
  explicit Modules(torch::Device d) : device(d) {}
  torch::Device device;
  torch::jit::Module root;
  std::vector<torch::jit::Module> blocks;
  std::map<int, torch::jit::Module> exits;
};

namespace {

// The calling thread's CPU time (LibTorch runs each call on it: the agent
// sets one intra-op thread), in the units EmulatedDevice keeps.
std::chrono::nanoseconds ThreadCpuNanos() {
  return absl::ToChronoNanoseconds(ThreadCpuTime());
}

absl::Status Invalid(const std::string& where, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(where, ": ", what));
}

// The highest numbered subdirectory of `model_dir` that holds model.pt.
absl::StatusOr<std::string> NewestVersion(const std::string& model_dir) {
  int64_t best = -1;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(model_dir, ec)) {
    int64_t number;
    if (entry.is_directory() &&
        absl::SimpleAtoi(entry.path().filename().string(), &number) &&
        number > best && fs::exists(entry.path() / "model.pt")) {
      best = number;
    }
  }
  if (ec)
    return absl::NotFoundError(absl::StrCat(model_dir, ": ", ec.message()));
  if (best < 0) {
    return absl::NotFoundError(
        absl::StrCat(model_dir, ": no version directory with model.pt"));
  }
  return absl::StrCat(best);
}

// Children of a container module, by their decimal names.
absl::StatusOr<std::map<int, torch::jit::Module>> IndexedChildren(
    const torch::jit::Module& container, const std::string& where) {
  std::map<int, torch::jit::Module> children;
  for (const auto& child : container.named_children()) {
    int index;
    if (!absl::SimpleAtoi(child.name, &index)) {
      return Invalid(
          where, absl::StrCat("child '", child.name, "' is not a block index"));
    }
    if (child.value.find_method("forward") == c10::nullopt) {
      return Invalid(where,
                     absl::StrCat("child '", child.name, "' has no forward()"));
    }
    children.emplace(index, child.value);
  }
  return children;
}

std::string ShapeString(at::IntArrayRef sizes) {
  return absl::StrCat("[", absl::StrJoin(sizes, ", "), "]");
}

}  // namespace

ProgressiveModel::ProgressiveModel() = default;
ProgressiveModel::~ProgressiveModel() = default;

absl::StatusOr<std::unique_ptr<ProgressiveModel>> ProgressiveModel::Load(
    const std::string& model_dir, const ModelLoadOptions& options) {
  std::unique_ptr<ProgressiveModel> model(new ProgressiveModel());
  const std::string config_path =
      (fs::path(model_dir) / "config.pbtxt").string();
  RETURN_IF_ERROR(ReadTextProtoFile(config_path, &model->config_));
  RETURN_IF_ERROR(Annotate(ValidateModelConfig(model->config_), config_path));
  const std::string dir_name =
      fs::path(model_dir).lexically_normal().filename().string();
  if (!dir_name.empty() && dir_name != model->config_.name()) {
    return Invalid(config_path, absl::StrCat("name '", model->config_.name(),
                                             "' differs from its directory '",
                                             dir_name, "'"));
  }
  if (options.version.empty()) {
    ASSIGN_OR_RETURN(model->version_, NewestVersion(model_dir));
  } else {
    model->version_ = options.version;
  }
  const std::string model_pt =
      (fs::path(model_dir) / model->version_ / "model.pt").string();
  if (!fs::exists(model_pt))
    return absl::NotFoundError(absl::StrCat(model_pt, ": no such file"));

  RETURN_IF_ERROR(GuardTorch(
      "device",
      [&]() -> absl::Status {
        model->modules_ =
            std::make_unique<Modules>(torch::Device(options.device));
        if (model->modules_->device.is_cuda() && !torch::cuda::is_available()) {
          return absl::FailedPreconditionError(
              "CUDA requested but not available");
        }
        return absl::OkStatus();
      },
      absl::StatusCode::kInvalidArgument));
  if (!(options.emulated_slowdown >= 1.0 &&
        options.emulated_slowdown <= 1000.0)) {
    return absl::InvalidArgumentError(absl::StrCat("emulated_slowdown ",
                                                   options.emulated_slowdown,
                                                   " is outside [1, 1000]"));
  }
  RETURN_IF_ERROR(model->Bind(model_pt));
  RETURN_IF_ERROR(
      Annotate(model->DryRun(1 + std::max(options.warmup_runs, 0)), model_pt));
  model->slowdown_ = options.emulated_slowdown;  // Warm-up runs at full speed.
  return model;
}

absl::Status ProgressiveModel::Bind(const std::string& model_pt) {
  RETURN_IF_ERROR(GuardTorch(
      model_pt,
      [&]() -> absl::Status {
        modules_->root = torch::jit::load(model_pt, modules_->device);
        modules_->root.eval();
        return absl::OkStatus();
      },
      absl::StatusCode::kInvalidArgument));
  torch::jit::Module& root = modules_->root;
  for (const char* name : {"blocks", "exits"}) {
    if (!root.hasattr(name) || !root.attr(name).isModule()) {
      return Invalid(model_pt, absl::StrCat("has no submodule '", name, "'"));
    }
  }
  ASSIGN_OR_RETURN(auto blocks, IndexedChildren(root.attr("blocks").toModule(),
                                                model_pt + " blocks"));
  for (int i = 0; i < static_cast<int>(blocks.size()); ++i) {
    if (blocks.count(i) == 0)
      return Invalid(model_pt, absl::StrCat("block ", i, " is missing"));
    modules_->blocks.push_back(blocks.at(i));
  }
  if (static_cast<int>(blocks.size()) != config_.num_blocks()) {
    return Invalid(model_pt, absl::StrCat("has ", blocks.size(),
                                          " blocks; its config says ",
                                          config_.num_blocks()));
  }
  ASSIGN_OR_RETURN(
      modules_->exits,
      IndexedChildren(root.attr("exits").toModule(), model_pt + " exits"));
  std::set<int> model_exits, config_exits;
  for (const auto& [block, head] : modules_->exits) {
    if (block < 0 || block >= config_.num_blocks()) {
      return Invalid(model_pt, absl::StrCat("exit key '", block,
                                            "' is not a block index in [0, ",
                                            config_.num_blocks(), ")"));
    }
    model_exits.insert(block);
  }
  for (const auto& exit : config_.exits()) config_exits.insert(exit.block());
  if (model_exits != config_exits) {
    return Invalid(
        model_pt,
        absl::StrCat("exits after blocks {", absl::StrJoin(model_exits, ","),
                     "} differ from the config's {",
                     absl::StrJoin(config_exits, ","), "}"));
  }
  exit_blocks_.assign(config_exits.begin(), config_exits.end());
  return absl::OkStatus();
}

absl::Status ProgressiveModel::DryRun(int runs) {
  std::vector<int64_t> shape = {1};
  shape.insert(shape.end(), config_.input().dims().begin(),
               config_.input().dims().end());
  return GuardTorch(
      "dry run",
      [&]() -> absl::Status {
        c10::InferenceMode guard;
        for (int run = 0; run < runs; ++run) {
          block_input_shapes_.clear();
          torch::Tensor x = torch::zeros(
              shape, torch::TensorOptions().device(modules_->device));
          for (int b = 0; b < num_blocks(); ++b) {
            block_input_shapes_.emplace_back(x.sizes().begin() + 1,
                                             x.sizes().end());
            try {
              x = modules_->blocks[b].forward({x}).toTensor();
            } catch (const std::exception& e) {
              return absl::InvalidArgumentError(absl::StrCat(
                  "block ", b, " rejects input ", ShapeString(x.sizes()),
                  " (config input dims ", ShapeString(shape),
                  "): ", torch_status_internal::FirstLine(e.what())));
            }
            if (!HasExit(b)) continue;
            const torch::Tensor logits =
                modules_->exits.at(b).forward({x}).toTensor();
            if (logits.dim() != 2 || logits.size(0) != 1) {
              return absl::InvalidArgumentError(absl::StrCat(
                  "exit ", b, " returns ", ShapeString(logits.sizes()),
                  ", not [batch, classes]"));
            }
            if (num_classes_ == 0) num_classes_ = logits.size(1);
            if (logits.size(1) != num_classes_ ||
                (config_.labels_size() > 0 &&
                 num_classes_ != config_.labels_size())) {
              return absl::InvalidArgumentError(absl::StrCat(
                  "exit ", b, " has ", logits.size(1), " classes; expected ",
                  config_.labels_size() > 0 ? config_.labels_size()
                                            : num_classes_));
            }
          }
          block_input_shapes_.emplace_back(x.sizes().begin() + 1,
                                           x.sizes().end());
        }
        return absl::OkStatus();
      },
      absl::StatusCode::kInvalidArgument);
}

bool ProgressiveModel::HasExit(int block) const {
  return modules_->exits.count(block) > 0;
}

float ProgressiveModel::CalibratedThreshold(int block) const {
  for (const auto& exit : config_.exits()) {
    if (exit.block() == block) return exit.threshold();
  }
  return 1.0f;
}

absl::Status ProgressiveModel::ValidateBlockInput(
    int block, const at::Tensor& input) const {
  if (block < 0 || block >= num_blocks()) {
    return absl::InvalidArgumentError(
        absl::StrCat("block ", block, " is outside [0, ", num_blocks(), ")"));
  }
  const std::vector<int64_t>& want = block_input_shapes_[block];
  const at::IntArrayRef got = input.sizes();
  const bool shape_ok = got.size() == want.size() + 1 &&
                        std::equal(want.begin(), want.end(), got.begin() + 1);
  if (input.scalar_type() != torch::kFloat32 || !shape_ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input of block ", block, " must be FP32 [batch, ",
        absl::StrJoin(want, ", "), "]; got ",
        c10::toString(input.scalar_type()), " ", ShapeString(got)));
  }
  const int64_t batch = got[0];
  if (batch < 1 ||
      (config_.max_batch_size() > 0 && batch > config_.max_batch_size())) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch size ", batch, " is outside [1, ",
                     config_.max_batch_size(), "]"));
  }
  return absl::OkStatus();
}

absl::StatusOr<at::Tensor> ProgressiveModel::RunBlocks(const at::Tensor& input,
                                                       int begin,
                                                       int end) const {
  if (begin < 0 || end > num_blocks() || begin > end) {
    return absl::InvalidArgumentError(absl::StrCat("block range [", begin, ", ",
                                                   end, ") is outside [0, ",
                                                   num_blocks(), "]"));
  }
  const EmulatedDevice emulated(*this);
  absl::StatusOr<at::Tensor> out =
      GuardTorch("running blocks", [&]() -> absl::StatusOr<at::Tensor> {
        c10::InferenceMode guard;
        torch::Tensor x = input.to(modules_->device);
        for (int b = begin; b < end; ++b)
          x = modules_->blocks[b].forward({x}).toTensor();
        return x;
      });
  return out;
}

absl::StatusOr<ExitEvaluation> ProgressiveModel::EvaluateExit(
    int block, const at::Tensor& block_output) const {
  if (!HasExit(block)) {
    return absl::InvalidArgumentError(
        absl::StrCat("block ", block, " has no exit head"));
  }
  const EmulatedDevice emulated(*this);
  absl::StatusOr<ExitEvaluation> out =
      GuardTorch("evaluating an exit", [&]() -> absl::StatusOr<ExitEvaluation> {
        c10::InferenceMode guard;
        const torch::Tensor logits =
            modules_->exits.at(block)
                .forward({block_output.to(modules_->device)})
                .toTensor();
        const torch::Tensor log_p =
            torch::log_softmax(logits.to(torch::kCPU, torch::kFloat32), 1);
        ExitEvaluation out;
        out.probabilities = log_p.exp();
        const auto [max_p, argmax] = out.probabilities.max(1);
        const torch::Tensor entropy = -(out.probabilities * log_p).sum(1);
        const int64_t batch = logits.size(0);
        out.predicted.resize(batch);
        out.confidence.resize(batch);
        out.entropy.resize(batch);
        const auto max_a = max_p.accessor<float, 1>();
        const auto arg_a = argmax.accessor<int64_t, 1>();
        const auto ent_a = entropy.accessor<float, 1>();
        for (int64_t i = 0; i < batch; ++i) {
          out.predicted[i] = static_cast<int32_t>(arg_a[i]);
          out.confidence[i] = max_a[i];
          out.entropy[i] = ent_a[i];
        }
        return out;
      });
  return out;
}

absl::StatusOr<at::Tensor> ProgressiveModel::Forward(
    const at::Tensor& input) const {
  const EmulatedDevice emulated(*this);
  absl::StatusOr<at::Tensor> out =
      GuardTorch("forward", [&]() -> absl::StatusOr<at::Tensor> {
        c10::InferenceMode guard;
        return modules_->root.forward({input.to(modules_->device)}).toTensor();
      });
  return out;
}

namespace {
// Open EmulatedDevice scopes on this thread.
thread_local int emulation_depth = 0;
}  // namespace

ProgressiveModel::EmulatedDevice::EmulatedDevice(const ProgressiveModel& model)
    : model_(model) {
  if (model_.slowdown_ <= 1.0) return;
  outermost_ = emulation_depth++ == 0;
  if (outermost_) start_ = ThreadCpuNanos();
}

ProgressiveModel::EmulatedDevice::~EmulatedDevice() {
  if (model_.slowdown_ <= 1.0) return;
  --emulation_depth;
  if (outermost_) model_.Dilate(start_);
}

void ProgressiveModel::Dilate(std::chrono::nanoseconds start) const {
  if (slowdown_ <= 1.0) return;
  // CPU time, not wall time: a worker that shares its core with others (or
  // is preempted) is not charged for the time it did not run, so the device
  // stays s times slower however its workers are scheduled.
  const std::chrono::nanoseconds own = ThreadCpuNanos() - start;
  const std::chrono::nanoseconds until =
      ThreadCpuNanos() + std::chrono::duration_cast<std::chrono::nanoseconds>(
                             own * (slowdown_ - 1.0));
  while (ThreadCpuNanos() < until) {
    // Busy: the emulated device is computing, not idle.
  }
}

}  // namespace tandem
