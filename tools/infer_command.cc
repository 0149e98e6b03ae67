#include "tools/infer_command.h"

#include <algorithm>
#include <cstdint>
#include <iostream>
#include <utility>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "models/fashion_mnist.h"
#include "tools/connection_flags.h"
#include "tools/infer_report.h"

ABSL_FLAG(std::string, image, "",
          "Image to classify: PGM/PPM or PNG, resized to the model's input");
ABSL_FLAG(int, fashion_mnist, 0,
          "Classify the first N Fashion-MNIST test images and summarize");
ABSL_FLAG(std::string, fashion_mnist_dir, tandem::kDefaultFashionMnistDir,
          "Directory of the Fashion-MNIST IDX files");
ABSL_FLAG(int, split, -1,
          "Force the split point k (0 cloud-only, N edge-only); -1: the "
          "agent's plan");
ABSL_FLAG(std::string, encoding, "",
          "Force the offloaded tensor's encoding: raw, fp16 or int8; empty: "
          "the agent's plan");
ABSL_FLAG(int64_t, deadline_ms, 0, "Deadline of each request; 0: none");
ABSL_FLAG(float, min_accuracy, 0,
          "Least calibrated accuracy acceptable; 0: none");
ABSL_FLAG(bool, no_early_exits, false, "Run every request to the final exit");
ABSL_FLAG(bool, allow_partial, false,
          "Accept the best exit so far when the cloud fails near the deadline");
ABSL_FLAG(int, top_k, 1, "How many classes to return");
ABSL_FLAG(std::string, model_version, "", "Model version; empty: newest");
ABSL_FLAG(std::string, resize, "auto",
          "Image resize filter: area, bilinear or auto (area to shrink)");
ABSL_FLAG(bool, invert, false,
          "Invert pixels (255 - p): for dark ink on a light background");

namespace tandem {
namespace {

// At most this many failed requests are printed one by one.
constexpr int kMaxErrorLines = 20;

absl::Status ValidateOptions(const InferCommandOptions& options) {
  if (options.model.empty()) {
    return absl::InvalidArgumentError("--model is required");
  }
  if (options.image.empty() == (options.fashion_mnist_count <= 0)) {
    return absl::InvalidArgumentError(
        "give exactly one of --image=FILE and --fashion-mnist=N (N > 0)");
  }
  if (options.infer.top_k < 1) {
    return absl::InvalidArgumentError("--top_k must be at least 1");
  }
  return absl::OkStatus();
}

absl::StatusOr<ModelInfo> FindModel(Client& client,
                                    const InferCommandOptions& options) {
  ASSIGN_OR_RETURN(const std::vector<ModelInfo> models, client.ListModels());
  std::vector<std::string> served;
  for (const ModelInfo& model : models) {
    if (model.name == options.model &&
        (options.infer.model_version.empty() ||
         model.version == options.infer.model_version)) {
      return model;
    }
    served.push_back(absl::StrCat(model.name, ":", model.version));
  }
  return absl::NotFoundError(absl::StrCat(
      "the agent serves no model ", options.model,
      options.infer.model_version.empty() ? "" : ":",
      options.infer.model_version, " (it serves: ",
      served.empty() ? "nothing" : absl::StrJoin(served, ", "), ")"));
}

std::vector<int64_t> BatchOfOne(const ModelInputGeometry& geometry) {
  return {1, geometry.channels, geometry.height, geometry.width};
}

void InvertPixels(std::vector<uint8_t>& pixels) {
  for (uint8_t& pixel : pixels) pixel = 255 - pixel;
}

absl::Status InferImage(Client& client, const InferCommandOptions& options,
                        const ModelInputGeometry& geometry, std::ostream& out) {
  ASSIGN_OR_RETURN(std::vector<uint8_t> pixels,
                   ReadImageForModel(options.image, geometry, options.resize));
  if (options.invert) InvertPixels(pixels);
  absl::StatusOr<InferResult> result = client.Infer(
      options.model, InputTensor::Pixels(BatchOfOne(geometry), pixels.data()),
      options.infer);
  InferReport report(options.model, /*keep_top_k=*/true);
  if (result.ok()) {
    report.AddResult(*result, /*correct=*/std::nullopt);
  } else {
    report.AddError();
  }
  if (options.json) {
    out << report.ToJson() << "\n";
  } else if (result.ok()) {
    out << options.image << " (" << options.model << "):\n"
        << FormatResult(*result);
  }
  return result.status();
}

// The model input for test image `index` (the dataset stores rows x cols
// gray pixels).
absl::StatusOr<std::vector<uint8_t>> DatasetImage(
    const ImageDataset& dataset, int64_t index,
    const InferCommandOptions& options, const ModelInputGeometry& geometry) {
  const uint8_t* begin = dataset.image(index);
  std::vector<uint8_t> pixels(begin, begin + dataset.rows * dataset.cols);
  if (geometry.channels != 1 || geometry.height != dataset.rows ||
      geometry.width != dataset.cols) {
    Image image;
    image.width = static_cast<int>(dataset.cols);
    image.height = static_cast<int>(dataset.rows);
    image.channels = 1;
    image.pixels = std::move(pixels);
    ASSIGN_OR_RETURN(pixels,
                     ImageToModelInput(image, geometry, options.resize));
  }
  if (options.invert) InvertPixels(pixels);
  return pixels;
}

absl::Status InferFashionMnist(Client& client,
                               const InferCommandOptions& options,
                               const ModelInputGeometry& geometry,
                               std::ostream& out, std::ostream& err) {
  ASSIGN_OR_RETURN(
      const ImageDataset dataset,
      ReadFashionMnist(options.fashion_mnist_dir, FashionMnistSplit::kTest,
                       options.fashion_mnist_count));
  if (dataset.count < options.fashion_mnist_count) {
    err << "note: the test split holds only " << dataset.count << " images\n";
  }
  InferReport report(options.model);
  absl::Status first_error;
  const int64_t progress_step = std::max<int64_t>(1, dataset.count / 10);
  for (int64_t i = 0; i < dataset.count; ++i) {
    ASSIGN_OR_RETURN(const std::vector<uint8_t> pixels,
                     DatasetImage(dataset, i, options, geometry));
    InferOptions infer = options.infer;
    if (infer.id.empty()) infer.id = absl::StrCat("fashion-mnist-test-", i);
    const absl::StatusOr<InferResult> result = client.Infer(
        options.model, InputTensor::Pixels(BatchOfOne(geometry), pixels.data()),
        infer);
    if (result.ok()) {
      const bool correct =
          !result->top_k.empty() && result->top_k[0].index == dataset.labels[i];
      report.AddResult(*result, correct);
    } else {
      report.AddError();
      if (first_error.ok()) first_error = result.status();
      if (report.errors() <= kMaxErrorLines) {
        err << "request " << i << " failed: " << result.status() << "\n";
      } else if (report.errors() == kMaxErrorLines + 1) {
        err << "(further failures are counted, not printed)\n";
      }
    }
    if ((i + 1) % progress_step == 0 || i + 1 == dataset.count) {
      err << absl::StrFormat("infer: %d/%d (%d%%), %d failed\n", i + 1,
                             dataset.count, 100 * (i + 1) / dataset.count,
                             report.errors());
    }
  }
  out << (options.json ? report.ToJson() + "\n" : report.ToText());
  if (report.errors() == 0) return absl::OkStatus();
  return absl::Status(
      first_error.code(),
      absl::StrCat(report.errors(), " of ", report.count(),
                   " requests failed; the first: ", first_error.message()));
}

}  // namespace

absl::StatusOr<tandem::v1::Encoding> ParseEncodingName(absl::string_view name) {
  const std::string lower = absl::AsciiStrToLower(name);
  if (lower == "raw") return tandem::v1::ENCODING_RAW;
  if (lower == "fp16") return tandem::v1::ENCODING_FP16;
  if (lower == "int8" || lower == "affine_uint8") {
    return tandem::v1::ENCODING_AFFINE_UINT8;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown encoding '", name, "' (want raw, fp16 or int8)"));
}

absl::StatusOr<InferCommandOptions> InferCommandOptionsFromFlags() {
  InferCommandOptions options;
  options.model = absl::GetFlag(FLAGS_model);
  options.image = absl::GetFlag(FLAGS_image);
  options.fashion_mnist_count = absl::GetFlag(FLAGS_fashion_mnist);
  options.fashion_mnist_dir = absl::GetFlag(FLAGS_fashion_mnist_dir);
  ASSIGN_OR_RETURN(options.resize,
                   ParseResizeFilter(absl::GetFlag(FLAGS_resize)));
  options.invert = absl::GetFlag(FLAGS_invert);
  options.json = absl::GetFlag(FLAGS_json);

  InferOptions& infer = options.infer;
  if (absl::GetFlag(FLAGS_split) >= 0) {
    infer.split_point = absl::GetFlag(FLAGS_split);
  }
  if (!absl::GetFlag(FLAGS_encoding).empty()) {
    ASSIGN_OR_RETURN(infer.encoding,
                     ParseEncodingName(absl::GetFlag(FLAGS_encoding)));
  }
  if (absl::GetFlag(FLAGS_deadline_ms) < 0) {
    return absl::InvalidArgumentError("--deadline_ms must not be negative");
  }
  if (absl::GetFlag(FLAGS_deadline_ms) > 0) {
    infer.deadline = absl::Milliseconds(absl::GetFlag(FLAGS_deadline_ms));
  }
  infer.min_accuracy = absl::GetFlag(FLAGS_min_accuracy);
  infer.disable_early_exits = absl::GetFlag(FLAGS_no_early_exits);
  infer.allow_partial = absl::GetFlag(FLAGS_allow_partial);
  infer.top_k = absl::GetFlag(FLAGS_top_k);
  infer.model_version = absl::GetFlag(FLAGS_model_version);
  RETURN_IF_ERROR(ValidateOptions(options));
  return options;
}

absl::StatusOr<ModelInputGeometry> GeometryFromInputShape(
    const std::vector<int64_t>& shape) {
  const std::string shape_text =
      absl::StrCat("[", absl::StrJoin(shape, ","), "]");
  if (shape.size() < 2 || shape.size() > 4) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input shape ", shape_text, " is not [N,C,H,W], [C,H,W] or [H,W]"));
  }
  const size_t rank = shape.size();
  const int64_t channels = rank >= 3 ? shape[rank - 3] : 1;
  const int64_t height = shape[rank - 2];
  const int64_t width = shape[rank - 1];
  if (channels <= 0 || height <= 0 || width <= 0 || height > 65535 ||
      width > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("input shape ", shape_text, " has no usable image size"));
  }
  if (channels != 1 && channels != 3) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input shape ", shape_text, ": images have 1 or 3 channels"));
  }
  ModelInputGeometry geometry;
  geometry.channels = static_cast<int>(channels);
  geometry.height = static_cast<int>(height);
  geometry.width = static_cast<int>(width);
  return geometry;
}

absl::Status RunInferCommand(Client& client, const InferCommandOptions& options,
                             std::ostream& out, std::ostream& err) {
  RETURN_IF_ERROR(ValidateOptions(options));
  ASSIGN_OR_RETURN(const ModelInfo model, FindModel(client, options));
  if (!model.input_datatype.empty() && model.input_datatype != "FP32") {
    return absl::FailedPreconditionError(
        absl::StrCat("model ", model.name, " takes ", model.input_datatype,
                     " input; the CLI sends images as FP32"));
  }
  ASSIGN_OR_RETURN(const ModelInputGeometry geometry,
                   GeometryFromInputShape(model.input_shape));
  if (!options.image.empty()) {
    return InferImage(client, options, geometry, out);
  }
  return InferFashionMnist(client, options, geometry, out, err);
}

absl::Status RunInferCommandFromFlags() {
  ASSIGN_OR_RETURN(const InferCommandOptions options,
                   InferCommandOptionsFromFlags());
  ASSIGN_OR_RETURN(const std::unique_ptr<Client> client, ConnectFromFlags());
  return RunInferCommand(*client, options, std::cout, std::cerr);
}

}  // namespace tandem
