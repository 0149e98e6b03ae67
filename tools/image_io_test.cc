#include "tools/image_io.h"

#include <png.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tandem {
namespace {

using ::tandem::testing::IsOk;
using ::tandem::testing::StatusIs;
using ::testing::Each;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

std::string TempPrefix() {
  return absl::StrCat("image_io_test_", getpid(), "_");
}

std::string TempPath(const std::string& name) {
  return absl::StrCat(::testing::TempDir(), "/", TempPrefix(), name);
}

// Removes this process's files from the temp directory once its tests ran.
class TempFiles : public ::testing::Environment {
 public:
  void TearDown() override {
    std::error_code ignored;
    for (const auto& entry :
         std::filesystem::directory_iterator(::testing::TempDir(), ignored)) {
      if (entry.path().filename().string().rfind(TempPrefix(), 0) == 0)
        std::filesystem::remove_all(entry.path(), ignored);
    }
  }
};
::testing::Environment* const kTempFiles =
    ::testing::AddGlobalTestEnvironment(new TempFiles);

std::string WriteFile(const std::string& name, const std::string& contents) {
  const std::string path = TempPath(name);
  std::ofstream(path, std::ios::binary) << contents;
  return path;
}

// Writes 8-bit `pixels` (1, 3 or 4 interleaved channels) as a PNG with libpng.
std::string WritePng(const std::string& name, int width, int height,
                     int channels, const std::vector<uint8_t>& pixels) {
  const std::string path = TempPath(name);
  png_image png;
  std::memset(&png, 0, sizeof(png));
  png.version = PNG_IMAGE_VERSION;
  png.width = width;
  png.height = height;
  png.format = channels == 1   ? PNG_FORMAT_GRAY
               : channels == 3 ? PNG_FORMAT_RGB
                               : PNG_FORMAT_RGBA;
  EXPECT_NE(png_image_write_to_file(&png, path.c_str(), /*convert_to_8bit=*/0,
                                    pixels.data(), /*row_stride=*/0,
                                    /*colormap=*/nullptr),
            0)
      << png.message;
  return path;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

Image GrayImage(int width, int height, std::vector<uint8_t> pixels) {
  Image image;
  image.width = width;
  image.height = height;
  image.channels = 1;
  image.pixels = std::move(pixels);
  return image;
}

TEST(ReadImageTest, BinaryPgmWithComment) {
  const std::string path =
      WriteFile("p5.pgm", std::string("P5\n# made by a test\n3 2\n255\n") +
                              std::string("\x00\x10\x20\x80\xfe\xff", 6));
  ASSERT_OK_AND_ASSIGN(const Image image, ReadImage(path));
  EXPECT_EQ(image.width, 3);
  EXPECT_EQ(image.height, 2);
  EXPECT_EQ(image.channels, 1);
  EXPECT_THAT(image.pixels, ElementsAre(0x00, 0x10, 0x20, 0x80, 0xfe, 0xff));
}

TEST(ReadImageTest, AsciiPgmScalesToEightBits) {
  const std::string path = WriteFile("p2.pgm", "P2 2 2 15\n0 15\n5 10\n");
  ASSERT_OK_AND_ASSIGN(const Image image, ReadImage(path));
  EXPECT_THAT(image.pixels, ElementsAre(0, 255, 85, 170));
}

TEST(ReadImageTest, SixteenBitPgmIsBigEndian) {
  const std::string path =
      WriteFile("p5_16.pgm", std::string("P5 2 1 65535\n") +
                                 std::string("\xff\xff\x80\x00", 4));
  ASSERT_OK_AND_ASSIGN(const Image image, ReadImage(path));
  EXPECT_THAT(image.pixels, ElementsAre(255, 128));
}

TEST(ReadImageTest, PpmIsRgb) {
  const std::string path =
      WriteFile("p6.ppm", std::string("P6 2 1 255\n") +
                              std::string("\x01\x02\x03\x04\x05\x06", 6));
  ASSERT_OK_AND_ASSIGN(const Image image, ReadImage(path));
  EXPECT_EQ(image.channels, 3);
  EXPECT_THAT(image.pixels, ElementsAre(1, 2, 3, 4, 5, 6));
}

TEST(ReadImageTest, GrayPngRoundTrip) {
  const std::vector<uint8_t> pixels = {0,   1,   2,   3,   100, 101,
                                       102, 103, 200, 201, 254, 255};
  const std::string path = WritePng("gray.png", 4, 3, 1, pixels);
  ASSERT_OK_AND_ASSIGN(const Image image, ReadImage(path));
  EXPECT_EQ(image.width, 4);
  EXPECT_EQ(image.height, 3);
  EXPECT_EQ(image.channels, 1);
  EXPECT_THAT(image.pixels, ElementsAreArray(pixels));
}

TEST(ReadImageTest, RgbPngRoundTrip) {
  const std::vector<uint8_t> pixels = {255, 0, 0,   0,  255, 0,
                                       0,   0, 255, 10, 20,  30};
  const std::string path = WritePng("rgb.png", 2, 2, 3, pixels);
  ASSERT_OK_AND_ASSIGN(const Image image, ReadImage(path));
  EXPECT_EQ(image.channels, 3);
  EXPECT_THAT(image.pixels, ElementsAreArray(pixels));
}

TEST(ReadImageTest, PngAlphaIsCompositedOntoBlack) {
  const std::vector<uint8_t> pixels = {200, 100, 50,  255,  // Opaque.
                                       255, 255, 255, 0};   // Transparent.
  const std::string path = WritePng("rgba.png", 2, 1, 4, pixels);
  ASSERT_OK_AND_ASSIGN(const Image image, ReadImage(path));
  EXPECT_EQ(image.channels, 3);
  EXPECT_THAT(image.pixels, ElementsAre(200, 100, 50, 0, 0, 0));
}

TEST(ReadImageTest, MissingFileIsNotFound) {
  EXPECT_THAT(
      ReadImage(TempPath("does_not_exist.png")),
      StatusIs(absl::StatusCode::kNotFound, HasSubstr("does_not_exist.png")));
}

TEST(ReadImageTest, DirectoryIsInvalid) {
  const std::string path = TempPath("a_directory");
  ASSERT_EQ(mkdir(path.c_str(), 0700), 0);
  EXPECT_THAT(ReadImage(path), StatusIs(absl::StatusCode::kInvalidArgument));
  rmdir(path.c_str());
}

TEST(ReadImageTest, BadFilesAreInvalidArgument) {
  const std::string png =
      ReadFile(WritePng("whole.png", 8, 8, 1, std::vector<uint8_t>(64, 7)));
  ASSERT_GT(png.size(), 40u);
  const struct {
    const char* name;
    std::string contents;
  } kCases[] = {
      {"empty", ""},
      {"text", "hello, world"},
      {"p4_bitmap", "P4 1 1\n\x80"},
      {"truncated_p5", std::string("P5 4 4 255\n") + std::string(10, 'x')},
      {"missing_height", "P5 4\n"},
      {"zero_width", "P5 0 4 255\n"},
      {"maxval_zero", "P2 1 1 0\n0\n"},
      {"sample_above_maxval", "P2 1 1 10\n11\n"},
      {"huge", "P5 100000 100000 255\n"},
      {"overflowing_number", "P5 99999999999999999999 1 255\n"},
      {"truncated_png", png.substr(0, png.size() / 2)},
      {"png_signature_only", png.substr(0, 8)},
  };
  for (const auto& test_case : kCases) {
    SCOPED_TRACE(test_case.name);
    const std::string path =
        WriteFile(absl::StrCat("bad_", test_case.name), test_case.contents);
    EXPECT_THAT(ReadImage(path),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(path)));
  }
}

TEST(ResizeImageTest, AreaAveragesBlocks) {
  const Image image = GrayImage(4, 2,
                                {0, 10, 20, 30,  //
                                 40, 50, 60, 70});
  const Image resized = ResizeImage(image, 2, 1, ResizeFilter::kArea);
  EXPECT_EQ(resized.width, 2);
  EXPECT_EQ(resized.height, 1);
  EXPECT_THAT(resized.pixels, ElementsAre(25, 45));
}

TEST(ResizeImageTest, BilinearUsesHalfPixelCentres) {
  const Image resized =
      ResizeImage(GrayImage(2, 1, {0, 255}), 4, 1, ResizeFilter::kBilinear);
  EXPECT_THAT(resized.pixels, ElementsAre(0, 64, 191, 255));
}

TEST(ResizeImageTest, AutoAveragesWhenShrinking) {
  const Image image = GrayImage(3, 1, {0, 90, 30});
  EXPECT_THAT(ResizeImage(image, 1, 1, ResizeFilter::kAuto).pixels,
              ElementsAre(40));
  EXPECT_THAT(ResizeImage(image, 1, 1, ResizeFilter::kBilinear).pixels,
              ElementsAre(90));
}

TEST(ResizeImageTest, SameSizeIsIdentity) {
  const Image image = GrayImage(3, 1, {1, 2, 3});
  EXPECT_THAT(ResizeImage(image, 3, 1).pixels, ElementsAre(1, 2, 3));
}

TEST(ResizeImageTest, ConstantStaysConstant) {
  const Image image = GrayImage(7, 5, std::vector<uint8_t>(35, 123));
  for (ResizeFilter filter : {ResizeFilter::kArea, ResizeFilter::kBilinear}) {
    EXPECT_THAT(ResizeImage(image, 3, 11, filter).pixels, Each(123));
    EXPECT_THAT(ResizeImage(image, 28, 28, filter).pixels, Each(123));
  }
}

TEST(ConvertChannelsTest, RgbToLumaAndBack) {
  Image rgb;
  rgb.width = 2;
  rgb.height = 1;
  rgb.channels = 3;
  rgb.pixels = {255, 0, 0, 255, 255, 255};
  ASSERT_OK_AND_ASSIGN(const Image gray, ConvertChannels(rgb, 1));
  EXPECT_THAT(gray.pixels, ElementsAre(76, 255));
  ASSERT_OK_AND_ASSIGN(const Image again, ConvertChannels(gray, 3));
  EXPECT_THAT(again.pixels, ElementsAre(76, 76, 76, 255, 255, 255));
  EXPECT_THAT(ConvertChannels(gray, 4),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ToPlanarTest, ChannelsBecomePlanes) {
  Image rgb;
  rgb.width = 2;
  rgb.height = 1;
  rgb.channels = 3;
  rgb.pixels = {1, 2, 3, 4, 5, 6};
  EXPECT_THAT(ToPlanar(rgb), ElementsAre(1, 4, 2, 5, 3, 6));
}

TEST(ReadImageForModelTest, ConvertsAndResizes) {
  std::vector<uint8_t> pixels;
  for (int i = 0; i < 56 * 56; ++i) pixels.insert(pixels.end(), {30, 60, 90});
  const std::string path = WritePng("big_rgb.png", 56, 56, 3, pixels);
  ModelInputGeometry geometry;
  geometry.channels = 1;
  geometry.height = 28;
  geometry.width = 28;
  ASSERT_OK_AND_ASSIGN(const std::vector<uint8_t> input,
                       ReadImageForModel(path, geometry));
  EXPECT_EQ(input.size(), 28u * 28u);
  EXPECT_THAT(input, Each(54));  // 0.299 * 30 + 0.587 * 60 + 0.114 * 90.

  geometry.channels = 3;
  ASSERT_OK_AND_ASSIGN(const std::vector<uint8_t> rgb_input,
                       ReadImageForModel(path, geometry));
  ASSERT_EQ(rgb_input.size(), 3u * 28u * 28u);
  EXPECT_EQ(rgb_input[0], 30);
  EXPECT_EQ(rgb_input[28 * 28], 60);
  EXPECT_EQ(rgb_input[2 * 28 * 28], 90);
}

TEST(ParseResizeFilterTest, Names) {
  EXPECT_THAT(ParseResizeFilter("area"), IsOk());
  EXPECT_THAT(ParseResizeFilter("bilinear"), IsOk());
  EXPECT_THAT(ParseResizeFilter("auto"), IsOk());
  EXPECT_THAT(ParseResizeFilter("cubic"),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace tandem
