#include "tools/bench_daemons.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/daemon.h"
#include "common/status_macros.h"
#include "models/fashion_mnist.h"

namespace tandem {

namespace fs = std::filesystem;

namespace {

constexpr char kNet[] = "tbench";
constexpr char kNetNumber[] = "77";
constexpr char kCloudAddress[] = "10.213.77.2";

// The link. tbf lets a full bucket through at line rate and its bucket must
// hold a whole packet, so the pair runs at a small MTU: no message escapes
// the rate by more than about one packet.
constexpr int kMtu = 576;

// tbf's bucket for `mbit`: 8 ms of traffic, at least one packet and its
// Ethernet header. A fixed 32 KB bucket let small tensors through at line
// rate until a larger transfer drained it: two regimes at one setting, which
// made every estimate of the link swing.
double BurstBytes(double mbit) {
  return std::max(kMtu + 38.0, mbit * 1e6 / 8 * 0.008);
}

// The daemons log warnings and errors only, unless TANDEM_BENCH_LOG_LEVEL
// asks for more (0: INFO, e.g. every plan switch and every switch refused).
std::map<std::string, std::string> DaemonEnv() {
  const char* level = std::getenv("TANDEM_BENCH_LOG_LEVEL");
  return {{"TANDEM_MIN_LOG_LEVEL", level != nullptr ? level : "1"}};
}

}  // namespace

fs::path BuildDir() {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::current_path() : self.parent_path().parent_path();
}

fs::path SourceDir() {
  // build/CMakeCache.txt names the source directory.
  std::ifstream cache(BuildDir() / "CMakeCache.txt");
  std::string line;
  const std::string key = "tandem_SOURCE_DIR:STATIC=";
  while (std::getline(cache, line)) {
    if (line.rfind(key, 0) == 0) return line.substr(key.size());
  }
  return fs::current_path();
}

absl::Status RunChecked(const std::vector<std::string>& argv) {
  ASSIGN_OR_RETURN(int code, RunToCompletion(argv));
  if (code != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(argv[1], " ", argv[2], " exited ", code));
  }
  return absl::OkStatus();
}

std::vector<std::string> RateArgs(const std::string& linkemu, double mbit) {
  return {"bash",
          linkemu,
          "rate",
          kNet,
          absl::StrCat(mbit),
          absl::StrFormat("%.2f", BurstBytes(mbit) / 1024)};
}

absl::Duration RefillTime(double mbit) {
  return absl::Seconds(BurstBytes(mbit) * 8 / (mbit * 1e6));
}

int64_t LinkUnackedBytes(pid_t edge_pid) {
  int64_t total = 0;
  bool read = false;
  for (const char* table : {"tcp", "tcp6"}) {
    std::ifstream sockets(absl::StrCat("/proc/", edge_pid, "/net/", table));
    std::string line;
    std::getline(sockets, line);  // The header.
    while (std::getline(sockets, line)) {
      // sl local_address rem_address st tx_queue:rx_queue ...
      std::istringstream fields(line);
      std::string sl, local, remote, state, queues;
      if (!(fields >> sl >> local >> remote >> state >> queues)) continue;
      read = true;
      const size_t colon = queues.find(':');
      total += std::strtoll(queues.substr(0, colon).c_str(), nullptr, 16);
    }
  }
  return read ? total : -1;
}

absl::Duration WaitForQuietLink(pid_t edge_pid, double mbit,
                                absl::Duration limit) {
  const absl::Duration packet_time =
      absl::Seconds((kMtu + 38.0) * 8 / (mbit * 1e6));
  const absl::Duration poll = std::max(absl::Milliseconds(1), packet_time);
  const absl::Time start = absl::Now();
  const int64_t unacked = LinkUnackedBytes(edge_pid);
  if (unacked <= 0) return absl::ZeroDuration();  // Quiet, or unreadable.
  // Waiting out part of a drain would not spare the next request.
  if (absl::Seconds(unacked * 8 / (mbit * 1e6)) > limit)
    return absl::ZeroDuration();
  while (absl::Now() - start < limit && LinkUnackedBytes(edge_pid) > 0)
    absl::SleepFor(poll);
  return absl::Now() - start;
}

fs::path WorkDir() {
  return fs::temp_directory_path() / absl::StrCat("tandem_bench_", getpid());
}

// The two namespaces joined by the link (a leftover pair is removed first).
absl::Status LinkUp(const std::string& linkemu, const fs::path& work) {
  fs::create_directories(work);
  (void)RunToCompletion({"bash", linkemu, "down", kNet});
  return RunChecked({"bash", linkemu, "up", kNet, "--net", kNetNumber, "--mtu",
                     absl::StrCat(kMtu)});
}

void LinkDown(const std::string& linkemu, const fs::path& work) {
  (void)RunToCompletion({"bash", linkemu, "down", kNet});
  std::error_code ignored;
  fs::remove_all(work, ignored);
}

// tandem-cloud in the cloud namespace, on core 1, serving on kCloudAddress.
// A bench stopped by SIGTERM, SIGINT or SIGHUP (blocked by main(), see
// tandem_main.cc) removes the emulated link before it exits; the daemons it
// started die with it (Subprocess's parent-death signal). One killed by
// SIGKILL leaves the namespaces to the next bench, whose LinkUp removes them.
void TearDownOnSignal(const std::string& linkemu) {
  std::thread([linkemu] {
    const int signal = WaitForTerminationSignal();
    std::cerr << "bench: signal " << signal
              << ": removing the emulated link and stopping\n";
    (void)RunToCompletion({"bash", linkemu, "down", kNet}, absl::Seconds(30));
    _exit(128 + signal);
  }).detach();
}

absl::StatusOr<Subprocess> StartCloud(const std::string& linkemu,
                                      const std::string& repository,
                                      const fs::path& work) {
  ASSIGN_OR_RETURN(
      Subprocess cloud,
      Subprocess::Start(
          {"bash", linkemu, "exec", kNet, "cloud", "taskset", "-c", "1",
           (BuildDir() / "cloud/tandem-cloud").string(),
           absl::StrCat("--listen=", kCloudAddress, ":8500"),
           "--model_repository=" + repository, "--worker_threads=1",
           "--port_file=" + (work / "cloud.port").string()},
          DaemonEnv(), /*own_group=*/true));
  RETURN_IF_ERROR(
      WaitForPortFile((work / "cloud.port").string(), cloud, absl::Minutes(5))
          .status());
  return cloud;
}

// tandem-edge in the edge namespace, serving on unix:<work>/edge.sock.
// `name` names its socket and port file (<work>/<name>.sock, .port).
absl::StatusOr<Subprocess> StartEdge(const std::string& linkemu,
                                     const std::string& repository,
                                     const std::string& config_path,
                                     double slowdown, bool with_cloud,
                                     const fs::path& work, int workers,
                                     const std::string& name) {
  // A port file or socket of an earlier daemon would pass for this one's.
  std::error_code ignored;
  const fs::path port_file = work / (name + ".port");
  const fs::path socket = work / (name + ".sock");
  fs::remove(port_file, ignored);
  fs::remove(socket, ignored);
  // The edge has core 0 to itself and is made slower by dilation (every
  // model call keeps the worker busy for (s - 1) times its own CPU time), a
  // slowdown that holds at every model size; the cloud has core 1.
  std::vector<std::string> edge_argv = {"taskset", "-c",   "0",  "bash",
                                        linkemu,   "exec", kNet, "edge"};
  for (std::string flag :
       {(BuildDir() / "edge/tandem-edge").string(),
        "--listen=unix:" + socket.string() + ",127.0.0.1:0",
        "--model_repository=" + repository, "--config=" + config_path,
        absl::StrCat("--worker_threads=", workers),
        absl::StrCat("--emulated_slowdown=", slowdown),
        "--port_file=" + port_file.string()}) {
    edge_argv.push_back(std::move(flag));
  }
  if (with_cloud)
    edge_argv.push_back(absl::StrCat("--cloud=", kCloudAddress, ":8500"));
  ASSIGN_OR_RETURN(Subprocess edge,
                   Subprocess::Start(edge_argv, DaemonEnv(), true));
  RETURN_IF_ERROR(
      WaitForPortFile(port_file.string(), edge, absl::Minutes(10)).status());
  return edge;
}

absl::StatusOr<Inputs> MakeInputs(const ModelInfo& model) {
  Inputs inputs;
  inputs.shape = model.input_shape;
  inputs.shape[0] = 1;
  int64_t pixels = 1;
  for (size_t i = 1; i < inputs.shape.size(); ++i) pixels *= inputs.shape[i];
  if (pixels == 28 * 28) {
    ASSIGN_OR_RETURN(ImageDataset data,
                     ReadFashionMnist(kDefaultFashionMnistDir,
                                      FashionMnistSplit::kTest, 2000));
    for (int64_t i = 0; i < data.count; ++i) {
      inputs.images.emplace_back(data.image(i), data.image(i) + pixels);
      inputs.labels.push_back(data.labels[i]);
    }
    return inputs;
  }
  std::mt19937 rng(0);
  for (int i = 0; i < 16; ++i) {
    std::vector<uint8_t> image(pixels);
    for (uint8_t& p : image) p = static_cast<uint8_t>(rng());
    inputs.images.push_back(std::move(image));
  }
  return inputs;
}

absl::StatusOr<std::unique_ptr<Client>> ConnectEdge(const fs::path& work) {
  ClientOptions options;
  options.connect_timeout = absl::Seconds(30);
  return Client::Connect("unix:" + (work / "edge.sock").string(), options);
}

}  // namespace tandem
