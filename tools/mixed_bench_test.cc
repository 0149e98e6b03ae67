#include "tools/mixed_bench.h"

#include <cmath>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tandem/v1/daemon_config.pb.h"

namespace tandem {
namespace {

using ::google::protobuf::Value;
using ::tandem::testing::StatusIs;

// The default mix with costs: fmnist jobs 2 ms, camera jobs 20 ms.
std::vector<MixedTask> CostedTasks() {
  std::vector<MixedTask> tasks = DefaultMixedTasks();
  for (MixedTask& t : tasks) t.cost_ms = t.model == "camera_branchy" ? 20 : 2;
  return tasks;
}

// The report parsed back: a test of its syntax, and a way to read it.
Value ParseJson(const std::string& json) {
  Value value;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &value).ok())
      << json;
  return value;
}

// `path` is dot-separated: object keys, or list indices.
const Value& At(const Value& root, const std::string& path) {
  static const Value* const kMissing = new Value();
  const Value* v = &root;
  const std::vector<std::string> keys = absl::StrSplit(path, '.');
  for (const std::string& key : keys) {
    int index = 0;
    if (v->has_list_value() && absl::SimpleAtoi(key, &index) &&
        index < v->list_value().values_size()) {
      v = &v->list_value().values(index);
    } else if (v->has_struct_value() &&
               v->struct_value().fields().count(key) > 0) {
      v = &v->struct_value().fields().at(key);
    } else {
      ADD_FAILURE() << "no " << path << " (at " << key << ")";
      return *kMissing;
    }
  }
  return *v;
}

TEST(MixedSchedule, TimingsFollowCostsSharesAndLoad) {
  ASSERT_OK_AND_ASSIGN(std::vector<TaskTiming> timings,
                       TimingsAtLoad(CostedTasks(), 0.5));
  ASSERT_EQ(timings.size(), 4u);
  EXPECT_DOUBLE_EQ(timings[0].period_ms, 2 / (0.3 * 0.5));  // obstacle
  EXPECT_DOUBLE_EQ(timings[0].deadline_ms, timings[0].period_ms);
  EXPECT_DOUBLE_EQ(timings[1].period_ms, 20 / (0.4 * 0.5));  // camera
  EXPECT_DOUBLE_EQ(timings[2].deadline_ms, 4 * timings[2].period_ms);
  // burst: mean gap from its share; deadline 3 obstacle periods.
  EXPECT_DOUBLE_EQ(timings[3].period_ms, 2 / (0.15 * 0.5));
  EXPECT_DOUBLE_EQ(timings[3].deadline_ms, 3 * timings[0].period_ms);

  EXPECT_THAT(TimingsAtLoad(DefaultMixedTasks(), 1),  // Costs unmeasured.
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(TimingsAtLoad(CostedTasks(), 0),
              StatusIs(absl::StatusCode::kInvalidArgument));
  std::vector<MixedTask> tasks = CostedTasks();
  tasks[3].deadline_of = "nobody";
  EXPECT_THAT(TimingsAtLoad(tasks, 1),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(MixedSchedule, DeterministicForASeedAndStream) {
  const std::vector<MixedTask> tasks = CostedTasks();
  ASSERT_OK_AND_ASSIGN(std::vector<TaskTiming> timings,
                       TimingsAtLoad(tasks, 1));
  auto times = [&](uint64_t seed, int stream) {
    std::vector<std::tuple<double, int, uint32_t>> out;
    for (const Release& r :
         MakeReleaseSchedule(tasks, timings, 5000, seed, stream)) {
      out.emplace_back(r.t_ms, r.task, r.image);
    }
    return out;
  };
  const auto first = times(7, 0);
  ASSERT_FALSE(first.empty());
  EXPECT_EQ(first, times(7, 0));
  EXPECT_NE(first, times(8, 0));
  EXPECT_NE(first, times(7, 1));
  for (size_t i = 1; i < first.size(); ++i)
    EXPECT_LE(std::get<0>(first[i - 1]), std::get<0>(first[i]));
}

TEST(MixedSchedule, MeanRatesMatchThePeriods) {
  const std::vector<MixedTask> tasks = CostedTasks();
  ASSERT_OK_AND_ASSIGN(std::vector<TaskTiming> timings,
                       TimingsAtLoad(tasks, 1.4));
  const double duration_ms = 1e6;
  std::vector<int> count(tasks.size(), 0);
  for (const Release& r :
       MakeReleaseSchedule(tasks, timings, duration_ms, 3, 0)) {
    ASSERT_GE(r.t_ms, 0);
    ASSERT_LT(r.t_ms, duration_ms);
    ++count[r.task];
  }
  for (size_t i = 0; i < tasks.size(); ++i) {
    const double expected = duration_ms / timings[i].period_ms;
    if (tasks[i].sporadic) {
      EXPECT_NEAR(count[i], expected, 0.03 * expected) << tasks[i].name;
    } else {
      EXPECT_NEAR(count[i], expected, 1) << tasks[i].name;
    }
  }
}

TEST(MixedSchedule, BurstsHoldOneToFourRequestsOneMillisecondApart) {
  std::vector<MixedTask> tasks = CostedTasks();
  // Bursts far apart (mean ~16.7 s), so none overlap another.
  for (MixedTask& t : tasks) t.cost_ms = 1000;
  ASSERT_OK_AND_ASSIGN(std::vector<TaskTiming> timings,
                       TimingsAtLoad(tasks, 1));
  std::vector<double> burst_times;
  for (const Release& r : MakeReleaseSchedule(tasks, timings, 1e7, 11, 0)) {
    if (tasks[r.task].sporadic) burst_times.push_back(r.t_ms);
  }
  ASSERT_FALSE(burst_times.empty());
  std::vector<int> sizes = {1};
  for (size_t i = 1; i < burst_times.size(); ++i) {
    const double gap = burst_times[i] - burst_times[i - 1];
    if (std::abs(gap - kBurstSpacingMs) < 1e-6) {
      ++sizes.back();
    } else {
      EXPECT_GT(gap, kMaxBurst * kBurstSpacingMs);
      sizes.push_back(1);
    }
  }
  std::map<int, int> histogram;
  double total = 0;
  for (int size : sizes) {
    ++histogram[size];
    total += size;
  }
  EXPECT_EQ(histogram.begin()->first, 1);
  EXPECT_EQ(histogram.rbegin()->first, kMaxBurst);
  EXPECT_EQ(histogram.size(), static_cast<size_t>(kMaxBurst));
  EXPECT_NEAR(total / sizes.size(), kMeanBurstSize, 0.2);
}

TEST(MixedCost, MediansPerExitWeightedByHowOftenEachWasTaken) {
  // 3 of 4 jobs exit at block 0 (1 ms, one stalled at 50), 1 of 4 runs on
  // to block 3 (4 ms): 0.75 × 1 + 0.25 × 4.
  EXPECT_DOUBLE_EQ(CostFromExitSamples({{0, {1, 50, 1}}, {3, {4}}}), 1.75);
  EXPECT_DOUBLE_EQ(CostFromExitSamples({{4, {10, 12, 11}}}), 11);
  EXPECT_EQ(CostFromExitSamples({}), 0);
  EXPECT_EQ(CostFromExitSamples({{0, {}}}), 0);
}

TEST(MixedFlags, LoadsAndPolicies) {
  ASSERT_OK_AND_ASSIGN(std::vector<double> loads,
                       ParseLoads({"0.6", " 0.95", "1.4"}));
  EXPECT_THAT(loads, ::testing::ElementsAre(0.6, 0.95, 1.4));
  EXPECT_THAT(ParseLoads({"0.6", "-1"}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseLoads({"heavy"}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseLoads({}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_OK(CheckPolicies(MixedPolicyNames()));
  EXPECT_EQ(MixedPolicyNames().size(), 7u);
  EXPECT_EQ(MixedPolicyNames().back(), "tandem_rt");
  EXPECT_THAT(CheckPolicies({"fifo", "rate_monotonic"}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(CheckPolicies({"fifo", "tandem_rt", "fifo"}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

// The config is what tandem-edge reads: parse it as the daemon does.
TEST(MixedEdgeConfig, ParsesAsAnEdgeConfig) {
  const std::vector<MixedTask> tasks = CostedTasks();
  ASSERT_OK_AND_ASSIGN(std::vector<TaskTiming> timings,
                       TimingsAtLoad(tasks, 1));
  tandem::v1::EdgeConfig config;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(
      MixedEdgeConfig(tasks, timings, "least_slack", true), &config));
  EXPECT_EQ(config.scheduling_policy(), "least_slack");
  EXPECT_EQ(config.admission(), "log");
  EXPECT_EQ(config.device(), "cpu");
  ASSERT_EQ(config.models_size(), 2);
  EXPECT_EQ(config.models(0).model_name(), "fmnist_branchy");
  EXPECT_EQ(config.models(1).model_name(), "camera_branchy");
  EXPECT_TRUE(config.models(1).adaptive());
  ASSERT_EQ(config.tasks_size(), 4);
  EXPECT_EQ(config.tasks(0).name(), "obstacle");
  EXPECT_EQ(config.tasks(0).criticality(), 2);
  EXPECT_NEAR(config.tasks(0).period_ms(), timings[0].period_ms, 1e-3);
  EXPECT_NEAR(config.tasks(2).deadline_ms(), timings[2].deadline_ms, 1e-3);
  EXPECT_TRUE(config.tasks(3).sporadic());
  EXPECT_EQ(config.tasks(1).input(), "noise");
  EXPECT_EQ(config.tasks(3).input(), "fashion_mnist");

  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(
      MixedEdgeConfig(tasks, timings, "fifo", false), &config));
  EXPECT_EQ(config.models_size(), 0);  // Edge-only: nothing to partition.
  EXPECT_EQ(config.cloud(), "");
}

class MixedReportTest : public ::testing::Test {
 protected:
  MixedReportTest() : tasks_(CostedTasks()) {
    options_.loads = {0.95, 1.4};
    options_.clouds = {true, false};
    options_.policies = {"fifo", "edf_early_drop", "tandem_rt"};
    options_.duration_s = 2;
  }
  // Task indices of DefaultMixedTasks(), policy indices of options_.
  static constexpr int kObstacle = 0, kCamera = 1, kAudit = 2;
  static constexpr int kFifo = 0, kEdfEarlyDrop = 1, kTandemRt = 2;

  MixedRecord& Add(int policy, int task, double latency_ms, bool ok = true,
                   bool correct = true, int load = 0, bool cloud = true) {
    MixedRecord r;
    r.load = load;
    r.cloud = cloud;
    r.policy = policy;
    r.task = task;
    r.release_ms = static_cast<double>(records_.size());
    r.deadline_ms = 10;
    r.ok = ok;
    r.status_code = ok ? 0 : 8;  // RESOURCE_EXHAUSTED
    r.latency_ms = latency_ms;
    r.has_label = tasks_[task].model == "fmnist_branchy";
    r.correct = ok && correct;
    records_.push_back(r);
    return records_.back();
  }
  // `n` in-time correct answers of `policy` for `task`.
  void AddGood(int policy, int task, int n, int load = 0, bool cloud = true) {
    for (int i = 0; i < n; ++i) Add(policy, task, 1, true, true, load, cloud);
  }
  Value Report() {
    return ParseJson(MixedReportJson(tasks_, records_, options_));
  }
  // Figures of `policy` in cell `cell` (0: load 0.95 with a cloud, 1: 0.95
  // without, 2: 1.4 with, 3: 1.4 without).
  static std::string Policy(int cell, const std::string& policy) {
    return "loads." + std::to_string(cell) + ".policies." + policy;
  }

  std::vector<MixedTask> tasks_;
  std::vector<MixedRecord> records_;
  MixedReportOptions options_;
};

TEST_F(MixedReportTest, FailedAndLateRequestsAreMisses) {
  AddGood(kFifo, kObstacle, 2);
  Add(kFifo, kObstacle, 0, /*ok=*/false);  // RESOURCE_EXHAUSTED at once.
  Add(kFifo, kObstacle, 12);               // Answered, after its deadline.
  const Value report = Report();
  const std::string fifo = Policy(0, "fifo");
  EXPECT_EQ(At(report, fifo + ".released").number_value(), 4);
  EXPECT_DOUBLE_EQ(At(report, fifo + ".miss_rate").number_value(), 0.5);
  EXPECT_DOUBLE_EQ(
      At(report, fifo + ".tasks.obstacle.miss_rate").number_value(), 0.5);
  // Two in time in 2 s.
  EXPECT_DOUBLE_EQ(At(report, fifo + ".throughput_rps").number_value(), 1);
  // A cell with no records reports nulls, not zeros.
  EXPECT_TRUE(At(report, Policy(1, "fifo") + ".miss_rate").has_null_value());
  EXPECT_EQ(At(report, "loads.1.cloud").bool_value(), false);
  EXPECT_EQ(At(report, "loads.2.load").number_value(), 1.4);
}

TEST_F(MixedReportTest, P99CountsMissesAtTheDeadline) {
  AddGood(kFifo, kObstacle, 98);
  Add(kFifo, kObstacle, 0, /*ok=*/false);
  Add(kFifo, kObstacle, 0, /*ok=*/false);
  // Dropped or counted as 0, the failures would leave p99 at 1 ms.
  EXPECT_DOUBLE_EQ(
      At(Report(), Policy(0, "fifo") + ".tasks.obstacle.p99_ms").number_value(),
      10);
}

TEST_F(MixedReportTest, AccuracyCountsInTimeAnswersAndAllReleases) {
  AddGood(kFifo, kObstacle, 2);
  Add(kFifo, kObstacle, 1, true, /*correct=*/false);
  Add(kFifo, kObstacle, 0, /*ok=*/false);
  Add(kFifo, kObstacle, 11, true, /*correct=*/true);  // Late: not counted.
  Add(kFifo, kCamera, 1);                             // Unlabelled: in neither.
  const Value report = Report();
  const std::string fifo = Policy(0, "fifo");
  EXPECT_NEAR(At(report, fifo + ".accuracy").number_value(), 2.0 / 3, 1e-4);
  EXPECT_DOUBLE_EQ(At(report, fifo + ".accuracy_all").number_value(), 2.0 / 5);
  EXPECT_TRUE(At(report, fifo + ".tasks.camera.accuracy").has_null_value());
  EXPECT_EQ(At(report, fifo + ".tasks.camera.criticality").number_value(), 1);
}

TEST_F(MixedReportTest, ScalingBatchingAndCuts) {
  const int levels[] = {0, 0, 1, 1, 0};
  for (int level : levels) {
    Add(kTandemRt, kObstacle, 1).scaling_level = level;
    Add(kTandemRt, kAudit, 1).scaling_level = 3;  // Never changes.
  }
  records_[1].batch_size = 4;
  records_[3].batch_size = 2;
  records_[3].cut_short = true;
  Add(kTandemRt, kObstacle, 0, /*ok=*/false).scaling_level = 9;  // Failed.
  const Value report = Report();
  const std::string rt = Policy(0, "tandem_rt");
  EXPECT_EQ(At(report, rt + ".scaling_changes").number_value(), 2);
  EXPECT_EQ(At(report, rt + ".max_scaling_level").number_value(), 3);
  EXPECT_DOUBLE_EQ(At(report, rt + ".batched_share").number_value(), 0.2);
  EXPECT_EQ(At(report, rt + ".cut_short").number_value(), 1);
}

// tandem_rt misses 4 in 100, the best other (edf_early_drop) 10, fifo 20.
TEST_F(MixedReportTest, TargetsAgainstTheBestOtherPolicy) {
  for (int cell_load : {0, 1}) {
    for (auto [policy, misses] :
         {std::pair{kFifo, 20}, {kEdfEarlyDrop, 10}, {kTandemRt, 4}}) {
      AddGood(policy, kAudit, 100 - misses, cell_load);
      for (int i = 0; i < misses; ++i)
        Add(policy, kAudit, 0, false, false, cell_load);
    }
    // One obstacle miss in 1000 for tandem_rt; every answer in time right.
    AddGood(kTandemRt, kObstacle, 999, cell_load);
    Add(kTandemRt, kObstacle, 0, false, false, cell_load);
  }
  const Value report = Report();
  EXPECT_EQ(At(report, "loads.0.targets.best_other").string_value(),
            "edf_early_drop");
  EXPECT_NEAR(At(report, "loads.0.targets.miss_ratio_vs_best_other.value")
                  .number_value(),
              (5.0 / 1100) / 0.1, 1e-4);
  EXPECT_TRUE(
      At(report, "loads.0.targets.miss_ratio_vs_best_other.met").bool_value());
  // At 0.95 the most critical task must never miss; at 1.4 below 0.5%.
  EXPECT_EQ(
      At(report, "loads.0.targets.critical_miss_rate.tasks.0").string_value(),
      "obstacle");
  EXPECT_FALSE(
      At(report, "loads.0.targets.critical_miss_rate.met").bool_value());
  EXPECT_TRUE(
      At(report, "loads.2.targets.critical_miss_rate.met").bool_value());
  EXPECT_FALSE(At(report, "loads.0.targets.all_met").bool_value());
  // Accuracy: edf_early_drop 90/90 in time, tandem_rt 1095/1095: no gap.
  EXPECT_NEAR(
      At(report, "loads.0.targets.accuracy_gap_points.value").number_value(), 0,
      1e-9);
  // Throughput is a target at 1.4 with a cloud only.
  const Value& targets = At(report, "loads.0.targets");
  EXPECT_EQ(
      targets.struct_value().fields().count("throughput_vs_best_baseline"), 0u);
  EXPECT_NEAR(At(report, "loads.2.targets.throughput_vs_best_baseline.value")
                  .number_value(),
              1095.0 / 90, 1e-3);
  EXPECT_TRUE(At(report, "loads.3.targets").has_null_value());  // No records.
}

TEST_F(MixedReportTest, AccuracyGapInPoints) {
  AddGood(kEdfEarlyDrop, kAudit, 100);
  AddGood(kTandemRt, kAudit, 97);
  for (int i = 0; i < 3; ++i) Add(kTandemRt, kAudit, 1, true, false);
  const Value report = Report();
  EXPECT_NEAR(
      At(report, "loads.0.targets.accuracy_gap_points.value").number_value(), 3,
      1e-3);
  EXPECT_FALSE(
      At(report, "loads.0.targets.accuracy_gap_points.met").bool_value());
}

// Against a baseline that never missed there is no ratio: tandem_rt meets
// the target only by never missing either.
TEST_F(MixedReportTest, ABestBaselineWithoutMissesNeedsNoMisses) {
  AddGood(kFifo, kAudit, 50);
  AddGood(kEdfEarlyDrop, kAudit, 50);
  AddGood(kTandemRt, kAudit, 50);
  Value report = Report();
  EXPECT_TRUE(At(report, "loads.0.targets.miss_ratio_vs_best_other.value")
                  .has_null_value());
  EXPECT_TRUE(
      At(report, "loads.0.targets.miss_ratio_vs_best_other.met").bool_value());
  EXPECT_TRUE(At(report, "loads.0.targets.all_met").bool_value());
  Add(kTandemRt, kAudit, 0, /*ok=*/false);
  report = Report();
  EXPECT_FALSE(
      At(report, "loads.0.targets.miss_ratio_vs_best_other.met").bool_value());
}

TEST_F(MixedReportTest, TaskSetAtLoadOneAndCsv) {
  Add(kFifo, kObstacle, 0, /*ok=*/false).error = "too \"late\", cut";
  MixedRecord& answered = Add(kFifo, kAudit, 2);
  answered.answered_by = "edge";
  answered.edge_queue_ms = 0.5;
  answered.edge_compute_ms = 1.25;
  const Value report = Report();
  EXPECT_EQ(At(report, "task_set.1.name").string_value(), "camera");
  EXPECT_NEAR(At(report, "task_set.1.period_ms").number_value(), 20 / 0.4,
              1e-3);
  EXPECT_NEAR(At(report, "task_set.3.deadline_ms").number_value(), 3 * 2 / 0.3,
              1e-3);
  EXPECT_EQ(At(report, "task_set.0.share").number_value(), 0.3);
  EXPECT_NEAR(At(report, "loads.2.schedule.obstacle.period_ms").number_value(),
              2 / (0.3 * 1.4), 1e-3);
  const std::string csv = MixedRequestsCsv(tasks_, records_, options_);
  EXPECT_THAT(csv, ::testing::HasSubstr(
                       "\n0.95,1,fifo,obstacle,0.000,10.000,0,8,0.000,1,1,0,0,"
                       "1,0,,0.000,0.000,\"too \"\"late\"\", cut\"\n"));
  EXPECT_THAT(csv, ::testing::HasSubstr(
                       "\n0.95,1,fifo,audit,1.000,10.000,1,0,2.000,0,1,1,0,1,"
                       "0,edge,0.500,1.250,\"\"\n"));
}

}  // namespace
}  // namespace tandem
