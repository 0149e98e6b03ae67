#include "tools/image_io.h"

#include <png.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace tandem {
namespace {

// No image we accept is larger than this on disk.
constexpr size_t kMaxFileBytes = size_t{512} << 20;
constexpr char kPngSignature[] = "\x89PNG\r\n\x1a\n";

absl::StatusOr<std::string> ReadFileContents(const std::string& path) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(
      std::fopen(path.c_str(), "rb"), &std::fclose);
  if (file == nullptr) {
    const int error = errno;
    const std::string message =
        absl::StrCat("cannot open ", path, ": ", std::strerror(error));
    if (error == ENOENT || error == ENOTDIR) {
      return absl::NotFoundError(message);
    }
    if (error == EACCES) return absl::PermissionDeniedError(message);
    return absl::InvalidArgumentError(message);
  }
  std::string contents;
  char buffer[1 << 16];
  size_t read;
  while ((read = std::fread(buffer, 1, sizeof(buffer), file.get())) > 0) {
    contents.append(buffer, read);
    if (contents.size() > kMaxFileBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, " is larger than ", kMaxFileBytes, " bytes"));
    }
  }
  if (std::ferror(file.get())) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read ", path, ": ", std::strerror(errno)));
  }
  return contents;
}

absl::Status CheckDimensions(int64_t width, int64_t height) {
  if (width <= 0 || height <= 0 || width * height > kMaxImagePixels) {
    return absl::InvalidArgumentError(
        absl::StrCat("image size ", width, "x", height, " out of range (1 to ",
                     kMaxImagePixels, " pixels)"));
  }
  return absl::OkStatus();
}

// Reads the whitespace-separated decimal fields of a PNM file, skipping
// '#' comments.
class PnmReader {
 public:
  explicit PnmReader(absl::string_view contents) : rest_(contents) {}

  absl::StatusOr<int64_t> ReadNumber(absl::string_view field) {
    SkipSpaceAndComments();
    int64_t value = 0;
    size_t digits = 0;
    while (digits < rest_.size() && absl::ascii_isdigit(rest_[digits])) {
      value = value * 10 + (rest_[digits] - '0');
      ++digits;
      if (value > std::numeric_limits<int32_t>::max()) {
        return absl::InvalidArgumentError(
            absl::StrCat("PNM: ", field, " too large"));
      }
    }
    if (digits == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("PNM: malformed or missing ", field));
    }
    rest_.remove_prefix(digits);
    return value;
  }

  // After the header: exactly one whitespace byte precedes a binary raster.
  absl::StatusOr<absl::string_view> BinaryRaster(size_t bytes) {
    if (rest_.empty() || !absl::ascii_isspace(rest_[0])) {
      return absl::InvalidArgumentError("PNM: no whitespace before raster");
    }
    rest_.remove_prefix(1);
    if (rest_.size() < bytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "PNM: truncated raster: ", rest_.size(), " of ", bytes, " bytes"));
    }
    return rest_.substr(0, bytes);
  }

 private:
  void SkipSpaceAndComments() {
    while (!rest_.empty()) {
      if (absl::ascii_isspace(rest_[0])) {
        rest_.remove_prefix(1);
      } else if (rest_[0] == '#') {
        const size_t end = rest_.find('\n');
        rest_.remove_prefix(end == absl::string_view::npos ? rest_.size()
                                                           : end + 1);
      } else {
        return;
      }
    }
  }

  absl::string_view rest_;
};

uint8_t ScaleTo8Bits(int64_t value, int64_t max_value) {
  if (max_value == 255) return static_cast<uint8_t>(value);
  return static_cast<uint8_t>((value * 255 + max_value / 2) / max_value);
}

struct AxisTap {
  int source;
  float weight;
};

// For each destination index along one axis, the source samples it mixes.
std::vector<std::vector<AxisTap>> AxisTaps(int source_size, int target_size,
                                           ResizeFilter filter) {
  if (filter == ResizeFilter::kAuto) {
    filter = target_size < source_size ? ResizeFilter::kArea
                                       : ResizeFilter::kBilinear;
  }
  const double scale = static_cast<double>(source_size) / target_size;
  std::vector<std::vector<AxisTap>> taps(target_size);
  for (int i = 0; i < target_size; ++i) {
    if (filter == ResizeFilter::kBilinear) {
      const double centre = std::clamp((i + 0.5) * scale - 0.5, 0.0,
                                       static_cast<double>(source_size - 1));
      const int low = static_cast<int>(centre);
      const int high = std::min(low + 1, source_size - 1);
      const float high_weight = static_cast<float>(centre - low);
      taps[i] = {{low, 1.0f - high_weight}, {high, high_weight}};
    } else {
      const double start = i * scale;
      const double end = (i + 1) * scale;
      const int last = std::min(static_cast<int>(std::ceil(end)), source_size);
      for (int j = static_cast<int>(start); j < last; ++j) {
        const double overlap =
            std::min(end, j + 1.0) - std::max(start, 1.0 * j);
        if (overlap > 0) {
          taps[i].push_back({j, static_cast<float>(overlap / scale)});
        }
      }
    }
  }
  return taps;
}

uint8_t RoundToByte(float value) {
  return static_cast<uint8_t>(std::clamp(std::lround(value), 0L, 255L));
}

}  // namespace

absl::StatusOr<Image> DecodePnm(absl::string_view contents) {
  if (contents.size() < 2 || contents[0] != 'P') {
    return absl::InvalidArgumentError("not a PNM file");
  }
  const char kind = contents[1];
  if (kind != '2' && kind != '3' && kind != '5' && kind != '6') {
    return absl::InvalidArgumentError(absl::StrCat("unsupported PNM kind P",
                                                   std::string(1, kind),
                                                   " (want P2, P3, P5 or P6)"));
  }
  const bool binary = kind == '5' || kind == '6';
  PnmReader reader(contents.substr(2));
  ASSIGN_OR_RETURN(const int64_t width, reader.ReadNumber("width"));
  ASSIGN_OR_RETURN(const int64_t height, reader.ReadNumber("height"));
  ASSIGN_OR_RETURN(const int64_t max_value, reader.ReadNumber("maxval"));
  RETURN_IF_ERROR(CheckDimensions(width, height));
  if (max_value < 1 || max_value > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("PNM: maxval ", max_value, " not in [1, 65535]"));
  }
  Image image;
  image.width = static_cast<int>(width);
  image.height = static_cast<int>(height);
  image.channels = kind == '3' || kind == '6' ? 3 : 1;
  const size_t samples = static_cast<size_t>(width * height * image.channels);
  image.pixels.resize(samples);
  if (binary) {
    const size_t sample_bytes = max_value > 255 ? 2 : 1;
    ASSIGN_OR_RETURN(const absl::string_view raster,
                     reader.BinaryRaster(samples * sample_bytes));
    const auto* bytes = reinterpret_cast<const uint8_t*>(raster.data());
    for (size_t i = 0; i < samples; ++i) {
      const int64_t value =
          sample_bytes == 1 ? bytes[i] : (bytes[2 * i] << 8) | bytes[2 * i + 1];
      if (value > max_value) {
        return absl::InvalidArgumentError(
            absl::StrCat("PNM: sample ", value, " above maxval ", max_value));
      }
      image.pixels[i] = ScaleTo8Bits(value, max_value);
    }
    return image;
  }
  for (size_t i = 0; i < samples; ++i) {
    ASSIGN_OR_RETURN(const int64_t value, reader.ReadNumber("sample"));
    if (value > max_value) {
      return absl::InvalidArgumentError(
          absl::StrCat("PNM: sample ", value, " above maxval ", max_value));
    }
    image.pixels[i] = ScaleTo8Bits(value, max_value);
  }
  return image;
}

absl::StatusOr<Image> DecodePng(absl::string_view contents) {
  png_image png;
  std::memset(&png, 0, sizeof(png));
  png.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&png, contents.data(),
                                        contents.size())) {
    return absl::InvalidArgumentError(
        absl::StrCat("PNG: ", png.message));  // libpng freed `png`.
  }
  const absl::Status size_status = CheckDimensions(png.width, png.height);
  if (!size_status.ok()) {
    png_image_free(&png);
    return size_status;
  }
  // libpng expands palettes, drops 16-bit precision and composites alpha.
  const bool color = (png.format & PNG_FORMAT_FLAG_COLOR) != 0;
  png.format = color ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
  Image image;
  image.width = static_cast<int>(png.width);
  image.height = static_cast<int>(png.height);
  image.channels = color ? 3 : 1;
  image.pixels.resize(PNG_IMAGE_SIZE(png));
  const png_color black = {0, 0, 0};
  if (!png_image_finish_read(&png, &black, image.pixels.data(),
                             /*row_stride=*/0, /*colormap=*/nullptr)) {
    return absl::InvalidArgumentError(absl::StrCat("PNG: ", png.message));
  }
  return image;
}

absl::StatusOr<Image> ReadImage(const std::string& path) {
  ASSIGN_OR_RETURN(const std::string contents, ReadFileContents(path));
  absl::StatusOr<Image> image;
  if (absl::string_view(contents).substr(0, 8) == kPngSignature) {
    image = DecodePng(contents);
  } else if (contents.size() >= 2 && contents[0] == 'P') {
    image = DecodePnm(contents);
  } else {
    image = absl::InvalidArgumentError(
        "unknown image format (want PGM, PPM or PNG)");
  }
  if (!image.ok()) return Annotate(image.status(), path);
  return image;
}

absl::StatusOr<ResizeFilter> ParseResizeFilter(absl::string_view name) {
  if (name == "bilinear") return ResizeFilter::kBilinear;
  if (name == "area") return ResizeFilter::kArea;
  if (name == "auto") return ResizeFilter::kAuto;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown resize filter '", name, "' (want bilinear, area or auto)"));
}

Image ResizeImage(const Image& image, int width, int height,
                  ResizeFilter filter) {
  if (width == image.width && height == image.height) return image;
  const std::vector<std::vector<AxisTap>> x_taps =
      AxisTaps(image.width, width, filter);
  const std::vector<std::vector<AxisTap>> y_taps =
      AxisTaps(image.height, height, filter);
  const int channels = image.channels;
  // Rows first (source height x target width), then columns.
  std::vector<float> rows(static_cast<size_t>(image.height) * width * channels);
  for (int y = 0; y < image.height; ++y) {
    for (int x = 0; x < width; ++x) {
      for (int c = 0; c < channels; ++c) {
        float sum = 0;
        for (const AxisTap& tap : x_taps[x]) {
          sum += tap.weight * image.at(tap.source, y, c);
        }
        rows[(static_cast<size_t>(y) * width + x) * channels + c] = sum;
      }
    }
  }
  Image resized;
  resized.width = width;
  resized.height = height;
  resized.channels = channels;
  resized.pixels.resize(static_cast<size_t>(width) * height * channels);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      for (int c = 0; c < channels; ++c) {
        float sum = 0;
        for (const AxisTap& tap : y_taps[y]) {
          sum += tap.weight *
                 rows[(static_cast<size_t>(tap.source) * width + x) * channels +
                      c];
        }
        resized.pixels[(static_cast<size_t>(y) * width + x) * channels + c] =
            RoundToByte(sum);
      }
    }
  }
  return resized;
}

absl::StatusOr<Image> ConvertChannels(const Image& image, int channels) {
  if (channels != 1 && channels != 3) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot convert an image to ", channels, " channels (want 1 or 3)"));
  }
  if (channels == image.channels) return image;
  Image converted;
  converted.width = image.width;
  converted.height = image.height;
  converted.channels = channels;
  const size_t pixel_count = static_cast<size_t>(image.width) * image.height;
  converted.pixels.resize(pixel_count * channels);
  for (size_t i = 0; i < pixel_count; ++i) {
    const uint8_t* in = &image.pixels[i * image.channels];
    uint8_t* out = &converted.pixels[i * channels];
    if (channels == 1) {
      out[0] = RoundToByte(0.299f * in[0] + 0.587f * in[1] + 0.114f * in[2]);
    } else {
      out[0] = out[1] = out[2] = in[0];
    }
  }
  return converted;
}

std::vector<uint8_t> ToPlanar(const Image& image) {
  const size_t plane = static_cast<size_t>(image.width) * image.height;
  std::vector<uint8_t> planar(plane * image.channels);
  for (size_t i = 0; i < plane; ++i) {
    for (int c = 0; c < image.channels; ++c) {
      planar[c * plane + i] = image.pixels[i * image.channels + c];
    }
  }
  return planar;
}

absl::StatusOr<std::vector<uint8_t>> ImageToModelInput(
    const Image& image, const ModelInputGeometry& geometry,
    ResizeFilter filter) {
  RETURN_IF_ERROR(CheckDimensions(geometry.width, geometry.height));
  ASSIGN_OR_RETURN(const Image converted,
                   ConvertChannels(image, geometry.channels));
  return ToPlanar(
      ResizeImage(converted, geometry.width, geometry.height, filter));
}

absl::StatusOr<std::vector<uint8_t>> ReadImageForModel(
    const std::string& path, const ModelInputGeometry& geometry,
    ResizeFilter filter) {
  ASSIGN_OR_RETURN(const Image image, ReadImage(path));
  return ImageToModelInput(image, geometry, filter);
}

}  // namespace tandem
