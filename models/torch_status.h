// The boundary between LibTorch's exceptions and our statuses: every call into
// LibTorch from models/ runs inside GuardTorch.
#ifndef TANDEM_MODELS_TORCH_STATUS_H_
#define TANDEM_MODELS_TORCH_STATUS_H_

#include <exception>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tandem {
namespace torch_status_internal {
// The first line of `what` (LibTorch appends long backtraces).
std::string FirstLine(absl::string_view what);
absl::Status FromException(absl::string_view context, const std::exception& e,
                           absl::StatusCode code);
}  // namespace torch_status_internal

// Runs `fn` (returning absl::Status or absl::StatusOr<T>), turning any
// c10::Error or std::exception into a status with `code` whose message is
// "<context>: <first line of the error>".
template <typename Fn>
auto GuardTorch(absl::string_view context, Fn&& fn,
                absl::StatusCode code = absl::StatusCode::kInternal)
    -> decltype(fn()) {
  try {
    return fn();
  } catch (const std::exception& e) {
    return torch_status_internal::FromException(context, e, code);
  }
}

}  // namespace tandem

#endif  // TANDEM_MODELS_TORCH_STATUS_H_
