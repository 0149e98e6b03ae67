// Reading images for the `tandem` CLI and turning them into model inputs:
// PNM (PGM P5/P2, PPM P6/P3) and PNG (through libpng), resized and converted
// to the channel count a model wants. Pure functions, thread-safe.
//
//   ModelInputGeometry geometry{/*channels=*/1, /*height=*/28, /*width=*/28};
//   ASSIGN_OR_RETURN(std::vector<uint8_t> chw,
//                    ReadImageForModel("shoe.png", geometry));
#ifndef TANDEM_TOOLS_IMAGE_IO_H_
#define TANDEM_TOOLS_IMAGE_IO_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tandem {

// 8-bit pixels, channels interleaved (HWC), rows top to bottom.
struct Image {
  int width = 0;
  int height = 0;
  int channels = 0;  // 1 gray, 3 RGB.
  std::vector<uint8_t> pixels;

  uint8_t at(int x, int y, int c) const {
    return pixels[(static_cast<size_t>(y) * width + x) * channels + c];
  }
};

// Largest image accepted, in pixels, so a corrupt header cannot make us
// allocate gigabytes.
inline constexpr int64_t kMaxImagePixels = int64_t{1} << 26;

// Reads a PGM/PPM (8- or 16-bit) or PNG file, chosen by its contents, as
// 8-bit gray or RGB. Alpha is composited onto black; 16-bit samples are
// scaled to 8 bits. NOT_FOUND when the file does not exist,
// PERMISSION_DENIED when it cannot be opened, INVALID_ARGUMENT when it is
// not a well-formed image of a supported kind.
absl::StatusOr<Image> ReadImage(const std::string& path);

// Decoders for contents already in memory (same errors as ReadImage).
absl::StatusOr<Image> DecodePnm(absl::string_view contents);
absl::StatusOr<Image> DecodePng(absl::string_view contents);

enum class ResizeFilter {
  kBilinear,  // Linear between the two nearest samples (half-pixel centres).
  kArea,      // Mean over the covered area: the choice for shrinking.
  kAuto,      // kArea when shrinking, kBilinear when enlarging.
};

// "bilinear", "area" or "auto".
absl::StatusOr<ResizeFilter> ParseResizeFilter(absl::string_view name);

// `image` resampled to width x height (both > 0), channels unchanged.
Image ResizeImage(const Image& image, int width, int height,
                  ResizeFilter filter = ResizeFilter::kAuto);

// `image` with 1 (luma, BT.601 weights) or 3 channels; INVALID_ARGUMENT for
// other counts.
absl::StatusOr<Image> ConvertChannels(const Image& image, int channels);

// The pixels channel-major (CHW), the layout models take.
std::vector<uint8_t> ToPlanar(const Image& image);

struct ModelInputGeometry {
  int channels = 1;
  int height = 0;
  int width = 0;
};

// Reads `path` and returns its pixels resized, converted and laid out (CHW)
// as `geometry` says.
absl::StatusOr<std::vector<uint8_t>> ReadImageForModel(
    const std::string& path, const ModelInputGeometry& geometry,
    ResizeFilter filter = ResizeFilter::kAuto);

// The same for an image already in memory.
absl::StatusOr<std::vector<uint8_t>> ImageToModelInput(
    const Image& image, const ModelInputGeometry& geometry,
    ResizeFilter filter = ResizeFilter::kAuto);

}  // namespace tandem

#endif  // TANDEM_TOOLS_IMAGE_IO_H_
