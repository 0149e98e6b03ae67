#include "common/text_proto.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tandem/v1/model_config.pb.h"

namespace tandem {
namespace {

using ::tandem::testing::IsOk;
using ::tandem::testing::StatusIs;
using ::testing::HasSubstr;

std::string WriteTemp(const std::string& contents) {
  char path[] = "/tmp/tandem_text_proto_XXXXXX";
  const int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  close(fd);
  std::ofstream(path) << contents;
  return path;
}

TEST(TextProto, ParsesAFile) {
  const std::string path = WriteTemp(
      "name: \"m\"\nnum_blocks: 3\ninput { datatype: \"FP32\" dims: [1, 2] "
      "}\n");
  tandem::v1::ModelConfig config;
  ASSERT_THAT(ReadTextProtoFile(path, &config), IsOk());
  EXPECT_EQ(config.name(), "m");
  EXPECT_EQ(config.num_blocks(), 3);
  EXPECT_EQ(config.input().dims_size(), 2);
  std::remove(path.c_str());
}

TEST(TextProto, ErrorsNameTheProblem) {
  tandem::v1::ModelConfig config;
  EXPECT_THAT(
      ParseTextProto("name: \"m\"\nno_such_field: 1\n", &config),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("line 2")));
  EXPECT_THAT(ParseTextProto("num_blocks: \"three\"", &config),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ReadTextProtoFile("/nonexistent/config.pbtxt", &config),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST(TextProto, RefusesOversizedFiles) {
  const std::string path = WriteTemp(std::string(2048, ' '));
  tandem::v1::ModelConfig config;
  EXPECT_THAT(ReadTextProtoFile(path, &config, /*max_bytes=*/1024),
              StatusIs(absl::StatusCode::kResourceExhausted));
  std::remove(path.c_str());
}

}  // namespace
}  // namespace tandem
