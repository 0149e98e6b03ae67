#include "models/model_config.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "models/tensor_spec.h"

namespace tandem {
namespace {

absl::Status Invalid(const std::string& where, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(where, ": ", what));
}

}  // namespace

absl::Status ValidateModelConfig(const tandem::v1::ModelConfig& config) {
  const std::string where = absl::StrCat("config of '", config.name(), "'");
  if (config.name().empty()) return Invalid("config", "name is empty");
  if (config.platform() != kModelPlatform) {
    return Invalid(where, absl::StrCat("platform '", config.platform(),
                                       "' is not '", kModelPlatform, "'"));
  }
  if (config.num_blocks() <= 0)
    return Invalid(where, "num_blocks must be positive");
  if (config.input().datatype() != "FP32") {
    return Invalid(where,
                   absl::StrCat("input datatype '", config.input().datatype(),
                                "' is not FP32"));
  }
  if (config.input().dims_size() == 0 ||
      config.input().dims_size() >= kMaxRank) {
    return Invalid(where,
                   "input dims must have 1 to 7 entries (no batch dimension)");
  }
  for (int64_t d : config.input().dims()) {
    if (d <= 0) return Invalid(where, "input dims must be positive");
  }
  if (config.max_batch_size() < 0)
    return Invalid(where, "max_batch_size is negative");
  if (config.exits_size() == 0)
    return Invalid(where, "no exits (the final one is required)");
  int previous = -1;
  for (const auto& exit : config.exits()) {
    if (exit.block() <= previous || exit.block() >= config.num_blocks()) {
      return Invalid(
          where, absl::StrCat("exit blocks must ascend within [0, ",
                              config.num_blocks(), "); got ", exit.block()));
    }
    if (!(exit.threshold() >= 0 && exit.threshold() <= 1)) {
      return Invalid(where,
                     absl::StrCat("exit ", exit.block(), " threshold ",
                                  exit.threshold(), " is outside [0, 1]"));
    }
    previous = exit.block();
  }
  if (previous != config.num_blocks() - 1) {
    return Invalid(
        where,
        absl::StrCat("the last exit must follow the last block (",
                     config.num_blocks() - 1, "); it follows ", previous));
  }
  return absl::OkStatus();
}

}  // namespace tandem
