#include "common/access_control.h"

#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/subprocess.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace tandem {
namespace {

constexpr char kAll[] = "all-models-token-0123456789";
constexpr char kCamera[] = "camera-only-token-0123456789";

AccessControl::Caller CallerNamed(const std::string& client) {
  AccessControl::Caller caller;
  caller.client = client;
  return caller;
}

class AccessControlTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = MakeTempDir("access_control"); }

  std::string WriteTokens(const std::string& text) {
    const std::string path = dir_ + "/tokens";
    std::ofstream(path, std::ios::trunc) << text;
    return path;
  }

  std::unique_ptr<AccessControl> Make(AccessControl::Options options) {
    absl::StatusOr<std::unique_ptr<AccessControl>> access =
        AccessControl::Create(options);
    EXPECT_OK(access.status());
    return access.ok() ? *std::move(access) : nullptr;
  }

  std::string dir_;
};

TEST_F(AccessControlTest, WithoutTokensEveryCallerGetsInByItsAddress) {
  auto access = Make({});
  ASSERT_NE(access, nullptr);
  EXPECT_FALSE(access->tokens_required());
  ASSERT_OK_AND_ASSIGN(AccessControl::Caller caller,
                       access->Authenticate("", "ipv4:10.0.0.7:51234"));
  EXPECT_EQ(caller.client, "ipv4:10.0.0.7");
  EXPECT_TRUE(caller.all_models);
  ASSERT_OK_AND_ASSIGN(caller, access->Authenticate("", "ipv6:[::1]:8500"));
  EXPECT_EQ(caller.client, "ipv6:[::1]");
  ASSERT_OK_AND_ASSIGN(caller, access->Authenticate("", "unix:/run/x.sock"));
  EXPECT_EQ(caller.client, "unix:");
}

TEST_F(AccessControlTest, TokensDecideWhoGetsInAndWhichModels) {
  auto access = Make({WriteTokens(absl::StrCat(
      "# comment\n\n", kAll, "\n", kCamera, "  camera_branchy # trailing\n"))});
  ASSERT_NE(access, nullptr);
  EXPECT_TRUE(access->tokens_required());

  EXPECT_EQ(access->Authenticate("", "ipv4:1.2.3.4:5").status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(access->Authenticate(kAll, "ipv4:1.2.3.4:5").status().code(),
            absl::StatusCode::kUnauthenticated);  // No "Bearer ".
  EXPECT_EQ(access->Authenticate("Bearer all-models-token-012345678X", "")
                .status()
                .code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(access->Authenticate("Bearer all-models-token-01234567", "")
                .status()
                .code(),
            absl::StatusCode::kUnauthenticated);  // A prefix is not a match.

  ASSERT_OK_AND_ASSIGN(
      AccessControl::Caller all,
      access->Authenticate(absl::StrCat("bearer  ", kAll), ""));
  EXPECT_TRUE(all.all_models);
  EXPECT_EQ(all.client.rfind("token-", 0), 0u) << all.client;
  EXPECT_EQ(all.client.find(kAll), std::string::npos);  // Never the secret.
  EXPECT_OK(AccessControl::CheckModel(all, "fmnist_branchy"));

  ASSERT_OK_AND_ASSIGN(
      AccessControl::Caller camera,
      access->Authenticate(absl::StrCat("Bearer ", kCamera), ""));
  EXPECT_NE(camera.client, all.client);
  EXPECT_OK(AccessControl::CheckModel(camera, "camera_branchy"));
  EXPECT_EQ(AccessControl::CheckModel(camera, "fmnist_branchy").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(access->Admit(camera, "fmnist_branchy", 0).status().code(),
            absl::StatusCode::kPermissionDenied);
}

TEST_F(AccessControlTest, MalformedTokenFilesAreRefusedWithTheLine) {
  for (const auto& [text, expected] :
       std::vector<std::pair<std::string, std::string>>{
           {"short\n", "line 1"},
           {absl::StrCat(kAll, "\n", kAll, " m\n"), "the same token twice"},
           {"# only a comment\n", "no tokens"}}) {
    absl::StatusOr<std::unique_ptr<AccessControl>> access =
        AccessControl::Create({WriteTokens(text)});
    EXPECT_EQ(access.status().code(), absl::StatusCode::kInvalidArgument)
        << text;
    EXPECT_NE(access.status().message().find(expected), std::string::npos)
        << access.status();
  }
  EXPECT_EQ(AccessControl::Create({dir_ + "/missing"}).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(AccessControlTest, ReloadReplacesTokensAndKeepsThemOnABadFile) {
  const std::string path = WriteTokens(absl::StrCat(kAll, "\n"));
  auto access = Make({path});
  ASSERT_NE(access, nullptr);
  WriteTokens(absl::StrCat(kCamera, "\n"));
  ASSERT_OK(access->Reload());
  EXPECT_FALSE(access->Authenticate(absl::StrCat("Bearer ", kAll), "").ok());
  EXPECT_OK(
      access->Authenticate(absl::StrCat("Bearer ", kCamera), "").status());

  WriteTokens("short\n");
  EXPECT_EQ(access->Reload().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_OK(
      access->Authenticate(absl::StrCat("Bearer ", kCamera), "").status());
}

TEST_F(AccessControlTest, EachClientHasItsOwnSlotsAndTheyComeBack) {
  AccessControl::Options options;
  options.max_inflight_per_client = 2;
  auto access = Make(options);
  ASSERT_NE(access, nullptr);
  const AccessControl::Caller a = CallerNamed("ipv4:10.0.0.1");
  const AccessControl::Caller b = CallerNamed("ipv4:10.0.0.2");
  ASSERT_OK_AND_ASSIGN(AccessControl::Admission a1, access->Admit(a, "m", 0));
  ASSERT_OK_AND_ASSIGN(AccessControl::Admission a2, access->Admit(a, "m", 0));
  const absl::Status third = access->Admit(a, "m", 0).status();
  EXPECT_EQ(third.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(third.message().find("max_inflight_per_client"), std::string::npos);
  EXPECT_OK(access->Admit(b, "m", 0).status());  // Another client is free.
  EXPECT_EQ(access->inflight(a.client), 2);

  { AccessControl::Admission released = std::move(a1); }
  EXPECT_EQ(access->inflight(a.client), 1);
  ASSERT_OK_AND_ASSIGN(a1, access->Admit(a, "m", 0));
  a2 = AccessControl::Admission();  // Move-assigning releases too.
  a1 = AccessControl::Admission();
  EXPECT_EQ(access->inflight(a.client), 0);
}

TEST_F(AccessControlTest, TensorBytesInFlightAreCappedOverAllClients) {
  AccessControl::Options options;
  options.max_inflight_tensor_bytes = 1000;
  auto access = Make(options);
  ASSERT_NE(access, nullptr);
  const AccessControl::Caller a = CallerNamed("a");
  const AccessControl::Caller b = CallerNamed("b");
  ASSERT_OK_AND_ASSIGN(AccessControl::Admission big,
                       access->Admit(a, "m", 800));
  const absl::Status over = access->Admit(b, "m", 300).status();
  EXPECT_EQ(over.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(over.message().find("max_inflight_tensor_bytes"),
            std::string::npos);
  EXPECT_EQ(access->inflight(b.client), 0);  // A refusal holds nothing.
  EXPECT_OK(access->Admit(b, "m", 200).status());
  big = AccessControl::Admission();
  EXPECT_EQ(access->inflight_tensor_bytes(), 0);
  EXPECT_OK(access->Admit(b, "m", 1000).status());
}

TEST(DecodedFloatBytesTest, CountsFloatsAndSaturates) {
  EXPECT_EQ(DecodedFloatBytes({{1, 1, 28, 28}}), 28 * 28 * 4);
  EXPECT_EQ(DecodedFloatBytes({{2, 3}, {4}}), 6 * 4 + 4 * 4);
  EXPECT_EQ(DecodedFloatBytes({{1, -5}}), 0);
  EXPECT_EQ(DecodedFloatBytes({{1LL << 40, 1LL << 40}}),
            std::numeric_limits<int64_t>::max());
  EXPECT_EQ(DecodedFloatBytes({{1LL << 60}, {1LL << 60}}),
            std::numeric_limits<int64_t>::max());
}

TEST_F(AccessControlTest, ABearerTokenFileHoldsOneToken) {
  const std::string path = dir_ + "/token";
  std::ofstream(path) << "# the edge's token\n  " << kAll << "  \n";
  ASSERT_OK_AND_ASSIGN(std::string token, ReadBearerToken(path));
  EXPECT_EQ(token, kAll);
  std::ofstream(path, std::ios::trunc) << kAll << "\n" << kCamera << "\n";
  EXPECT_EQ(ReadBearerToken(path).status().code(),
            absl::StatusCode::kInvalidArgument);
  std::ofstream(path, std::ios::trunc) << "\n";
  EXPECT_EQ(ReadBearerToken(path).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tandem
