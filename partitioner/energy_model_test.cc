#include "partitioner/energy_model.h"

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace tandem {
namespace {

using ::tandem::testing::StatusIs;

TEST(EnergyModel, AddsComputeRadioAndIdle) {
  ASSERT_OK_AND_ASSIGN(RadioPower lte, RadioPowerPreset("lte"));
  ASSERT_OK_AND_ASSIGN(DevicePower nano, DevicePowerPreset("jetson_nano_10w"));
  const EnergyModel model{nano, lte};
  // 10 W x 20 ms + (438.39 x 5 + 1288.04) mW x 30 ms + 1.5 W x 50 ms.
  const double want = 10 * 20 + (438.39 * 5 + 1288.04) / 1000 * 30 + 1.5 * 50;
  EXPECT_NEAR(model.EnergyMj(20, 30, 5, 50), want, 1e-9);
}

TEST(EnergyModel, PresetsFromTheLiterature) {
  ASSERT_OK_AND_ASSIGN(RadioPower wifi, RadioPowerPreset("wifi"));
  EXPECT_DOUBLE_EQ(wifi.alpha_mw_per_mbit, 283.17);
  EXPECT_DOUBLE_EQ(wifi.beta_mw, 132.86);
  ASSERT_OK_AND_ASSIGN(RadioPower g3, RadioPowerPreset("3g"));
  EXPECT_DOUBLE_EQ(g3.alpha_mw_per_mbit, 868.98);
  EXPECT_THAT(RadioPowerPreset("5g"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(DevicePowerPreset("toaster"),
              StatusIs(absl::StatusCode::kNotFound));
}

}  // namespace
}  // namespace tandem
