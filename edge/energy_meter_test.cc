// The sysfs readers on directory trees laid out as the kernel lays out RAPL
// and Jetson INA3221 (no such hardware here); NVML needs a GPU and is only
// probed on the real /sys.
#include "edge/energy_meter.h"

#include <filesystem>
#include <fstream>

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace tandem {
namespace {

namespace fs = std::filesystem;

class EnergyMeterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("tandem_sysfs_" + std::to_string(getpid()));
    fs::remove_all(root_);
  }
  void TearDown() override { fs::remove_all(root_); }
  void Write(const fs::path& relative, const std::string& text) {
    fs::create_directories((root_ / relative).parent_path());
    std::ofstream(root_ / relative) << text;
  }
  fs::path root_;
};

TEST_F(EnergyMeterTest, NoMeterWithoutHardware) {
  FakeClock clock;
  fs::create_directories(root_);
  EXPECT_EQ(DetectEnergyMeter(root_.string(), &clock), nullptr);
}

TEST_F(EnergyMeterTest, RaplCountsAcrossTheWrap) {
  FakeClock clock;
  Write("class/powercap/intel-rapl:0/max_energy_range_uj", "1000000\n");
  Write("class/powercap/intel-rapl:0/energy_uj", "999000\n");
  auto meter = DetectEnergyMeter(root_.string(), &clock);
  ASSERT_NE(meter, nullptr);
  EXPECT_EQ(meter->name(), "rapl");
  ASSERT_OK_AND_ASSIGN(double before, meter->ReadMillijoules());
  Write("class/powercap/intel-rapl:0/energy_uj", "4000\n");  // Wrapped.
  ASSERT_OK_AND_ASSIGN(double after, meter->ReadMillijoules());
  EXPECT_DOUBLE_EQ(after - before, 5.0);  // 1000 uJ to the wrap + 4000 uJ.
}

TEST_F(EnergyMeterTest, Ina3221IntegratesRailPower) {
  FakeClock clock;
  Write("class/hwmon/hwmon1/name", "ina3221\n");
  Write("class/hwmon/hwmon1/power1_input", "2000\n");  // mW
  Write("class/hwmon/hwmon1/power2_input", "1000\n");
  Write("class/hwmon/hwmon0/name", "cpu_thermal\n");
  auto meter = DetectEnergyMeter(root_.string(), &clock);
  ASSERT_NE(meter, nullptr);
  EXPECT_EQ(meter->name(), "ina3221");
  ASSERT_OK_AND_ASSIGN(double start, meter->ReadMillijoules());
  clock.Advance(absl::Milliseconds(500));
  ASSERT_OK_AND_ASSIGN(double later, meter->ReadMillijoules());
  EXPECT_NEAR(later - start, 3000 * 0.5, 1e-9);  // 3 W for 0.5 s.
}

}  // namespace
}  // namespace tandem
