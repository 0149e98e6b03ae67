// Tiny progressive models built in C++ (no Python), written as real model
// packages for tests: linear blocks and heads with seeded weights. Fields of
// TinySpec can be broken on purpose to exercise the loader's checks.
#ifndef TANDEM_MODELS_TESTING_TINY_MODEL_H_
#define TANDEM_MODELS_TESTING_TINY_MODEL_H_

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace tandem {
namespace testing {

struct TinySpec {
  std::string name = "tiny";
  std::vector<int64_t> widths = {4, 6, 6,
                                 5};  // Input, then each block's output.
  std::vector<std::string> exit_keys = {"0", "2"};
  int64_t classes = 3;
  bool with_blocks = true;
  std::string config_extra;
  std::string config_exits =
      "exits { block: 0 threshold: 0.8 }\nexits { block: 2 }\n";
  int num_blocks = 3;
  std::vector<int64_t> input_dims = {4};
  std::string version = "1";
  std::string dir_name;  // Empty: the name.
  // Multiplies every block's weights: a large gain makes activations overflow
  // to infinity (a model fault the runtime must report, not crash on).
  float block_gain = 1.0f;
};

// Writes <root>/<name>/{config.pbtxt, <version>/model.pt} and returns the
// package directory. Weights are seeded: equal specs give equal models.
std::string WritePackage(const std::filesystem::path& root,
                         const TinySpec& spec);

}  // namespace testing
}  // namespace tandem

#endif  // TANDEM_MODELS_TESTING_TINY_MODEL_H_
