#include "models/torch_status.h"

#include <c10/util/Exception.h>

#include "absl/strings/str_cat.h"

namespace tandem {
namespace torch_status_internal {

std::string FirstLine(absl::string_view what) {
  const size_t end = what.find('\n');
  return std::string(what.substr(0, end));
}

absl::Status FromException(absl::string_view context, const std::exception& e,
                           absl::StatusCode code) {
  const auto* torch_error = dynamic_cast<const c10::Error*>(&e);
  const char* what =
      torch_error != nullptr ? torch_error->what_without_backtrace() : e.what();
  return absl::Status(code, absl::StrCat(context, ": ", FirstLine(what)));
}

}  // namespace torch_status_internal
}  // namespace tandem
