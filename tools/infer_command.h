// `tandem infer`: classify one image file, or the first N Fashion-MNIST test
// images, through an edge agent, and report what happened.
//
//   tandem infer --edge=unix:/run/tandem/edge.sock --model=fmnist_branchy
//       --fashion-mnist=1000 --json
#ifndef TANDEM_TOOLS_INFER_COMMAND_H_
#define TANDEM_TOOLS_INFER_COMMAND_H_

#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tandem/client.h"
#include "tools/image_io.h"

namespace tandem {

struct InferCommandOptions {
  std::string model;
  // Exactly one source: an image file, or a count of Fashion-MNIST images.
  std::string image;
  int fashion_mnist_count = 0;
  std::string fashion_mnist_dir;
  ResizeFilter resize = ResizeFilter::kAuto;
  bool invert = false;  // 255 - pixel: dark ink on a light page.
  InferOptions infer;
  bool json = false;
};

// "raw", "fp16" or "int8" (also "affine_uint8").
absl::StatusOr<tandem::v1::Encoding> ParseEncodingName(absl::string_view name);

// The options the command-line flags describe (--model, --image, ...).
absl::StatusOr<InferCommandOptions> InferCommandOptionsFromFlags();

// Channels, height and width of a model input shape: [N, C, H, W], [C, H, W]
// or [H, W]. INVALID_ARGUMENT for other ranks or non-positive dimensions.
absl::StatusOr<ModelInputGeometry> GeometryFromInputShape(
    const std::vector<int64_t>& shape);

// Runs the command against `client`: results to `out`, progress and failed
// requests to `err`. Not OK when the run could not start or any request
// failed (the report is printed either way).
absl::Status RunInferCommand(Client& client, const InferCommandOptions& options,
                             std::ostream& out, std::ostream& err);

// Connects as the flags say and runs the command to stdout and stderr.
absl::Status RunInferCommandFromFlags();

}  // namespace tandem

#endif  // TANDEM_TOOLS_INFER_COMMAND_H_
