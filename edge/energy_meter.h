// Real power meters, where the device has one: NVIDIA GPUs through NVML
// (loaded with dlopen: no link-time dependency), Jetson boards through their
// INA3221 power monitors in sysfs, x86 CPUs through RAPL powercap. Without
// one the agent models energy (partitioner/energy_model.h) and says so.
//
// Not thread-safe: the owner serializes reads.
#ifndef TANDEM_EDGE_ENERGY_METER_H_
#define TANDEM_EDGE_ENERGY_METER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/clock.h"

namespace tandem {

class EnergyMeter {
 public:
  virtual ~EnergyMeter() = default;
  // "nvml", "ina3221", "rapl".
  virtual std::string name() const = 0;
  // Energy in millijoules since an arbitrary origin, non-decreasing.
  virtual absl::StatusOr<double> ReadMillijoules() = 0;
};

// The first meter that answers, in the order NVML, INA3221, RAPL; null when
// none does. `sysfs_root` is "/sys" except in tests.
std::unique_ptr<EnergyMeter> DetectEnergyMeter(const std::string& sysfs_root,
                                               Clock* clock);

}  // namespace tandem

#endif  // TANDEM_EDGE_ENERGY_METER_H_
