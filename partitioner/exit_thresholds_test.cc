#include "partitioner/exit_thresholds.h"

#include "common/text_proto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tandem {
namespace {

using ::testing::ElementsAre;
using ::testing::FloatEq;
using ::testing::Pair;

tandem::v1::ModelConfig Config() {
  tandem::v1::ModelConfig config;
  EXPECT_TRUE(
      ParseTextProto(
          R"pb(
            num_blocks: 4
            exits {
              block: 0
              threshold: 0.9
              calibration { threshold: 0.5 exit_rate: 0.8 accuracy: 0.80 }
              calibration { threshold: 0.9 exit_rate: 0.5 accuracy: 0.95 }
              calibration { threshold: 0.99 exit_rate: 0.2 accuracy: 0.99 }
            }
            exits {
              block: 1
              threshold: 0.8
              calibration { threshold: 0.8 exit_rate: 0.3 accuracy: 0.93 }
              calibration { threshold: 0.95 exit_rate: 0.0 accuracy: 0.0 }
            }
            exits { block: 3 }
          )pb",
          &config)
          .ok());
  return config;
}

TEST(ChooseExitThresholds, UsesCalibratedThresholdsWithoutAFloor) {
  EXPECT_THAT(ChooseExitThresholds(Config(), 0),
              ElementsAre(Pair(0, FloatEq(0.9f)), Pair(1, FloatEq(0.8f))));
}

TEST(ChooseExitThresholds, RaisesThresholdsOrDropsExitsForTheFloor) {
  // 0.97: exit 0 needs 0.99; exit 1 never reaches it.
  EXPECT_THAT(ChooseExitThresholds(Config(), 0.97f),
              ElementsAre(Pair(0, FloatEq(0.99f))));
  // 0.94: exit 0 keeps 0.9 (already enough), exit 1 is dropped.
  EXPECT_THAT(ChooseExitThresholds(Config(), 0.94f),
              ElementsAre(Pair(0, FloatEq(0.9f))));
  // Beyond every calibration point: only the final exit is left.
  EXPECT_TRUE(ChooseExitThresholds(Config(), 0.999f).empty());
}

TEST(ChooseExitThresholds, OverridesReplaceCalibratedValues) {
  EXPECT_THAT(ChooseExitThresholds(Config(), 0, {{1, 0.5f}}),
              ElementsAre(Pair(0, FloatEq(0.9f)), Pair(1, FloatEq(0.5f))));
}

}  // namespace
}  // namespace tandem
