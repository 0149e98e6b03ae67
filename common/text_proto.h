// Reading protobuf text-format files (model configs, daemon configs).
#ifndef TANDEM_COMMON_TEXT_PROTO_H_
#define TANDEM_COMMON_TEXT_PROTO_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"

namespace tandem {

// Parses `text` into `message`. Unknown fields and syntax errors give
// INVALID_ARGUMENT naming the line and column.
absl::Status ParseTextProto(absl::string_view text,
                            google::protobuf::Message* message);

// Reads and parses the file at `path`: NOT_FOUND when it does not exist,
// INVALID_ARGUMENT (naming the file) when it does not parse. Files over
// `max_bytes` are refused with RESOURCE_EXHAUSTED.
absl::Status ReadTextProtoFile(const std::string& path,
                               google::protobuf::Message* message,
                               size_t max_bytes = 16 << 20);

// Reads a whole file; NOT_FOUND when missing, RESOURCE_EXHAUSTED over max.
absl::Status ReadFile(const std::string& path, std::string* contents,
                      size_t max_bytes);

}  // namespace tandem

#endif  // TANDEM_COMMON_TEXT_PROTO_H_
