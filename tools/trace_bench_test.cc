#include "tools/trace_bench.h"

#include <algorithm>

#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tools/plan_command.h"

namespace tandem {
namespace {

using ::tandem::testing::StatusIs;
using ::testing::HasSubstr;

TEST(ParseTrace, ReadsStepsAndRejectsNonsense) {
  ASSERT_OK_AND_ASSIGN(
      auto steps,
      ParseTrace("# rate trace\n0,50\n10, 0.13 # drop\n\n20,18.9\n"));
  ASSERT_EQ(steps.size(), 3u);
  EXPECT_EQ(steps[1].start_s, 10);
  EXPECT_EQ(steps[1].rate_mbit, 0.13);
  EXPECT_THAT(ParseTrace("0,50\n0,10\n"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseTrace("0,-1\n"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseTrace("# nothing\n"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(DefaultTrace(10).size(), 6u);
}

TEST(TracePolicies, NamesTheBaselines) {
  const auto policies = TracePolicies(4, absl::Seconds(1));
  std::vector<std::string> reported;
  for (const auto& p : policies) {
    if (p.reported) reported.push_back(p.name);
  }
  EXPECT_THAT(reported, ::testing::ElementsAre("edge_only", "cloud_only",
                                               "cloud_only_uint8", "adaptive"));
  EXPECT_EQ(policies[0].options.split_point, 4);
  EXPECT_FALSE(policies[3].options.split_point.has_value());
  EXPECT_EQ(policies.size(), 4u + 2 * 3);
}

class TraceReportTest : public ::testing::Test {
 protected:
  TraceReportTest() : policies_(TracePolicies(2, absl::Seconds(1))) {
    options_.skip = 3;
    options_.min_settled = 3;
    options_.deadline_ms = 100;
  }
  void Add(int step, int policy, int index, double ms, int split,
           bool ok = true) {
    BenchRecord r;
    r.step = step;
    r.policy = policy;
    r.index_in_step = index;
    r.ok = ok;
    r.latency_ms = ok ? ms : 0;
    r.split = ok ? split : -1;
    records_.push_back(r);
  }
  std::string Report() {
    return TraceReportJson(policies_, steps_, records_, options_, "");
  }
  // Policy indices of TracePolicies(2, ...).
  static constexpr int kEdge = 0, kCloud = 1, kCloudUint8 = 2, kAdaptive = 3;
  std::vector<BenchPolicy> policies_;
  std::vector<TraceStep> steps_ = {{0, 50}, {10, 0.13}};
  std::vector<BenchRecord> records_;
  TraceReportOptions options_;
};

// In step 0 edge_only is fastest, in step 1 cloud_only. Adaptive switches
// after two requests of step 1.
TEST_F(TraceReportTest, OracleAndReactionFromRecords) {
  for (int i = 0; i < 6; ++i) {
    Add(0, kEdge, i, 5, 2);
    Add(0, kCloud, i, 10, 0);
    Add(0, kCloudUint8, i, 9, 0);
    Add(1, kEdge, i, 6, 2);
    Add(1, kCloud, i, 3, 0);
    Add(1, kCloudUint8, i, 3.2, 0);
    Add(0, kAdaptive, i, 5.2, 2);
    Add(1, kAdaptive, i, i < 2 ? 6 : 3.1, i < 2 ? 2 : 0);
  }
  const std::string json = Report();
  EXPECT_THAT(json, HasSubstr("\"oracle_plan\": \"edge_only\""));
  EXPECT_THAT(json, HasSubstr("\"oracle_plan\": \"cloud_only\""));
  EXPECT_THAT(json, HasSubstr("\"reaction_requests\": 2"));
  EXPECT_THAT(json, HasSubstr("\"max_reaction_requests\": 2"));
  // Oracle over the trace: edge_only's step 0 (5 ms), cloud_only's step 1
  // (3 ms).
  EXPECT_THAT(json, HasSubstr("\"oracle\": {\"mean_ms\": 4.0000"));
  EXPECT_THAT(json, HasSubstr("\"adaptive_vs_oracle\": 1.0400"));  // Step 0.
  EXPECT_THAT(json, HasSubstr("\"steps_without_oracle\": 0"));
}

// Adaptive settles on split 1 with exits of its own: no fixed policy ran
// there, but its own settled requests there are as fast as the oracle, so
// the two requests before the switch are its reaction, not the whole step.
TEST_F(TraceReportTest, AdaptivesOwnRequestsCanProveASplitGood) {
  steps_.resize(1);
  // Adaptive's two first requests on the edge, then split 1 at `settled_ms`.
  auto step = [&](double settled_ms) {
    records_.clear();
    for (int i = 0; i < 6; ++i) {
      Add(0, kEdge, i, 6, 2);
      Add(0, kCloud, i, 3, 0);
      Add(0, kCloudUint8, i, 3.2, 0);
      Add(0, kAdaptive, i, i < 2 ? 6 : settled_ms, i < 2 ? 2 : 1);
    }
    return Report();
  };
  EXPECT_THAT(step(3.1), HasSubstr("\"reaction_requests\": 2"));
  // The same split answering slowly proves nothing: every request counts.
  EXPECT_THAT(step(3.5), HasSubstr("\"reaction_requests\": 6"));
}

// Adaptive moves to split 1 halfway through a step, as the machine slows
// down: every policy takes twice as long from round 3 on. Its split-1
// requests are judged against the oracle's requests of the same rounds,
// not against the oracle's mean over the step.
TEST_F(TraceReportTest, AdaptivesOwnSplitIsJudgedOverTheSameRounds) {
  steps_.resize(1);
  auto step = [&](double split1_ms) {
    records_.clear();
    for (int i = 0; i < 6; ++i) {
      const double slow = i < 3 ? 1 : 2;
      Add(0, kEdge, i, 6 * slow, 2);
      Add(0, kCloud, i, 3 * slow, 0);
      Add(0, kCloudUint8, i, 3.2 * slow, 0);
      Add(0, kAdaptive, i, i < 3 ? 3 : split1_ms, i < 3 ? 0 : 1);
    }
    return Report();
  };
  options_.skip = 0;
  // Split 1 at 6.2 ms against the oracle's (cloud_only) 6 ms in the same
  // rounds: good, though its mean over the step is 4.5 ms.
  EXPECT_THAT(step(6.2), HasSubstr("\"reaction_requests\": 0"));
  // At 7 ms it is 1.17x the oracle in those rounds: not settled.
  EXPECT_THAT(step(7), HasSubstr("\"reaction_requests\": 6"));
}

// A failed request counts at the deadline, in the step and over the trace,
// and as a miss; a fixed policy that only fails cannot be the oracle.
TEST_F(TraceReportTest, FailuresCountAtTheDeadline) {
  steps_.resize(1);
  for (int i = 0; i < 6; ++i) {
    Add(0, kEdge, i, 50, 2);
    Add(0, kCloud, i, 0, 0, /*ok=*/false);
    Add(0, kCloudUint8, i, 10, 0, /*ok=*/i % 2 == 0);  // 3 of 6 fail.
    Add(0, kAdaptive, i, 50, 2);
  }
  const std::string json = Report();
  // cloud_only_uint8: (10 + 100 + 10 + 100 + 10 + 100) / 6 = 55 over the
  // trace; its settled requests 3..5: (100 + 10 + 100) / 3 = 70.
  EXPECT_THAT(json, HasSubstr("\"cloud_only_uint8\": {\"mean_ms\": 55.0000"));
  EXPECT_THAT(json, HasSubstr("\"cloud_only_uint8\": {\"mean_ms\": 70.0000"));
  EXPECT_THAT(json,
              HasSubstr("\"failed\": 3, \"projected\": 0, \"missed\": 3"));
  // cloud_only failed everything: 100 ms, never the oracle.
  EXPECT_THAT(json, HasSubstr("\"cloud_only\": {\"mean_ms\": 100.0000"));
  EXPECT_THAT(json, HasSubstr("\"oracle_plan\": \"edge_only\""));
}

// A step that ends on a split no good fixed policy uses has not reacted,
// however settled the plan looks; too few samples fail the step's target.
TEST_F(TraceReportTest, AWrongSettledPlanIsNoReactionAndFewSamplesFail) {
  for (int i = 0; i < 6; ++i) {
    Add(0, kEdge, i, 5, 2);
    Add(0, kCloud, i, 10, 0);
    Add(0, kCloudUint8, i, 10, 0);
    Add(0, kAdaptive, i, 5, 2);
    Add(1, kEdge, i, 50, 2);
    Add(1, kCloud, i, 3, 0);
    Add(1, kCloudUint8, i, 3, 0);
    Add(1, kAdaptive, i, 50, 2);  // Stays on the edge: wrong for step 1.
  }
  std::string json = Report();
  EXPECT_THAT(json, HasSubstr("\"reaction_requests\": 6"));
  EXPECT_THAT(json, HasSubstr("\"all_met\": false"));
  EXPECT_THAT(json, HasSubstr("\"steps_meeting_targets\": 1"));
  options_.min_settled = 4;  // Only 3 settled per policy and step.
  json = Report();
  EXPECT_THAT(json, HasSubstr("\"steps_short_of_samples\": 2"));
  EXPECT_THAT(json, HasSubstr("\"steps_without_oracle\": 2"));
  EXPECT_THAT(json, HasSubstr("\"adaptive_vs_oracle\": null"));
  EXPECT_THAT(json, HasSubstr("\"steps_meeting_targets\": 0"));
}

// A fixed plan whose settled mean is more than `factor` (here 2) times the
// best fixed plan's is out of contention; adaptive never is, nor a plan with
// too few settled requests to rank, and a failure counts at the deadline. A
// reported plan is out only with its report's settled requests.
TEST_F(TraceReportTest, PlansFarBehindTheBestAreOutOfContention) {
  const int kSplit1Int8 = 4;  // Not reported: an oracle candidate only.
  ASSERT_FALSE(policies_[kSplit1Int8].reported);
  for (int i = 0; i < 6; ++i) {
    Add(0, kEdge, i, 5, 2);
    Add(0, kCloud, i, 10.5, 0);
    Add(0, kCloudUint8, i, 9, 0);
    Add(0, kAdaptive, i, 50, 2);
    Add(1, kEdge, i, 5, 2);
    Add(1, kCloud, i, 9, 0);
    // Fails every other request: (100 + 9 + 100) / 3 = 69.7 ms settled.
    Add(1, kCloudUint8, i, 9, 0, /*ok=*/i % 2 == 0);
  }
  Add(1, kAdaptive, 0, 50, 2);
  EXPECT_THAT(OutOfContention(policies_, records_, 0, options_, 2, 3),
              ::testing::ElementsAre(false, true, false, false, false, false));
  EXPECT_THAT(OutOfContention(policies_, records_, 1, options_, 2, 3),
              ::testing::ElementsAre(false, false, true, false, false, false));
  // At a wider factor nothing in step 0 is.
  EXPECT_THAT(OutOfContention(policies_, records_, 0, options_, 2.5, 3),
              ::testing::Each(false));
  // Ranked on two settled requests, an oracle candidate far behind is out;
  // cloud_only, reported, is not before it has the report's four.
  options_.min_settled = 4;
  Add(0, kSplit1Int8, 3, 30, 1);
  Add(0, kSplit1Int8, 4, 30, 1);
  EXPECT_THAT(OutOfContention(policies_, records_, 0, options_, 2, 2),
              ::testing::ElementsAre(false, false, false, false, true, false));
  // Edge-only with too few settled requests cannot rank the others (nor
  // split1_int8, with two, itself).
  options_.min_settled = 3;
  records_.erase(std::remove_if(records_.begin(), records_.end(),
                                [](const BenchRecord& r) {
                                  return r.policy == kEdge &&
                                         r.index_in_step >= 4;
                                }),
                 records_.end());
  EXPECT_THAT(OutOfContention(policies_, records_, 0, options_, 2, 3),
              ::testing::Each(false));
}

TEST(PlanCommand, ParsesRatesAndTimes) {
  EXPECT_DOUBLE_EQ(ParseRate("5.85mbit").value(), 5.85);
  EXPECT_DOUBLE_EQ(ParseRate("500kbit").value(), 0.5);
  EXPECT_DOUBLE_EQ(ParseRate("18.9").value(), 18.9);
  EXPECT_DOUBLE_EQ(ParseMillis("20ms").value(), 20);
  EXPECT_DOUBLE_EQ(ParseMillis("0.5s").value(), 500);
  EXPECT_THAT(ParseRate("fast"), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(PlanCommand, TableMarksTheChosenAlternative) {
  tandem::v1::Plan plan;
  plan.set_model_name("m");
  plan.set_reason("lowest expected latency: split 1");
  for (int k = 0; k < 3; ++k) {
    auto* a = plan.add_alternatives();
    a->set_split_point(k);
    a->set_latency_ms(10 - k);
    a->set_exit_threshold(2);
    a->set_forced_exit_block(-1);
    if (k == 2) a->set_rejected_because("tail 9.00 ms > deadline 5.00 ms");
  }
  plan.set_chosen(1);
  const std::string table = FormatPlanTable(plan);
  EXPECT_THAT(table, HasSubstr("CHOSEN"));
  EXPECT_THAT(table, HasSubstr("tail 9.00 ms > deadline 5.00 ms"));
  EXPECT_THAT(table, HasSubstr("chosen: lowest expected latency"));
  EXPECT_THAT(table, HasSubstr("energy: modelled"));
  // Feasible alternatives first, best first.
  EXPECT_LT(table.find("CHOSEN"), table.find("tail 9.00"));
}

}  // namespace
}  // namespace tandem
