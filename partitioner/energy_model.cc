#include "partitioner/energy_model.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tandem {
namespace {

struct RadioPreset {
  absl::string_view name;
  RadioPower power;
};

// Huang et al., MobiSys'12, uplink coefficients (as used by JointDNN).
constexpr RadioPreset kRadios[] = {
    {"wifi", {283.17, 132.86}},
    {"lte", {438.39, 1288.04}},
    {"3g", {868.98, 817.88}},
};

struct DevicePreset {
  absl::string_view name;
  DevicePower power;
};

// Board-level power at the power-mode cap while computing; idle 1.5-3 W.
constexpr DevicePreset kDevices[] = {
    {"jetson_nano_5w", {5.0, 1.5}},    {"jetson_nano_10w", {10.0, 1.5}},
    {"jetson_xavier_nx", {15.0, 2.0}}, {"jetson_agx_xavier", {30.0, 3.0}},
    {"jetson_orin_nx", {25.0, 3.0}},   {"raspberry_pi_4", {6.4, 2.7}},
};

}  // namespace

absl::StatusOr<RadioPower> RadioPowerPreset(absl::string_view link_type) {
  for (const RadioPreset& preset : kRadios) {
    if (preset.name == link_type) return preset.power;
  }
  return absl::NotFoundError(absl::StrCat("unknown link type '", link_type,
                                          "' (known: wifi, lte, 3g)"));
}

absl::StatusOr<DevicePower> DevicePowerPreset(absl::string_view device) {
  for (const DevicePreset& preset : kDevices) {
    if (preset.name == device) return preset.power;
  }
  std::vector<absl::string_view> known;
  for (const DevicePreset& preset : kDevices) known.push_back(preset.name);
  return absl::NotFoundError(
      absl::StrCat("unknown device preset '", device,
                   "' (known: ", absl::StrJoin(known, ", "), ")"));
}

}  // namespace tandem
