#include "models/request_checks.h"

#include <cmath>
#include <functional>

#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tandem {
namespace {

using ::tandem::testing::IsOk;
using ::tandem::testing::StatusIs;
using ::testing::HasSubstr;

// Four blocks, exits after blocks 1 and 3 (the final one).
tandem::v1::ModelConfig Config() {
  tandem::v1::ModelConfig config;
  config.set_num_blocks(4);
  config.add_exits()->set_block(1);
  config.add_exits()->set_block(3);
  return config;
}

tandem::v1::InferRequest ValidInfer() {
  tandem::v1::InferRequest request;
  request.add_inputs();
  request.add_raw_input_contents();
  return request;
}

tandem::v1::ContinueRequest ValidContinue() {
  tandem::v1::ContinueRequest request;
  request.set_start_block(1);
  request.add_inputs();
  request.add_raw_input_contents();
  (*request.mutable_exit_thresholds())[1] = 0.9f;
  return request;
}

struct InferCase {
  const char* name;
  std::function<void(tandem::v1::InferRequest*)> mutate;
  const char* message;  // Empty: valid.
};

TEST(CheckInferRequest, EveryFieldIsRangeChecked) {
  const InferCase cases[] = {
      {"valid", [](auto*) {}, ""},
      {"min_accuracy 1", [](auto* r) { r->set_min_accuracy(1); }, ""},
      {"min_accuracy 2", [](auto* r) { r->set_min_accuracy(2); },
       "min_accuracy 2 is outside [0, 1]"},
      {"min_accuracy -0.1", [](auto* r) { r->set_min_accuracy(-0.1f); },
       "outside [0, 1]"},
      {"min_accuracy NaN", [](auto* r) { r->set_min_accuracy(NAN); },
       "outside [0, 1]"},
      {"top_k -1", [](auto* r) { r->set_top_k(-1); }, "top_k -1"},
      {"top_k 1000 is clamped later", [](auto* r) { r->set_top_k(1000); }, ""},
      {"split 4", [](auto* r) { r->set_split_point(4); }, ""},
      {"split 5", [](auto* r) { r->set_split_point(5); },
       "split_point 5 is outside [0, 4]"},
      {"split -1", [](auto* r) { r->set_split_point(-1); }, "split_point -1"},
      {"encoding 42",
       [](auto* r) { r->set_encoding(static_cast<tandem::v1::Encoding>(42)); },
       "unknown encoding 42"},
      {"two inputs", [](auto* r) { r->add_inputs(); }, "one input tensor"},
      {"no payload", [](auto* r) { r->clear_raw_input_contents(); },
       "one input tensor"},
  };
  for (const InferCase& c : cases) {
    SCOPED_TRACE(c.name);
    tandem::v1::InferRequest request = ValidInfer();
    c.mutate(&request);
    if (*c.message == '\0') {
      EXPECT_THAT(CheckInferRequest(request, Config()), IsOk());
    } else {
      EXPECT_THAT(
          CheckInferRequest(request, Config()),
          StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.message)));
    }
  }
}

struct ContinueCase {
  const char* name;
  std::function<void(tandem::v1::ContinueRequest*)> mutate;
  const char* message;  // Empty: valid.
};

TEST(CheckContinueRequest, EveryFieldIsRangeChecked) {
  const ContinueCase cases[] = {
      {"valid", [](auto*) {}, ""},
      {"final exit threshold",
       [](auto* r) { (*r->mutable_exit_thresholds())[3] = 0; }, ""},
      {"start_block 4", [](auto* r) { r->set_start_block(4); },
       "start_block 4 is outside [0, 4)"},
      {"start_block -1", [](auto* r) { r->set_start_block(-1); },
       "start_block -1"},
      {"threshold 1.5",
       [](auto* r) { (*r->mutable_exit_thresholds())[1] = 1.5f; },
       "exit_thresholds[1] = 1.5 is outside [0, 1]"},
      {"threshold NaN",
       [](auto* r) { (*r->mutable_exit_thresholds())[1] = NAN; },
       "outside [0, 1]"},
      {"threshold of a block without a head",
       [](auto* r) { (*r->mutable_exit_thresholds())[2] = 0.5f; },
       "names block 2"},
      {"threshold before start_block",
       [](auto* r) {
         r->set_start_block(2);
         r->mutable_exit_thresholds()->clear();
         (*r->mutable_exit_thresholds())[1] = 0.5f;
       },
       "names block 1"},
      {"negative deadline", [](auto* r) { r->set_deadline_remaining_us(-5); },
       "deadline_remaining_us -5"},
      {"top_k -3", [](auto* r) { r->set_top_k(-3); }, "top_k -3"},
      {"no tensor", [](auto* r) { r->clear_inputs(); }, "one input tensor"},
  };
  for (const ContinueCase& c : cases) {
    SCOPED_TRACE(c.name);
    tandem::v1::ContinueRequest request = ValidContinue();
    c.mutate(&request);
    if (*c.message == '\0') {
      EXPECT_THAT(CheckContinueRequest(request, Config()), IsOk());
    } else {
      EXPECT_THAT(
          CheckContinueRequest(request, Config()),
          StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.message)));
    }
  }
}

TEST(EffectiveTopK, ZeroMeansOne) {
  EXPECT_EQ(EffectiveTopK(0), 1);
  EXPECT_EQ(EffectiveTopK(3), 3);
}

}  // namespace
}  // namespace tandem
