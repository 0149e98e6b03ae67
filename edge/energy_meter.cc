#include "edge/energy_meter.h"

#include <dlfcn.h>

#include <filesystem>
#include <fstream>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace tandem {
namespace {

namespace fs = std::filesystem;

absl::StatusOr<double> ReadNumber(const fs::path& path) {
  std::ifstream in(path);
  double value = 0;
  if (!(in >> value))
    return absl::UnavailableError(absl::StrCat("cannot read ", path.string()));
  return value;
}

// RAPL: a package's cumulative energy counter in microjoules, wrapping at
// max_energy_range_uj.
class RaplMeter : public EnergyMeter {
 public:
  RaplMeter(fs::path energy, double range_uj)
      : energy_(std::move(energy)), range_uj_(range_uj) {}
  std::string name() const override { return "rapl"; }
  absl::StatusOr<double> ReadMillijoules() override {
    absl::StatusOr<double> uj = ReadNumber(energy_);
    if (!uj.ok()) return uj.status();
    if (last_uj_ >= 0 && *uj < last_uj_) wraps_ += range_uj_;
    last_uj_ = *uj;
    return (wraps_ + *uj) / 1000.0;
  }

 private:
  fs::path energy_;
  double range_uj_;
  double last_uj_ = -1;
  double wraps_ = 0;
};

// INA3221 (Jetson): instantaneous power rails in milliwatts, integrated over
// the time between reads.
class Ina3221Meter : public EnergyMeter {
 public:
  Ina3221Meter(std::vector<fs::path> rails, Clock* clock)
      : rails_(std::move(rails)), clock_(clock) {}
  std::string name() const override { return "ina3221"; }
  absl::StatusOr<double> ReadMillijoules() override {
    double mw = 0;
    for (const fs::path& rail : rails_) {
      absl::StatusOr<double> value = ReadNumber(rail);
      if (!value.ok()) return value.status();
      mw += *value;
    }
    const absl::Time now = clock_->Now();
    if (last_read_ != absl::InfinitePast()) {
      // Trapezoid between the two readings.
      total_mj_ +=
          (mw + last_mw_) / 2 * absl::ToDoubleSeconds(now - last_read_);
    }
    last_read_ = now;
    last_mw_ = mw;
    return total_mj_;
  }

 private:
  std::vector<fs::path> rails_;
  Clock* clock_;
  absl::Time last_read_ = absl::InfinitePast();
  double last_mw_ = 0;
  double total_mj_ = 0;
};

// NVML: the GPU's total energy since the driver loaded, in millijoules.
class NvmlMeter : public EnergyMeter {
 public:
  using GetEnergy = int (*)(void*, unsigned long long*);
  NvmlMeter(void* library, void* device, GetEnergy get)
      : library_(library), device_(device), get_(get) {}
  ~NvmlMeter() override { dlclose(library_); }
  std::string name() const override { return "nvml"; }
  absl::StatusOr<double> ReadMillijoules() override {
    unsigned long long mj = 0;
    if (get_(device_, &mj) != 0)
      return absl::UnavailableError(
          "nvmlDeviceGetTotalEnergyConsumption failed");
    return static_cast<double>(mj);
  }

 private:
  void* library_;
  void* device_;
  GetEnergy get_;
};

std::unique_ptr<EnergyMeter> TryNvml() {
  void* library = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (library == nullptr) return nullptr;
  auto init = reinterpret_cast<int (*)()>(dlsym(library, "nvmlInit_v2"));
  auto handle = reinterpret_cast<int (*)(unsigned, void**)>(
      dlsym(library, "nvmlDeviceGetHandleByIndex_v2"));
  auto energy = reinterpret_cast<NvmlMeter::GetEnergy>(
      dlsym(library, "nvmlDeviceGetTotalEnergyConsumption"));
  void* device = nullptr;
  unsigned long long probe = 0;
  if (init == nullptr || handle == nullptr || energy == nullptr ||
      init() != 0 || handle(0, &device) != 0 || energy(device, &probe) != 0) {
    dlclose(library);
    return nullptr;
  }
  return std::make_unique<NvmlMeter>(library, device, energy);
}

std::unique_ptr<EnergyMeter> TryIna3221(const fs::path& sysfs, Clock* clock) {
  std::vector<fs::path> rails;
  std::error_code ec;
  const fs::path hwmon = sysfs / "class/hwmon";
  for (const auto& dir : fs::directory_iterator(hwmon, ec)) {
    std::ifstream name_file(dir.path() / "name");
    std::string name;
    if (!(name_file >> name) || !absl::StartsWith(name, "ina3221")) continue;
    for (const auto& file : fs::directory_iterator(dir.path(), ec)) {
      const std::string f = file.path().filename().string();
      if (absl::StartsWith(f, "power") && absl::EndsWith(f, "_input"))
        rails.push_back(file.path());
    }
  }
  if (rails.empty()) return nullptr;
  std::sort(rails.begin(), rails.end());
  auto meter = std::make_unique<Ina3221Meter>(std::move(rails), clock);
  if (!meter->ReadMillijoules().ok()) return nullptr;
  return meter;
}

std::unique_ptr<EnergyMeter> TryRapl(const fs::path& sysfs) {
  const fs::path package = sysfs / "class/powercap/intel-rapl:0";
  absl::StatusOr<double> range = ReadNumber(package / "max_energy_range_uj");
  if (!range.ok() || !ReadNumber(package / "energy_uj").ok()) return nullptr;
  return std::make_unique<RaplMeter>(package / "energy_uj", *range);
}

}  // namespace

std::unique_ptr<EnergyMeter> DetectEnergyMeter(const std::string& sysfs_root,
                                               Clock* clock) {
  if (sysfs_root == "/sys") {
    if (auto nvml = TryNvml()) return nvml;
  }
  if (auto ina = TryIna3221(sysfs_root, clock)) return ina;
  return TryRapl(sysfs_root);
}

}  // namespace tandem
