// Edge energy per request: compute power x compute time + radio power x
// transfer time + idle power x waiting time, with the radio's power after
// Huang et al. (MobiSys'12): P = alpha * uplink throughput + beta. Pure.
#ifndef TANDEM_PARTITIONER_ENERGY_MODEL_H_
#define TANDEM_PARTITIONER_ENERGY_MODEL_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tandem {

// Uplink radio power: P[mW] = alpha_mw_per_mbit * throughput[Mbit/s] + beta_mw.
struct RadioPower {
  double alpha_mw_per_mbit = 0;
  double beta_mw = 0;
};

// Board power while computing and while idle (waiting for the cloud).
struct DevicePower {
  double compute_w = 0;
  double idle_w = 0;
};

// "wifi", "lte", "3g" (REFERENCE.md figures); NOT_FOUND otherwise.
absl::StatusOr<RadioPower> RadioPowerPreset(absl::string_view link_type);
// "jetson_nano_5w", "jetson_nano_10w", "jetson_xavier_nx", "jetson_agx_xavier",
// "jetson_orin_nx", "raspberry_pi_4"; NOT_FOUND otherwise.
absl::StatusOr<DevicePower> DevicePowerPreset(absl::string_view device);

struct EnergyModel {
  DevicePower device;
  RadioPower radio;

  // Millijoules for one request that computes `compute_ms` on the edge,
  // transmits for `transfer_ms` at `uplink_mbit`, and waits `idle_ms`.
  double EnergyMj(double compute_ms, double transfer_ms, double uplink_mbit,
                  double idle_ms) const {
    const double radio_w =
        (radio.alpha_mw_per_mbit * uplink_mbit + radio.beta_mw) / 1000;
    return device.compute_w * compute_ms + radio_w * transfer_ms +
           device.idle_w * idle_ms;
  }
};

}  // namespace tandem

#endif  // TANDEM_PARTITIONER_ENERGY_MODEL_H_
