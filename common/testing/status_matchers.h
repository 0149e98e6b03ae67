// GoogleMock matchers for absl::Status and absl::StatusOr (Debian's abseil
// 20220623 ships none).
//
//   EXPECT_THAT(LoadModel(dir), IsOk());
//   EXPECT_THAT(Decode(bad), StatusIs(absl::StatusCode::kInvalidArgument,
//                                     HasSubstr("datatype")));
#ifndef TANDEM_COMMON_TESTING_STATUS_MATCHERS_H_
#define TANDEM_COMMON_TESTING_STATUS_MATCHERS_H_

#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/status_macros.h"
#include "gmock/gmock.h"

namespace tandem {
namespace testing {

inline const absl::Status& GetStatus(const absl::Status& status) {
  return status;
}
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}

MATCHER(IsOk, "is OK") {
  const absl::Status& status = GetStatus(arg);
  if (!status.ok()) *result_listener << "status is " << status;
  return status.ok();
}

MATCHER_P(StatusIs, code,
          std::string("has code ") + absl::StatusCodeToString(code)) {
  const absl::Status& status = GetStatus(arg);
  *result_listener << "status is " << status;
  return status.code() == code;
}

MATCHER_P2(StatusIs, code, message_matcher,
           std::string("has code ") + absl::StatusCodeToString(code)) {
  const absl::Status& status = GetStatus(arg);
  *result_listener << "status is " << status;
  return status.code() == code &&
         ::testing::Matches(message_matcher)(std::string(status.message()));
}

}  // namespace testing
}  // namespace tandem

// ASSERT_OK_AND_ASSIGN(auto model, Load(dir));
#define ASSERT_OK_AND_ASSIGN(lhs, rexpr) \
  TANDEM_ASSERT_OK_AND_ASSIGN_IMPL_(     \
      TANDEM_STATUS_CONCAT_(tandem_assert_statusor_, __LINE__), lhs, rexpr)
#define TANDEM_ASSERT_OK_AND_ASSIGN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                      \
  ASSERT_TRUE(statusor.ok()) << statusor.status();              \
  lhs = std::move(statusor).value()

#define ASSERT_OK(expr) ASSERT_THAT((expr), ::tandem::testing::IsOk())
#define EXPECT_OK(expr) EXPECT_THAT((expr), ::tandem::testing::IsOk())

#endif  // TANDEM_COMMON_TESTING_STATUS_MATCHERS_H_
