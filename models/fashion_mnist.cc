#include "models/fashion_mnist.h"

#include <zlib.h>

#include <filesystem>
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace tandem {
namespace {

struct GzCloser {
  void operator()(gzFile f) const { gzclose(f); }
};
using GzFile = std::unique_ptr<std::remove_pointer_t<gzFile>, GzCloser>;

// gzopen reads plain files too.
absl::StatusOr<GzFile> Open(const std::string& dir, const std::string& stem) {
  for (const std::string& name : {stem + ".gz", stem}) {
    const std::string path = (std::filesystem::path(dir) / name).string();
    if (!std::filesystem::exists(path)) continue;
    GzFile file(gzopen(path.c_str(), "rb"));
    if (!file) return absl::DataLossError(absl::StrCat(path, ": cannot open"));
    return file;
  }
  return absl::NotFoundError(absl::StrCat(dir, "/", stem, "[.gz] not found"));
}

absl::Status ReadExact(gzFile file, void* out, size_t n,
                       const std::string& what) {
  if (n == 0) return absl::OkStatus();
  const int got = gzread(file, out, static_cast<unsigned>(n));
  if (got < 0 || static_cast<size_t>(got) != n) {
    return absl::DataLossError(absl::StrCat(what, ": truncated"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<uint32_t>> ReadHeader(gzFile file, uint32_t magic,
                                                 int dims,
                                                 const std::string& what) {
  std::vector<uint32_t> words(1 + dims);
  RETURN_IF_ERROR(ReadExact(file, words.data(), words.size() * 4, what));
  for (uint32_t& w : words) w = __builtin_bswap32(w);  // IDX is big-endian.
  if (words[0] != magic) {
    return absl::DataLossError(
        absl::StrCat(what, ": bad IDX magic ", words[0]));
  }
  return std::vector<uint32_t>(words.begin() + 1, words.end());
}

}  // namespace

absl::StatusOr<ImageDataset> ReadFashionMnist(const std::string& dir,
                                              FashionMnistSplit split,
                                              int64_t max_count) {
  const std::string prefix =
      split == FashionMnistSplit::kTrain ? "train" : "t10k";
  const std::string images_name = prefix + "-images-idx3-ubyte";
  const std::string labels_name = prefix + "-labels-idx1-ubyte";
  ASSIGN_OR_RETURN(GzFile images, Open(dir, images_name));
  ASSIGN_OR_RETURN(GzFile labels, Open(dir, labels_name));
  ASSIGN_OR_RETURN(std::vector<uint32_t> image_dims,
                   ReadHeader(images.get(), 0x00000803, 3, images_name));
  ASSIGN_OR_RETURN(std::vector<uint32_t> label_dims,
                   ReadHeader(labels.get(), 0x00000801, 1, labels_name));
  if (image_dims[0] != label_dims[0]) {
    return absl::DataLossError(absl::StrCat(
        prefix, ": ", image_dims[0], " images but ", label_dims[0], " labels"));
  }
  // Guard the allocation against a corrupt header.
  if (image_dims[1] == 0 || image_dims[1] > 4096 || image_dims[2] == 0 ||
      image_dims[2] > 4096 || image_dims[0] > (1u << 24)) {
    return absl::DataLossError(
        absl::StrCat(images_name, ": implausible dimensions"));
  }
  ImageDataset data;
  data.count = image_dims[0];
  if (max_count >= 0 && max_count < data.count) data.count = max_count;
  data.rows = image_dims[1];
  data.cols = image_dims[2];
  data.pixels.resize(data.count * data.rows * data.cols);
  data.labels.resize(data.count);
  RETURN_IF_ERROR(ReadExact(images.get(), data.pixels.data(),
                            data.pixels.size(), images_name));
  RETURN_IF_ERROR(ReadExact(labels.get(), data.labels.data(),
                            data.labels.size(), labels_name));
  return data;
}

}  // namespace tandem
