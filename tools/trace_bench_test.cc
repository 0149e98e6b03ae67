#include "tools/trace_bench.h"

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

// Two steps; in step 0 edge_only is fastest, in step 1 cloud_only. Adaptive
// switches after two requests of step 1.
TEST(TraceReport, OracleAndReactionFromRecords) {
  std::vector<BenchPolicy> policies = TracePolicies(2, absl::Seconds(1));
  const std::vector<TraceStep> steps = {{0, 50}, {10, 0.13}};
  std::vector<BenchRecord> records;
  auto add = [&](int step, int policy, int index, double ms, int split) {
    BenchRecord r;
    r.step = step;
    r.policy = policy;
    r.index_in_step = index;
    r.ok = true;
    r.latency_ms = ms;
    r.split = split;
    records.push_back(r);
  };
  for (int i = 0; i < 6; ++i) {
    add(0, 0, i, 5, 2);   // edge_only
    add(0, 1, i, 10, 0);  // cloud_only
    add(1, 0, i, 6, 2);
    add(1, 1, i, 3, 0);
    add(0, 3, i, 5.5, 2);  // adaptive
    add(1, 3, i, i < 2 ? 6 : 3.1, i < 2 ? 2 : 0);
  }
  const std::string json = TraceReportJson(policies, steps, records, 3, "");
  EXPECT_THAT(json, HasSubstr("\"oracle_plan\": \"edge_only\""));
  EXPECT_THAT(json, HasSubstr("\"oracle_plan\": \"cloud_only\""));
  EXPECT_THAT(json, HasSubstr("\"reaction_requests\": 2"));
  EXPECT_THAT(json, HasSubstr("\"max_reaction_requests\": 2"));
  // Oracle over the trace: edge_only's step 0 (5 ms) and cloud_only's step 1 (3
  // ms).
  EXPECT_THAT(json, HasSubstr("\"oracle\": {\"mean_ms\": 4.0000"));
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
