// `tandem`: the command-line client of a Tandem edge agent.
//
//   tandem infer  --edge=ADDR --model=NAME (--image=FILE | --fashion-mnist=N)
//   tandem models --edge=ADDR
//   tandem plan   --edge=ADDR --model=NAME [--bandwidth=5.85mbit --rtt=20ms
//   --objective=latency] tandem plan   --profile=FILE [--bandwidth=...
//   --rtt=... --objective=... --link=lte] tandem profile --edge=ADDR
//   --model=NAME --out=FILE
//
// Flag names take '-' or '_' alike (--fashion-mnist, --fashion_mnist).
#include <algorithm>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/daemon.h"
#include "tools/bench_command.h"
#include "tools/infer_command.h"
#include "tools/models_command.h"
#include "tools/plan_command.h"

namespace {

struct Subcommand {
  const char* name;
  const char* summary;
  absl::Status (*run)();
};

constexpr Subcommand kSubcommands[] = {
    {"infer",
     "classify --image=FILE or the first --fashion-mnist=N test images",
     &tandem::RunInferCommandFromFlags},
    {"models", "list the models the agent serves",
     &tandem::RunModelsCommandFromFlags},
    {"plan", "explain the plan for --model (live) or --profile (offline)",
     &tandem::RunPlanCommandFromFlags},
    {"profile", "save the agent's profile of --model to --out",
     &tandem::RunProfileCommandFromFlags},
    {"bench", "compare policies over a shaped link (--scenario=trace; root)",
     &tandem::RunBenchCommandFromFlags},
};

std::string UsageMessage() {
  std::string usage =
      "the command-line client of a Tandem edge agent.\n\n"
      "usage: tandem <command> --edge=unix:/path.sock|host:port [flags]\n\n"
      "commands:\n";
  for (const Subcommand& command : kSubcommands) {
    absl::StrAppend(&usage, "  ", command.name,
                    std::string(8 - std::strlen(command.name), ' '),
                    command.summary, "\n");
  }
  absl::StrAppend(&usage,
                  "\nexamples:\n"
                  "  tandem infer --edge=unix:/tmp/edge.sock "
                  "--model=fmnist_branchy --image=shoe.png --top_k=3\n"
                  "  tandem infer --edge=localhost:50051 "
                  "--model=fmnist_branchy --fashion-mnist=1000 --json\n\n"
                  "Run 'tandem --help' for every flag.");
  return usage;
}

// "--fashion-mnist=3" -> "--fashion_mnist=3": absl flag names are C
// identifiers. Values and positional arguments are left alone.
std::string NormalizeFlagName(absl::string_view arg) {
  if (!absl::StartsWith(arg, "--") || arg == "--") return std::string(arg);
  const size_t name_end = std::min(arg.find('='), arg.size());
  std::string normalized(arg);
  for (size_t i = 2; i < name_end; ++i) {
    if (normalized[i] == '-') normalized[i] = '_';
  }
  return normalized;
}

void ConfigureUsage() {
  absl::SetProgramUsageMessage(UsageMessage());
  absl::FlagsUsageConfig config;
  config.contains_help_flags = [](absl::string_view file) {
    return absl::StrContains(file, "tools/");
  };
  config.contains_helpshort_flags = config.contains_help_flags;
  config.normalize_filename = [](absl::string_view file) {
    const size_t tools = file.rfind("tools/");
    return std::string(tools == absl::string_view::npos ? file
                                                        : file.substr(tools));
  };
  config.version_string = [] { return std::string("tandem 0.1.0\n"); };
  absl::SetFlagsUsageConfig(config);
}

}  // namespace

int main(int argc, char** argv) {
  tandem::DisableMutexDeadlockDetection();
  ConfigureUsage();
  std::vector<std::string> args;
  bool after_double_dash = false;
  for (int i = 0; i < argc; ++i) {
    args.push_back(after_double_dash ? argv[i] : NormalizeFlagName(argv[i]));
    after_double_dash = after_double_dash || args.back() == "--";
  }
  std::vector<char*> arg_pointers;
  for (std::string& arg : args) arg_pointers.push_back(arg.data());
  const std::vector<char*> positional = absl::ParseCommandLine(
      static_cast<int>(arg_pointers.size()), arg_pointers.data());

  if (positional.size() != 2) {
    std::cerr << "tandem: " << UsageMessage() << "\n";
    return 2;
  }
  const absl::string_view name = positional[1];
  // The bench takes its stop signals itself, to remove its emulated link
  // first (bench_command.cc): block them before any thread starts.
  if (name == "bench") tandem::BlockTerminationSignals();
  for (const Subcommand& command : kSubcommands) {
    if (name != command.name) continue;
    const absl::Status status = command.run();
    if (!status.ok()) {
      std::cerr << "tandem " << name << ": " << status << "\n";
      return 1;
    }
    return 0;
  }
  std::cerr << "tandem: unknown command '" << name << "'\n\n"
            << UsageMessage() << "\n";
  return 2;
}
