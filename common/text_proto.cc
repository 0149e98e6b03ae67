#include "common/text_proto.h"

#include <cerrno>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"

namespace tandem {
namespace {

// Collects the parser's first error instead of letting it print to stderr.
class ErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, int column, const std::string& message) override {
    if (first_.empty()) {
      // The parser counts from 0; editors count from 1.
      first_ = absl::StrCat("line ", line + 1, ", column ", column + 1, ": ",
                            message);
    }
  }
  const std::string& first() const { return first_; }

 private:
  std::string first_;
};

}  // namespace

absl::Status ParseTextProto(absl::string_view text,
                            google::protobuf::Message* message) {
  ErrorCollector errors;
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(std::string(text), message)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "malformed ", message->GetTypeName(),
        " text: ", errors.first().empty() ? "parse error" : errors.first()));
  }
  return absl::OkStatus();
}

absl::Status ReadFile(const std::string& path, std::string* contents,
                      size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    if (err == ENOENT)
      return absl::NotFoundError(absl::StrCat(path, ": no such file"));
    return absl::FailedPreconditionError(
        absl::StrCat(path, ": cannot open: ", std::strerror(err)));
  }
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size < 0)
    return absl::FailedPreconditionError(absl::StrCat(path, ": cannot read"));
  if (static_cast<size_t>(size) > max_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        path, ": ", size, " bytes is over the limit of ", max_bytes));
  }
  contents->resize(static_cast<size_t>(size));
  in.seekg(0);
  in.read(contents->data(), size);
  if (!in) return absl::DataLossError(absl::StrCat(path, ": short read"));
  return absl::OkStatus();
}

absl::Status ReadTextProtoFile(const std::string& path,
                               google::protobuf::Message* message,
                               size_t max_bytes) {
  std::string text;
  RETURN_IF_ERROR(ReadFile(path, &text, max_bytes));
  return Annotate(ParseTextProto(text, message), path);
}

}  // namespace tandem
