// PlanKeeper on a fake clock, with a scripted cloud link and measurements fed
// by hand: which plan a model gets as the link estimate moves, and that
// confirming re-plans neither re-create nor switch the shared plan.
#include "edge/plan_keeper.h"

#include <filesystem>

#include "common/testing/status_matchers.h"
#include "edge/testing/fake_cloud_link.h"
#include "gtest/gtest.h"
#include "models/testing/tiny_model.h"

namespace tandem {
namespace {

namespace fs = std::filesystem;

using testing::FakeCloudLink;

class PlanKeeperTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("tandem_keeper_" + std::to_string(::getpid()));
    fs::create_directories(root_);
    testing::WritePackage(root_, {});
    ASSERT_OK_AND_ASSIGN(repository_,
                         ModelRepository::Load(root_.string(), {}));
    ASSERT_OK_AND_ASSIGN(model_, repository_->Get("tiny"));
    config_.mutable_adaptation()->set_assumed_uplink_mbit(100);
    config_.mutable_adaptation()->set_assumed_rtt_ms(0.001);
    // Probes would come from the prober thread on real time: keep it idle.
    config_.mutable_adaptation()->set_probe_interval_ms(1 << 30);
    config_.mutable_adaptation()->set_replan_interval_ms(1000);
    policy_.set_model_name("tiny");
    policy_.set_adaptive(true);
    ASSERT_OK_AND_ASSIGN(keeper_, PlanKeeper::Create(config_, repository_.get(),
                                                     &link_, &clock_));
  }
  void TearDown() override {
    keeper_.reset();
    fs::remove_all(root_);
  }

  // A completed transfer at `mbit` (1 MB, so RTT does not matter).
  void Transfer(double mbit) {
    constexpr int64_t kBytes = 1 << 20;
    keeper_->OnTransfer(kBytes, absl::Microseconds(kBytes * 8 / mbit),
                        /*completed=*/true);
  }
  int Split() {
    auto plan = keeper_->PlanFor(*model_, policy_, {});
    EXPECT_OK(plan.status());
    return plan.ok() ? (*plan)->split_point() : -100;
  }

  fs::path root_;
  std::unique_ptr<ModelRepository> repository_;
  const ProgressiveModel* model_ = nullptr;
  FakeClock clock_;
  FakeCloudLink link_{3};
  tandem::v1::EdgeConfig config_;
  tandem::v1::EdgeModelPolicy policy_;
  std::unique_ptr<PlanKeeper> keeper_;
};

TEST_F(PlanKeeperTest, FollowsASustainedChangeOfTheLinkAtOnce) {
  // A fast link and a cloud 1 us per block: offload from the start.
  EXPECT_LT(Split(), 3);
  // The link falls by 1000x: two samples make the estimator restart, and the
  // next request already gets the edge-only plan.
  Transfer(0.1);
  Transfer(0.1);
  EXPECT_EQ(Split(), 3);
  // And back.
  Transfer(100);
  Transfer(100);
  EXPECT_LT(Split(), 3);
  EXPECT_EQ(keeper_->switches(), 3);
}

TEST_F(PlanKeeperTest, ConfirmingReplansKeepTheSharedPlan) {
  const int first = Split();
  auto plan = keeper_->PlanFor(*model_, policy_, {});
  ASSERT_OK(plan.status());
  const int replans = keeper_->replans();
  for (int i = 0; i < 20; ++i) {
    Transfer(100 * (1 + 0.01 * (i % 3)));     // Noise inside the band.
    clock_.Advance(absl::Milliseconds(600));  // Past the re-plan interval.
    ASSERT_OK_AND_ASSIGN(auto again, keeper_->PlanFor(*model_, policy_, {}));
    EXPECT_EQ(again.get(), plan->get()) << "request " << i;
  }
  EXPECT_EQ(Split(), first);
  EXPECT_GT(keeper_->replans(), replans);  // It did re-plan...
  EXPECT_EQ(keeper_->switches(), 1);       // ...and kept the first plan.
}

TEST_F(PlanKeeperTest, NoSwitchWithoutNewEvidence) {
  Transfer(0.1);
  Transfer(0.1);
  ASSERT_EQ(Split(), 3);
  const int switches = keeper_->switches();
  for (int i = 0; i < 10; ++i) {
    clock_.Advance(absl::Seconds(2));
    EXPECT_EQ(Split(), 3);
  }
  EXPECT_EQ(keeper_->switches(), switches);
}

}  // namespace
}  // namespace tandem
