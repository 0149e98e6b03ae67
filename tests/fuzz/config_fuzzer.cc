// libFuzzer target: what the daemons read from files — the protobuf-text
// configs of both daemons with their defaults and enum-like fields, a model
// package's config.pbtxt with its checks (models/model_config.h), the
// bearer tokens file (common/access_control.h) and file modes.
//
// Input: one selector byte, then the file's text.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "common/access_control.h"
#include "common/daemon.h"
#include "common/security_flags.h"
#include "common/text_proto.h"
#include "edge/block_scheduler.h"
#include "models/model_config.h"
#include "tandem/v1/daemon_config.pb.h"
#include "tandem/v1/model_config.pb.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const absl::string_view text(reinterpret_cast<const char*>(data) + 1,
                               size - 1);
  switch (data[0] % 5) {
    case 0: {
      tandem::v1::EdgeConfig config;
      if (!tandem::ParseTextProto(text, &config).ok()) return 0;
      tandem::FillDaemonDefaults(&config);
      if (config.limits().max_message_bytes() <= 0) __builtin_trap();
      (void)tandem::ParseSchedulingPolicy(config.scheduling_policy());
      (void)tandem::SecuritySummary(config);
      break;
    }
    case 1: {
      tandem::v1::CloudConfig config;
      if (!tandem::ParseTextProto(text, &config).ok()) return 0;
      tandem::FillDaemonDefaults(&config);
      if (config.limits().max_inflight_tensor_bytes() <= 0 ||
          config.limits().max_inflight_per_client() <= 0)
        __builtin_trap();
      (void)tandem::ServerTlsFilesOf(config);
      break;
    }
    case 2: {
      tandem::v1::ModelConfig config;
      if (!tandem::ParseTextProto(text, &config).ok()) return 0;
      if (tandem::ValidateModelConfig(config).ok()) {
        // What the loader relies on once the checks pass.
        if (config.num_blocks() <= 0 || config.exits_size() == 0 ||
            config.exits(config.exits_size() - 1).block() !=
                config.num_blocks() - 1)
          __builtin_trap();
      }
      break;
    }
    case 3: {
      absl::StatusOr<std::vector<tandem::AccessControl::Token>> tokens =
          tandem::AccessControl::ParseTokens(text, "tokens");
      if (tokens.ok() && tokens->empty()) __builtin_trap();
      break;
    }
    case 4: {
      uint32_t mode = 0;
      if (tandem::ParseFileMode(std::string(text), &mode) && mode > 07777)
        __builtin_trap();
      break;
    }
  }
  return 0;
}
