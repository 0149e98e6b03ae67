#include "models/progressive_model.h"

#include <time.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "models/model_repository.h"
#include "models/testing/tiny_model.h"

namespace tandem {
namespace {

namespace fs = std::filesystem;
using ::tandem::testing::IsOk;
using ::tandem::testing::StatusIs;
using ::tandem::testing::TinySpec;
using ::tandem::testing::WritePackage;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class ProgressiveModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("tandem_pm_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }
  fs::path root_;
};

TEST_F(ProgressiveModelTest, LoadsTinyPackageAndRunsBlockRanges) {
  ASSERT_OK_AND_ASSIGN(auto model,
                       ProgressiveModel::Load(WritePackage(root_, {}), {}));
  EXPECT_EQ(model->name(), "tiny");
  EXPECT_EQ(model->version(), "1");
  EXPECT_EQ(model->num_blocks(), 3);
  EXPECT_THAT(model->exit_blocks(), ElementsAre(0, 2));
  EXPECT_THAT(model->BlockInputShape(0), ElementsAre(4));
  EXPECT_THAT(model->BlockInputShape(1), ElementsAre(6));
  EXPECT_THAT(model->BlockInputShape(3), ElementsAre(5));
  EXPECT_EQ(model->num_classes(), 3);
  EXPECT_FLOAT_EQ(model->CalibratedThreshold(0), 0.8f);

  const torch::Tensor x = torch::randn({5, 4});
  ASSERT_OK_AND_ASSIGN(torch::Tensor whole, model->RunBlocks(x, 0, 3));
  ASSERT_OK_AND_ASSIGN(torch::Tensor first, model->RunBlocks(x, 0, 1));
  ASSERT_OK_AND_ASSIGN(torch::Tensor rest, model->RunBlocks(first, 1, 3));
  EXPECT_TRUE(torch::allclose(whole, rest));
  ASSERT_OK_AND_ASSIGN(torch::Tensor none, model->RunBlocks(x, 2, 2));
  EXPECT_TRUE(torch::equal(none, x));

  ASSERT_OK_AND_ASSIGN(ExitEvaluation exit, model->EvaluateExit(0, first));
  ASSERT_EQ(exit.predicted.size(), 5u);
  for (int i = 0; i < 5; ++i) {
    const torch::Tensor p = exit.probabilities[i];
    EXPECT_NEAR(p.sum().item<float>(), 1.0f, 1e-5);
    EXPECT_FLOAT_EQ(exit.confidence[i], p.max().item<float>());
    EXPECT_EQ(exit.predicted[i], p.argmax().item<int64_t>());
    EXPECT_GE(exit.entropy[i], -1e-6);
    EXPECT_LE(exit.entropy[i], std::log(3.0) + 1e-5);
  }
  EXPECT_THAT(model->EvaluateExit(1, first),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(model->RunBlocks(x, 2, 1),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(model->RunBlocks(x, 0, 4),
              StatusIs(absl::StatusCode::kInvalidArgument));
  // A wrong shape inside LibTorch comes back as a status, not an exception.
  EXPECT_THAT(model->RunBlocks(torch::randn({2, 7}), 0, 1),
              StatusIs(absl::StatusCode::kInternal));
}

TEST_F(ProgressiveModelTest, ValidatesBlockInputs) {
  ASSERT_OK_AND_ASSIGN(auto model,
                       ProgressiveModel::Load(WritePackage(root_, {}), {}));
  EXPECT_THAT(model->ValidateBlockInput(1, torch::randn({2, 6})), IsOk());
  EXPECT_THAT(
      model->ValidateBlockInput(1, torch::randn({2, 4})),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("[batch, 6]")));
  EXPECT_THAT(
      model->ValidateBlockInput(1, torch::randn({2, 6}, torch::kFloat64)),
      StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(
      model->ValidateBlockInput(1, torch::randn({9, 6})),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("batch size")));
  EXPECT_THAT(model->ValidateBlockInput(3, torch::randn({1, 5})),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(ProgressiveModelTest, PicksTheNewestVersionUnlessTold) {
  TinySpec spec;
  WritePackage(root_, spec);
  spec.version = "3";
  const std::string dir = WritePackage(root_, spec);
  ASSERT_OK_AND_ASSIGN(auto newest, ProgressiveModel::Load(dir, {}));
  EXPECT_EQ(newest->version(), "3");
  ModelLoadOptions options;
  options.version = "1";
  ASSERT_OK_AND_ASSIGN(auto first, ProgressiveModel::Load(dir, options));
  EXPECT_EQ(first->version(), "1");
  options.version = "2";
  EXPECT_THAT(ProgressiveModel::Load(dir, options),
              StatusIs(absl::StatusCode::kNotFound));
}

struct BrokenCase {
  const char* name;
  std::function<void(TinySpec*)> breakage;
  std::function<void(const fs::path& dir)> after_write;
  absl::StatusCode code;
  const char* message;
};

TEST_F(ProgressiveModelTest, RejectsBrokenPackagesWithPreciseErrors) {
  const auto kInvalid = absl::StatusCode::kInvalidArgument;
  const BrokenCase cases[] = {
      {"no blocks submodule", [](TinySpec* s) { s->with_blocks = false; },
       nullptr, kInvalid, "no submodule 'blocks'"},
      {"exit key past the blocks",
       [](TinySpec* s) {
         s->exit_keys = {"0", "2", "7"};
       },
       nullptr, kInvalid, "exit key '7'"},
      {"no final exit",
       [](TinySpec* s) {
         s->exit_keys = {"0"};
         s->config_exits = "exits { block: 0 threshold: 0.8 }\n";
       },
       nullptr, kInvalid, "last exit must follow the last block"},
      {"config exits differ from the model's",
       [](TinySpec* s) {
         s->config_exits = "exits { block: 1 }\nexits { block: 2 }\n";
       },
       nullptr, kInvalid, "differ from the config"},
      {"num_blocks disagrees",
       [](TinySpec* s) {
         s->num_blocks = 5;
         s->config_exits = "exits { block: 0 }\nexits { block: 4 }\n";
       },
       nullptr, kInvalid, "has 3 blocks"},
      {"input shape rejected", [](TinySpec* s) { s->input_dims = {9}; },
       nullptr, kInvalid, "block 0 rejects input"},
      {"labels disagree with classes",
       [](TinySpec* s) { s->config_extra = "labels: [\"a\", \"b\"]\n"; },
       nullptr, kInvalid, "classes"},
      {"threshold above 1",
       [](TinySpec* s) {
         s->config_exits =
             "exits { block: 0 threshold: 1.5 }\nexits { block: 2 }\n";
       },
       nullptr, kInvalid, "outside [0, 1]"},
      {"config syntax error",
       [](TinySpec* s) { s->config_extra = "num_blocks: {\n"; }, nullptr,
       kInvalid, "line"},
      {"name differs from directory",
       [](TinySpec* s) { s->dir_name = "other"; }, nullptr, kInvalid,
       "differs from its directory"},
      {"corrupt model.pt", nullptr,
       [](const fs::path& dir) {
         std::ofstream(dir / "1" / "model.pt") << "not a zip";
       },
       kInvalid, "model.pt"},
      {"missing model.pt", nullptr,
       [](const fs::path& dir) { fs::remove_all(dir / "1"); },
       absl::StatusCode::kNotFound, "no version"},
      {"missing config", nullptr,
       [](const fs::path& dir) { fs::remove(dir / "config.pbtxt"); },
       absl::StatusCode::kNotFound, "config.pbtxt"},
  };
  for (const BrokenCase& c : cases) {
    SCOPED_TRACE(c.name);
    TinySpec spec;
    if (c.breakage) c.breakage(&spec);
    const fs::path dir = WritePackage(root_, spec);
    if (c.after_write) c.after_write(dir);
    EXPECT_THAT(ProgressiveModel::Load(dir.string(), {}),
                StatusIs(c.code, HasSubstr(c.message)));
    fs::remove_all(dir);
  }
}

TEST_F(ProgressiveModelTest, RepositoryFindsModelsByNameAndVersion) {
  WritePackage(root_, {});
  TinySpec other;
  other.name = "other";
  WritePackage(root_, other);
  ASSERT_OK_AND_ASSIGN(auto repo, ModelRepository::Load(root_.string(), {}));
  EXPECT_EQ(repo->models().size(), 2u);
  ASSERT_OK_AND_ASSIGN(const ProgressiveModel* tiny, repo->Get("tiny"));
  EXPECT_EQ(tiny->name(), "tiny");
  EXPECT_THAT(repo->Get("tiny", "1"), IsOk());
  EXPECT_THAT(repo->Get("tiny", "9"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(repo->Get("nope"), StatusIs(absl::StatusCode::kNotFound));
}

// The "name:version" ids of a repository's models, all versions.
std::vector<std::string> Ids(const ModelRepository& repo) {
  std::vector<std::string> ids;
  for (const ProgressiveModel* model : repo.all_versions()) {
    ids.push_back(model->name() + ":" + model->version());
  }
  return ids;
}

TEST_F(ProgressiveModelTest, VersionPolicyChoosesTheVersionsThatLoad) {
  const auto write = [&](const std::string& policy) {
    for (const char* version : {"1", "2", "3"}) {
      TinySpec spec;
      spec.version = version;
      spec.config_extra = policy;
      WritePackage(root_, spec);
    }
  };
  write("");
  ASSERT_OK_AND_ASSIGN(auto newest, ModelRepository::Load(root_.string(), {}));
  EXPECT_THAT(Ids(*newest), ElementsAre("tiny:3"));

  write("version_policy { latest { num_versions: 2 } }\n");
  ASSERT_OK_AND_ASSIGN(auto latest, ModelRepository::Load(root_.string(), {}));
  EXPECT_THAT(Ids(*latest), ElementsAre("tiny:2", "tiny:3"));
  EXPECT_EQ(latest->Get("tiny").value()->version(), "3");
  EXPECT_EQ(latest->Get("tiny", "2").value()->version(), "2");
  EXPECT_THAT(latest->Get("tiny", "1"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("loaded: 2, 3")));
  EXPECT_EQ(latest->models().size(), 1u);  // The newest of each model.

  write("version_policy { specific { versions: [1, 3] } }\n");
  ASSERT_OK_AND_ASSIGN(auto specific,
                       ModelRepository::Load(root_.string(), {}));
  EXPECT_THAT(Ids(*specific), ElementsAre("tiny:1", "tiny:3"));

  write("version_policy { all {} }\n");
  ASSERT_OK_AND_ASSIGN(auto all, ModelRepository::Load(root_.string(), {}));
  EXPECT_THAT(Ids(*all), ElementsAre("tiny:1", "tiny:2", "tiny:3"));
  ModelLoadOptions edge;
  edge.newest_version_only = true;
  ASSERT_OK_AND_ASSIGN(auto one, ModelRepository::Load(root_.string(), edge));
  EXPECT_THAT(Ids(*one), ElementsAre("tiny:3"));

  write("version_policy { specific { versions: [4] } }\n");
  EXPECT_THAT(ModelRepository::Load(root_.string(), {}),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("version 4")));
  write("version_policy { latest { num_versions: 0 } }\n");
  EXPECT_THAT(
      ModelRepository::Load(root_.string(), {}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("num_versions")));
}

TEST_F(ProgressiveModelTest, ReloadLoadsNewVersionsDropsOldOnesKeepsTheRest) {
  TinySpec spec;
  spec.config_extra = "version_policy { latest { num_versions: 2 } }\n";
  WritePackage(root_, spec);
  TinySpec other;
  other.name = "other";
  WritePackage(root_, other);
  ASSERT_OK_AND_ASSIGN(std::shared_ptr<const ModelRepository> v1,
                       ModelRepository::Load(root_.string(), {}));
  const ProgressiveModel* other_before = v1->Get("other").value();

  // New versions arrive as new directories (config.pbtxt untouched: a
  // changed config reloads every version).
  const auto add_version = [&](const char* from, const char* to) {
    fs::copy(root_ / "tiny" / from, root_ / "tiny" / to,
             fs::copy_options::recursive);
  };
  // A second version: both load (latest 2); the untouched model is shared.
  add_version("1", "2");
  ModelRepository::ReloadReport report;
  ASSERT_OK_AND_ASSIGN(std::shared_ptr<const ModelRepository> v2,
                       ModelRepository::Reload(*v1, {}, &report));
  EXPECT_THAT(Ids(*v2), ElementsAre("other:1", "tiny:1", "tiny:2"));
  EXPECT_THAT(report.loaded, ElementsAre("tiny:2"));
  EXPECT_TRUE(report.unloaded.empty());
  EXPECT_TRUE(report.errors.empty());
  EXPECT_EQ(v2->Get("other").value(), other_before);
  EXPECT_EQ(v2->Get("tiny", "1").value(), v1->Get("tiny", "1").value());

  // A third: version 1 falls out of the policy and unloads, while a holder
  // of the old repository still runs it.
  add_version("2", "3");
  report = {};
  ASSERT_OK_AND_ASSIGN(std::shared_ptr<const ModelRepository> v3,
                       ModelRepository::Reload(*v2, {}, &report));
  EXPECT_THAT(Ids(*v3), ElementsAre("other:1", "tiny:2", "tiny:3"));
  EXPECT_THAT(report.unloaded, ElementsAre("tiny:1"));
  ASSERT_OK_AND_ASSIGN(std::shared_ptr<const ProgressiveModel> old,
                       v2->GetShared("tiny", "1"));
  v1.reset();
  v2.reset();
  EXPECT_OK(old->RunBlocks(torch::randn({1, 4}), 0, 1).status());

  // A broken new version: the model keeps what it had, and says why.
  const std::string broken = (root_ / "tiny" / "4").string();
  fs::create_directories(broken);
  std::ofstream(broken + "/model.pt") << "not a TorchScript archive";
  report = {};
  ASSERT_OK_AND_ASSIGN(std::shared_ptr<const ModelRepository> v4,
                       ModelRepository::Reload(*v3, {}, &report));
  EXPECT_THAT(Ids(*v4), ElementsAre("other:1", "tiny:2", "tiny:3"));
  ASSERT_EQ(report.errors.count("tiny"), 1u);
  EXPECT_THAT(report.errors.at("tiny").ToString(), HasSubstr("4"));

  // A removed package unloads entirely.
  fs::remove_all(root_ / "other");
  report = {};
  ASSERT_OK_AND_ASSIGN(std::shared_ptr<const ModelRepository> v5,
                       ModelRepository::Reload(*v4, {}, &report));
  EXPECT_THAT(report.unloaded, ElementsAre("other:1"));
  EXPECT_THAT(v5->Get("other"), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(ProgressiveModelTest, RepositoryLoadIsStrict) {
  EXPECT_THAT(ModelRepository::Load(root_.string(), {}),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(ModelRepository::Load((root_ / "absent").string(), {}),
              StatusIs(absl::StatusCode::kNotFound));
  WritePackage(root_, {});
  TinySpec broken;
  broken.name = "broken";
  broken.with_blocks = false;
  WritePackage(root_, broken);
  EXPECT_THAT(
      ModelRepository::Load(root_.string(), {}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("broken")));
}

// This thread's CPU time, in milliseconds.
double CpuMs() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

// Keeps this thread busy for `ms` of CPU time: the caller's own work.
void Work(double ms) {
  const double until = CpuMs() + ms;
  while (CpuMs() < until) {
  }
}

// The emulation's contract, in CPU time (what it dilates), so the bounds hold
// on a busy machine: a scope makes all the work inside it s times as long,
// the caller's own included, and nested scopes do not dilate twice.
TEST_F(ProgressiveModelTest, EmulatedDeviceDilatesAScopeOnceAtItsEnd) {
  ModelLoadOptions options;
  options.emulated_slowdown = 4;
  // The profiling executor compiles at the first runs (once ~100 ms of CPU
  // in a CI run): warmed up, the block run below costs well under 1 ms.
  options.warmup_runs = 2;
  ASSERT_OK_AND_ASSIGN(
      auto slow, ProgressiveModel::Load(WritePackage(root_, {}), options));
  const torch::Tensor x = torch::randn({1, 4});
  const double start = CpuMs();
  {
    const ProgressiveModel::EmulatedDevice outer(*slow);
    Work(5);
    {
      const ProgressiveModel::EmulatedDevice inner(*slow);
      ASSERT_OK(slow->RunBlocks(x, 0, 1).status());  // Deferred, too.
      Work(5);
    }
    // Nothing dilated yet: the inner scope and the call deferred to this one.
    EXPECT_LT(CpuMs() - start, 15);
  }
  const double took = CpuMs() - start;
  EXPECT_GE(took, 4 * 10 * 0.95);  // 10 ms of work, 4x.
  EXPECT_LT(took, 4 * 10 * 1.5);   // Not 4x of 4x for the inner part.
}

TEST_F(ProgressiveModelTest, EmulatedDeviceCostsNothingAtFullSpeed) {
  ASSERT_OK_AND_ASSIGN(auto model,
                       ProgressiveModel::Load(WritePackage(root_, {}), {}));
  const double start = CpuMs();
  {
    const ProgressiveModel::EmulatedDevice scope(*model);
    Work(10);
  }
  EXPECT_LT(CpuMs() - start, 15);
}

}  // namespace
}  // namespace tandem
