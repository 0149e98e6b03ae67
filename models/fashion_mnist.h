// Reader for the Fashion-MNIST IDX files of Debian's dataset-fashion-mnist
// package (gzip-compressed or plain). Torch-free.
#ifndef TANDEM_MODELS_FASHION_MNIST_H_
#define TANDEM_MODELS_FASHION_MNIST_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace tandem {

inline constexpr char kDefaultFashionMnistDir[] =
    "/usr/share/datasets/fashion-mnist";

// Images row-major, one byte per pixel (0 white .. 255 black ink).
struct ImageDataset {
  int64_t count = 0;
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<uint8_t> pixels;  // count * rows * cols.
  std::vector<uint8_t> labels;  // count.

  const uint8_t* image(int64_t i) const {
    return pixels.data() + i * rows * cols;
  }
};

enum class FashionMnistSplit { kTrain, kTest };

// Reads up to `max_count` samples (all when negative) of `split` from `dir`
// (t10k-* or train-* with or without .gz). NOT_FOUND when the files are
// absent, DATA_LOSS when they are malformed or disagree.
absl::StatusOr<ImageDataset> ReadFashionMnist(const std::string& dir,
                                              FashionMnistSplit split,
                                              int64_t max_count = -1);

}  // namespace tandem

#endif  // TANDEM_MODELS_FASHION_MNIST_H_
