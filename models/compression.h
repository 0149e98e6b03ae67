// The lossless stage of the tensor codec (zstd). Torch-free.
#ifndef TANDEM_MODELS_COMPRESSION_H_
#define TANDEM_MODELS_COMPRESSION_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace tandem {

// Worst-case compressed size of `n` bytes.
size_t MaxCompressedSize(size_t n);

// Replaces `out` with the zstd frame of `in` (content size recorded).
absl::Status ZstdCompress(absl::string_view in, int level, std::string* out);

// Decompresses one zstd frame that must hold exactly `expected_size` bytes
// into `out` (which must have room for them). Anything else - a corrupt frame,
// a frame that claims or yields another size - is INVALID_ARGUMENT; nothing
// is allocated from what the frame claims.
absl::Status ZstdDecompressExact(absl::string_view in, size_t expected_size,
                                 char* out);

}  // namespace tandem

#endif  // TANDEM_MODELS_COMPRESSION_H_
