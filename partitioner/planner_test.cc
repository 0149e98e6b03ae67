#include "partitioner/planner.h"

#include <cmath>
#include <set>
#include <utility>
#include <vector>

#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tandem {
namespace {

using ::tandem::testing::StatusIs;
using tandem::v1::Plan;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

// A synthetic 4-block model with exits after blocks 1 and 3. The edge takes
// 10 ms per block, the cloud 1 ms. Tensors: input 100 KB, then 400 KB,
// 50 KB, 5 KB (FP32; FP16 half, INT8 a quarter).
class PlannerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_.set_name("synthetic");
    config_.set_trained(true);
    config_.set_num_blocks(4);
    auto* early = config_.add_exits();
    early->set_block(1);
    early->set_test_accuracy(0.80f);
    auto* final_exit = config_.add_exits();
    final_exit->set_block(3);
    final_exit->set_test_accuracy(0.95f);
    // Cascade: at 0.6, 60% leave early (accuracy 0.90); at 0.9, 30% (0.94);
    // exits off: 0.95.
    AddCascade(0.6f, 0.6, 0.90);
    AddCascade(0.9f, 0.3, 0.94);
    AddCascade(1.01f, 0.0, 0.95);

    const int64_t out_fp32[] = {400000, 50000, 5000, 40};
    for (int b = 0; b < 4; ++b) {
      auto* block = edge_.add_blocks();
      block->set_block(b);
      block->set_latency_us(10000);
      block->set_exit_latency_us(b == 1 || b == 3 ? 500 : 0);
      AddSizes(block->mutable_output_sizes(), out_fp32[b]);
      auto* cloud_block = cloud_.add_blocks();
      cloud_block->set_block(b);
      cloud_block->set_latency_us(1000);
      cloud_block->set_exit_latency_us(b == 1 || b == 3 ? 50 : 0);
    }
    AddSizes(edge_.mutable_input_sizes(), 100000);
    input_.config = &config_;
    input_.edge = &edge_;
    input_.cloud = &cloud_;
    input_.energy.device = {10.0, 2.0};
    input_.energy.radio = {438.39, 1288.04};
    SetNetwork(100, 5);
  }

  void AddCascade(float threshold, double early_rate, double accuracy) {
    auto* point = config_.add_cascade_calibration();
    point->set_threshold(threshold);
    point->add_exit_rates(static_cast<float>(early_rate));
    point->add_exit_rates(static_cast<float>(1 - early_rate));
    point->set_accuracy(static_cast<float>(accuracy));
  }

  static void AddSizes(
      google::protobuf::RepeatedPtrField<tandem::v1::EncodedSize>* sizes,
      int64_t fp32) {
    const std::pair<tandem::v1::Encoding, int64_t> all[] = {
        {tandem::v1::ENCODING_RAW, fp32},
        {tandem::v1::ENCODING_FP16, fp32 / 2},
        {tandem::v1::ENCODING_AFFINE_UINT8, fp32 / 4}};
    for (const auto& [encoding, bytes] : all) {
      auto* size = sizes->Add();
      size->set_encoding(encoding);
      size->set_bytes(bytes);
    }
  }

  void SetNetwork(double mbit, double rtt_ms) {
    input_.network.set_uplink_mbit(mbit);
    input_.network.set_rtt_ms(rtt_ms);
  }

  // By default at least the 0.6-threshold cascade's accuracy, which rules
  // out the forced early exit (0.80).
  absl::StatusOr<Plan> Choose() {
    PlanConstraints constraints;
    constraints.min_accuracy = 0.90;
    return ChoosePlan(input_, constraints);
  }
  absl::StatusOr<Plan> Choose(const PlanConstraints& constraints) {
    return ChoosePlan(input_, constraints);
  }

  tandem::v1::ModelConfig config_;
  tandem::v1::ModelProfile edge_, cloud_;
  PlannerInput input_;
};

TEST_F(PlannerTest, SplitMovesIntoTheEdgeAsBandwidthFalls) {
  int previous_split = -1;
  std::vector<int> splits;
  for (double mbit : {1000.0, 100.0, 18.9, 5.85, 1.1, 0.13}) {
    SetNetwork(mbit, 5);
    ASSERT_OK_AND_ASSIGN(Plan plan, Choose());
    splits.push_back(plan.split_point());
    EXPECT_GE(plan.split_point(), previous_split)
        << mbit << " Mbit/s: " << plan.reason();
    previous_split = plan.split_point();
  }
  EXPECT_EQ(splits.front(), 0);  // A fast link: send the (small) input.
  EXPECT_EQ(splits.back(), 4);   // 0.13 Mbit/s: stay on the edge.
}

TEST_F(PlannerTest, ASizeClassPricesTransfersOfItsSize) {
  // At 0.13 Mbit/s the edge wins; but if transfers of the 8-bit input's size
  // (25 KB) are measured at 1000 Mbit/s (they fit the link's bucket), the
  // cloud-only plan that sends them wins.
  SetNetwork(0.13, 5);
  ASSERT_OK_AND_ASSIGN(Plan slow, Choose());
  EXPECT_EQ(slow.split_point(), 4);
  auto* fast = input_.network.add_size_classes();
  fast->set_min_bytes(16384);
  fast->set_max_bytes(32767);
  fast->set_uplink_mbit(1000);
  EXPECT_EQ(UplinkMbitFor(input_.network, 25000), 1000);
  EXPECT_EQ(UplinkMbitFor(input_.network, 50000), 0.13);
  ASSERT_OK_AND_ASSIGN(Plan plan, Choose());
  EXPECT_EQ(plan.split_point(), 0);
  EXPECT_EQ(plan.encoding(), tandem::v1::ENCODING_AFFINE_UINT8);
}

TEST_F(PlannerTest, SplitZeroIsPricedAtTheInputAsRequestsSendIt) {
  // Requests send 8-bit pixels (25 KB): every split-0 plan would forward them
  // as they are, so one split-0 encoding is weighed, at 25 KB.
  input_.input_wire_bytes = 25000;
  PlanConstraints constraints;
  constraints.explain = true;
  ASSERT_OK_AND_ASSIGN(Plan plan, Choose(constraints));
  std::set<std::pair<int, int64_t>> split_zero;
  for (const auto& a : plan.alternatives()) {
    if (a.split_point() == 0) split_zero.insert({a.encoding(), a.bytes_sent()});
  }
  EXPECT_THAT(split_zero,
              ElementsAre(Pair(tandem::v1::ENCODING_AFFINE_UINT8, 25000)));
  // FP32 input (100 KB): the FP32 plan forwards it, FP16 and INT8 encode it.
  input_.input_wire_bytes = 100000;
  ASSERT_OK_AND_ASSIGN(plan, Choose(constraints));
  split_zero.clear();
  for (const auto& a : plan.alternatives()) {
    if (a.split_point() == 0) split_zero.insert({a.encoding(), a.bytes_sent()});
  }
  EXPECT_THAT(split_zero,
              ElementsAre(Pair(tandem::v1::ENCODING_RAW, 100000),
                          Pair(tandem::v1::ENCODING_FP16, 50000),
                          Pair(tandem::v1::ENCODING_AFFINE_UINT8, 25000)));
}

TEST_F(PlannerTest, ExpectedLatencyMatchesHandComputation) {
  // Cloud-only with 8-bit input and exits off at 100 Mbit/s, 5 ms RTT:
  // transfer 5 + 25000 B * 8 / 100 Mbit/s = 7 ms; cloud 4 ms + final head 0.05
  // ms.
  PlanConstraints constraints;
  constraints.min_accuracy = 0.95;
  constraints.explain = true;
  ASSERT_OK_AND_ASSIGN(Plan plan, Choose(constraints));
  bool found = false;
  for (const auto& a : plan.alternatives()) {
    if (a.split_point() == 0 &&
        a.encoding() == tandem::v1::ENCODING_AFFINE_UINT8 &&
        a.exit_threshold() > 1 && a.forced_exit_block() < 0) {
      found = true;
      EXPECT_NEAR(a.transfer_ms(), 7.0, 1e-9);
      EXPECT_NEAR(a.cloud_ms(), 4.05, 1e-9);
      EXPECT_NEAR(a.latency_ms(), 11.05, 1e-9);
      EXPECT_NEAR(a.tail_ms(), 11.05, 1e-9);
      EXPECT_EQ(a.bytes_sent(), 25000);
    }
  }
  EXPECT_TRUE(found);
  EXPECT_EQ(plan.alternatives(plan.chosen()).latency_ms(),
            plan.predicted_latency_ms());
}

TEST_F(PlannerTest, ExitsAreWeightedByTheirCalibratedProbability) {
  SetNetwork(0.13, 5);  // Edge-only wins.
  PlanConstraints constraints;
  constraints.min_accuracy = 0.90;
  constraints.explain = true;
  ASSERT_OK_AND_ASSIGN(Plan plan, Choose(constraints));
  EXPECT_EQ(plan.split_point(), 4);
  // Threshold 0.6: 60% leave after block 1 (20.5 ms), 40% run on (41 ms).
  EXPECT_NEAR(plan.predicted_latency_ms(), 0.6 * 20.5 + 0.4 * 41.0,
              1e-5);  // Float rates.
  EXPECT_NEAR(plan.predicted_tail_latency_ms(), 41.0, 1e-9);
  EXPECT_EQ(plan.exit_thresholds().at(1), 0.6f);
}

TEST_F(PlannerTest, AccuracyFloorIsRespected) {
  for (double floor : {0.0, 0.91, 0.945, 0.95}) {
    PlanConstraints constraints;
    constraints.min_accuracy = floor;
    ASSERT_OK_AND_ASSIGN(Plan plan, Choose(constraints));
    EXPECT_GE(plan.predicted_accuracy() + 1e-6, floor) << plan.reason();
  }
  PlanConstraints impossible;
  impossible.min_accuracy = 0.99;
  EXPECT_THAT(Choose(impossible),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("min_accuracy")));
}

TEST_F(PlannerTest, EdgentRuleTakesTheMostAccurateExitThatMeetsTheDeadline) {
  SetNetwork(0.13, 5);  // No useful link: everything on the edge.
  PlanConstraints constraints;
  constraints.objective = tandem::v1::OBJECTIVE_MAX_ACCURACY;
  ASSERT_OK_AND_ASSIGN(Plan loose, Choose(constraints));
  EXPECT_NEAR(loose.predicted_accuracy(), 0.95, 1e-6);
  // 25 ms cannot hold four 10 ms blocks, but holds two and the early head.
  constraints.deadline = absl::Milliseconds(25);
  ASSERT_OK_AND_ASSIGN(Plan tight, Choose(constraints));
  EXPECT_EQ(tight.forced_exit_block(), 1);
  EXPECT_NEAR(tight.predicted_accuracy(), 0.80, 1e-6);
  EXPECT_LE(tight.predicted_tail_latency_ms(), 25.0);
  constraints.deadline = absl::Milliseconds(5);
  EXPECT_THAT(Choose(constraints),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("deadline 5.00 ms")));
}

TEST_F(PlannerTest, WithoutAFloorTheEarliestForcedExitIsFastest) {
  SetNetwork(0.13, 5);
  ASSERT_OK_AND_ASSIGN(Plan plan, Choose(PlanConstraints{}));
  EXPECT_EQ(plan.forced_exit_block(), 1);
  EXPECT_EQ(plan.split_point(),
            2);  // Blocks 0-1 on the edge; nothing after runs.
  EXPECT_NEAR(plan.predicted_latency_ms(), 20.5, 1e-9);
}

TEST_F(PlannerTest, ObjectivesPickTheirOwnOptimum) {
  SetNetwork(18.9, 5);
  PlanConstraints constraints;
  constraints.explain = true;
  for (auto objective :
       {tandem::v1::OBJECTIVE_MIN_LATENCY, tandem::v1::OBJECTIVE_MIN_ENERGY,
        tandem::v1::OBJECTIVE_MIN_CLOUD_COMPUTE}) {
    constraints.objective = objective;
    ASSERT_OK_AND_ASSIGN(Plan plan, Choose(constraints));
    const auto& chosen = plan.alternatives(plan.chosen());
    for (const auto& a : plan.alternatives()) {
      if (!a.rejected_because().empty()) continue;
      switch (objective) {
        case tandem::v1::OBJECTIVE_MIN_ENERGY:
          EXPECT_LE(chosen.energy_mj(), a.energy_mj() + 1e-9);
          break;
        case tandem::v1::OBJECTIVE_MIN_CLOUD_COMPUTE:
          EXPECT_LE(chosen.cloud_ms(), a.cloud_ms() + 1e-9);
          break;
        default:
          EXPECT_LE(chosen.latency_ms(), a.latency_ms() + 1e-9);
      }
    }
  }
}

TEST_F(PlannerTest, WithoutACloudOnlyEdgePlansRemain) {
  input_.cloud_available = false;
  PlanConstraints constraints;
  constraints.min_accuracy = 0.90;
  constraints.explain = true;
  ASSERT_OK_AND_ASSIGN(Plan plan, Choose(constraints));
  for (const auto& a : plan.alternatives())
    EXPECT_EQ(a.offload_probability(), 0);
  EXPECT_EQ(plan.split_point(), 4);
}

TEST_F(PlannerTest, UntrainedModelsAreNeverCutShort) {
  config_.set_trained(false);
  SetNetwork(0.13, 5);
  PlanConstraints constraints;
  constraints.explain = true;
  ASSERT_OK_AND_ASSIGN(Plan plan, Choose(constraints));
  for (const auto& a : plan.alternatives())
    EXPECT_EQ(a.forced_exit_block(), -1);
}

TEST_F(PlannerTest, RejectsProfilesThatDisagreeWithTheModel) {
  edge_.mutable_blocks()->RemoveLast();
  EXPECT_THAT(Choose(), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(PlannerTest, BestReachableAccuracyIsTheMostAccurateSetting) {
  // Exits off (0.95) beats every cascade point and the forced exit (0.80).
  EXPECT_NEAR(BestReachableAccuracy(config_), 0.95, 1e-6);
  PlanConstraints constraints;
  constraints.min_accuracy = 0.951;
  EXPECT_THAT(ChoosePlan(input_, constraints),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("best 0.9500")));
  config_.set_trained(false);
  EXPECT_EQ(BestReachableAccuracy(config_), 0);
}

TEST(ParseObjective, KnowsTheFourObjectives) {
  EXPECT_EQ(ParseObjective("energy").value(), tandem::v1::OBJECTIVE_MIN_ENERGY);
  EXPECT_EQ(ParseObjective("accuracy").value(),
            tandem::v1::OBJECTIVE_MAX_ACCURACY);
  EXPECT_THAT(ParseObjective("speed"), StatusIs(absl::StatusCode::kNotFound));
}

}  // namespace
}  // namespace tandem
