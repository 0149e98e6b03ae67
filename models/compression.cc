#include "models/compression.h"

#include <zstd.h>

#include "absl/strings/str_cat.h"

namespace tandem {

size_t MaxCompressedSize(size_t n) { return ZSTD_compressBound(n); }

absl::Status ZstdCompress(absl::string_view in, int level, std::string* out) {
  out->resize(ZSTD_compressBound(in.size()));
  const size_t written =
      ZSTD_compress(out->data(), out->size(), in.data(), in.size(), level);
  if (ZSTD_isError(written)) {
    return absl::InternalError(
        absl::StrCat("zstd: ", ZSTD_getErrorName(written)));
  }
  out->resize(written);
  return absl::OkStatus();
}

absl::Status ZstdDecompressExact(absl::string_view in, size_t expected_size,
                                 char* out) {
  const unsigned long long declared =
      ZSTD_getFrameContentSize(in.data(), in.size());
  if (declared == ZSTD_CONTENTSIZE_ERROR) {
    return absl::InvalidArgumentError("tensor: payload is not a zstd frame");
  }
  if (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared != expected_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor: zstd frame holds ", declared,
                     " bytes; the shape needs ", expected_size));
  }
  // The output buffer bounds the work: zstd never writes past capacity.
  const size_t got = ZSTD_decompress(out, expected_size, in.data(), in.size());
  if (ZSTD_isError(got)) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor: corrupt zstd payload: ", ZSTD_getErrorName(got)));
  }
  if (got != expected_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor: zstd payload decompressed to ", got,
                     " bytes; the shape needs ", expected_size));
  }
  return absl::OkStatus();
}

}  // namespace tandem
