#include "models/profiler.h"

#include <filesystem>

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"
#include "models/testing/tiny_model.h"

namespace tandem {
namespace {

namespace fs = std::filesystem;

int64_t Size(const tandem::v1::BlockProfile& block,
             tandem::v1::Encoding encoding) {
  for (const auto& size : block.output_sizes()) {
    if (size.encoding() == encoding &&
        size.compression() == tandem::v1::COMPRESSION_NONE) {
      return size.bytes();
    }
  }
  return -1;
}

TEST(Profiler, MeasuresEveryBlockAndEncoding) {
  const fs::path root =
      fs::temp_directory_path() / ("tandem_prof_" + std::to_string(getpid()));
  fs::create_directories(root);
  ASSERT_OK_AND_ASSIGN(
      auto model, ProgressiveModel::Load(testing::WritePackage(root, {}), {}));
  ProfileOptions options;
  options.runs = 5;
  ASSERT_OK_AND_ASSIGN(tandem::v1::ModelProfile profile,
                       ProfileModel(*model, options));
  EXPECT_EQ(profile.model_name(), "tiny");
  EXPECT_EQ(profile.samples(), 5);
  ASSERT_EQ(profile.blocks_size(), 3);
  const int64_t widths[] = {6, 6, 5};
  for (int b = 0; b < 3; ++b) {
    const auto& block = profile.blocks(b);
    EXPECT_GT(block.latency_us(), 0);
    EXPECT_EQ(block.exit_latency_us() > 0, b == 0 || b == 2);
    EXPECT_EQ(block.output_elements(), widths[b]);
    EXPECT_EQ(Size(block, tandem::v1::ENCODING_RAW), widths[b] * 4);
    EXPECT_EQ(Size(block, tandem::v1::ENCODING_FP16), widths[b] * 2);
    EXPECT_EQ(Size(block, tandem::v1::ENCODING_AFFINE_UINT8), widths[b]);
    EXPECT_EQ(block.output_sizes_size(),
              6);  // 3 encodings x with/without zstd.
  }
  EXPECT_EQ(profile.input_sizes_size(), 6);
  fs::remove_all(root);
}

}  // namespace
}  // namespace tandem
