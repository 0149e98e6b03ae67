// The sample configurations shipped in deploy/config/ must parse as the
// schemas the daemons read (strictly: unknown fields are errors).
#include <cstdlib>
#include <string>

#include "common/testing/status_matchers.h"
#include "common/text_proto.h"
#include "gtest/gtest.h"
#include "tandem/v1/daemon_config.pb.h"

namespace tandem {
namespace {

std::string SourceDir() {
  const char* dir = std::getenv("TANDEM_SOURCE_DIR");
  return dir == nullptr ? "." : dir;
}

TEST(ConfigSamples, CloudSampleParses) {
  tandem::v1::CloudConfig config;
  ASSERT_OK(
      ReadTextProtoFile(SourceDir() + "/deploy/config/cloud.pbtxt", &config));
  EXPECT_GT(config.limits().max_message_bytes(), 4 << 20);
  EXPECT_GT(config.max_connection_age_s(), 0);
}

TEST(ConfigSamples, EdgeSampleParses) {
  tandem::v1::EdgeConfig config;
  ASSERT_OK(
      ReadTextProtoFile(SourceDir() + "/deploy/config/edge.pbtxt", &config));
  EXPECT_FALSE(config.cloud().empty());
  EXPECT_GT(config.models_size(), 0);
  EXPECT_EQ(config.security().unix_socket_mode(), 0660u);  // Octal parses.
}

}  // namespace
}  // namespace tandem
