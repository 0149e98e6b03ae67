#include "models/testing/tiny_model.h"

#include <torch/script.h>
#include <torch/torch.h>

#include <algorithm>
#include <fstream>

namespace tandem {
namespace testing {
namespace {

// A linear layer (+ReLU) as a TorchScript module, built without Python.
torch::jit::Module Linear(const std::string& type, int64_t in, int64_t out,
                          bool relu, float gain = 1.0f) {
  torch::jit::Module m(type);
  m.register_parameter("w", torch::randn({in, out}) * gain,
                       /*is_buffer=*/false);
  m.define(relu ? "def forward(self, x):\n  return torch.relu(torch.matmul(x, "
                  "self.w))\n"
                : "def forward(self, x):\n  return torch.matmul(x, self.w)\n");
  return m;
}

}  // namespace

std::string WritePackage(const std::filesystem::path& root,
                         const TinySpec& spec) {
  namespace fs = std::filesystem;
  torch::manual_seed(5);
  torch::jit::Module model("Tiny");
  torch::jit::Module blocks("Blocks"), exits("Exits");
  for (size_t b = 0; b + 1 < spec.widths.size(); ++b) {
    blocks.register_module(std::to_string(b),
                           Linear("Block" + std::to_string(b), spec.widths[b],
                                  spec.widths[b + 1], true, spec.block_gain));
  }
  for (const std::string& key : spec.exit_keys) {
    const int block = std::stoi(key);
    const int64_t width =
        spec.widths[std::min<size_t>(block + 1, spec.widths.size() - 1)];
    exits.register_module(key,
                          Linear("Exit" + key, width, spec.classes, false));
  }
  if (spec.with_blocks) model.register_module("blocks", blocks);
  model.register_module("exits", exits);
  const fs::path dir =
      root / (spec.dir_name.empty() ? spec.name : spec.dir_name);
  fs::create_directories(dir / spec.version);
  model.save((dir / spec.version / "model.pt").string());
  std::ofstream config(dir / "config.pbtxt");
  config << "name: \"" << spec.name << "\"\nplatform: \"tandem_torchscript\"\n"
         << "max_batch_size: 8\nnum_blocks: " << spec.num_blocks << "\n"
         << "input { name: \"x\" datatype: \"FP32\" dims: [";
  for (size_t i = 0; i < spec.input_dims.size(); ++i) {
    config << (i ? ", " : "") << spec.input_dims[i];
  }
  config << "] }\n" << spec.config_exits << spec.config_extra;
  return dir.string();
}

}  // namespace testing
}  // namespace tandem
