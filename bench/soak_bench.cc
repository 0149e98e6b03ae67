// Soak: many SDK clients for a long time through a real tandem-edge and
// tandem-cloud. Does anything leak or fail when nothing goes wrong?
//
//   build/bench/soak_bench [--clients=64] [--requests_per_client=20000]
//       [--model=fmnist_branchy] [--sample_s=5] [--out_dir=bench_out/soak]
//
// Every client has its own connection to the edge (a unix socket; the SDK's
// own_connection, as separate application processes would have) and sends
// its requests one after another: even-numbered ones split at block 1 and
// run to the final exit (the cloud answers them), odd-numbered ones with the
// agent's own plan (early exits on). Every --sample_s the resident memory,
// open file descriptors and threads of both daemons are read from /proc.
//
// Verdicts, after a warm-up (the first 10% of requests: allocator pools,
// connections and caches fill):
//   - errors: every failed request is unexpected and counted by its status;
//   - RSS flat: the peak of the second half of the samples after warm-up is
//     within max(5%, 8 MiB) of the peak of the first half, for each daemon
//     (a leak makes new highs; glibc's malloc trims and regrows between
//     bounds, which moves medians but not peaks); the medians of the first
//     and last tenths and the least-squares slope per 100k requests are
//     reported beside it;
//   - descriptors flat: the range after warm-up is at most 2, each daemon.
// Writes DIR/soak.json (also printed), DIR/soak_samples.csv and, with
// matplotlib, DIR/soak.png. Progress goes to stderr.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/stats.h"
#include "common/status_macros.h"
#include "common/subprocess.h"
#include "models/fashion_mnist.h"
#include "tandem/client.h"

ABSL_FLAG(int, clients, 64, "Concurrent SDK clients, one connection each");
ABSL_FLAG(int, requests_per_client, 20000, "Requests each client sends");
ABSL_FLAG(std::string, model, "fmnist_branchy", "Model (28x28 grey input)");
ABSL_FLAG(std::string, model_repository, "build/model_repository",
          "Model repository");
ABSL_FLAG(std::string, edge_binary, "",
          "tandem-edge (default: ../edge/tandem-edge next to this binary)");
ABSL_FLAG(std::string, cloud_binary, "",
          "tandem-cloud (default: ../cloud/tandem-cloud next to this binary)");
ABSL_FLAG(double, sample_s, 5, "Seconds between samples of the daemons");
ABSL_FLAG(int, deadline_ms, 10000, "Per-request deadline");
ABSL_FLAG(std::string, out_dir, "bench_out/soak", "Where the results go");

namespace tandem {
namespace {

namespace fs = std::filesystem;

constexpr double kWarmUpShare = 0.10;
constexpr double kRssTolerance = 0.05;
constexpr double kRssToleranceMib = 8;
constexpr int kFdTolerance = 2;

fs::path SelfDir() { return fs::read_symlink("/proc/self/exe").parent_path(); }

std::string BinaryFlag(const std::string& flag, const char* relative) {
  return flag.empty() ? (SelfDir().parent_path() / relative).string() : flag;
}

struct Sample {
  double seconds = 0;
  int64_t done = 0;  // Requests returned so far.
  ProcessUsage edge, cloud;
};

// Median of `values` (copied).
double MedianOf(std::vector<double> values) { return Percentile(values, 50); }

// Least-squares slope of y over x.
double Slope(const std::vector<double>& x, const std::vector<double>& y) {
  const size_t n = x.size();
  if (n < 2) return 0;
  double mx = 0, my = 0;
  for (size_t i = 0; i < n; ++i) {
    mx += x[i];
    my += y[i];
  }
  mx /= n;
  my /= n;
  double sxy = 0, sxx = 0;
  for (size_t i = 0; i < n; ++i) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) * (x[i] - mx);
  }
  return sxx == 0 ? 0 : sxy / sxx;
}

// The flatness verdict of one daemon over the samples after warm-up.
std::string Verdict(const std::string& name, const std::vector<Sample>& after,
                    ProcessUsage Sample::*daemon, bool* flat) {
  std::vector<double> done, rss;
  int fd_low = (after.front().*daemon).open_fds, fd_high = fd_low;
  int thread_low = (after.front().*daemon).threads;
  int thread_high = thread_low;
  for (const Sample& s : after) {
    done.push_back(static_cast<double>(s.done));
    rss.push_back((s.*daemon).rss_mib);
    fd_low = std::min(fd_low, (s.*daemon).open_fds);
    fd_high = std::max(fd_high, (s.*daemon).open_fds);
    thread_low = std::min(thread_low, (s.*daemon).threads);
    thread_high = std::max(thread_high, (s.*daemon).threads);
  }
  // A leak makes new highs; an allocator that trims and regrows between
  // bounds does not. The verdict compares peaks; the medians of the first and
  // last tenths are reported too.
  const size_t half = rss.size() / 2;
  const double first_peak = *std::max_element(rss.begin(), rss.begin() + half);
  const double last_peak = *std::max_element(rss.begin() + half, rss.end());
  const size_t tenth = std::max<size_t>(1, after.size() / 10);
  const double first =
      MedianOf(std::vector<double>(rss.begin(), rss.begin() + tenth));
  const double last =
      MedianOf(std::vector<double>(rss.end() - tenth, rss.end()));
  const double allowed = std::max(kRssTolerance * first_peak, kRssToleranceMib);
  const bool rss_flat = last_peak - first_peak <= allowed;
  const bool fds_flat = fd_high - fd_low <= kFdTolerance;
  *flat = *flat && rss_flat && fds_flat;
  return absl::StrFormat(
      "\"%s\": {\"rss_mib_peak_first_half\": %.1f, "
      "\"rss_mib_peak_second_half\": %.1f, \"rss_peak_growth_mib\": %.1f, "
      "\"rss_growth_allowed_mib\": %.1f, \"rss_mib_median_first_tenth\": "
      "%.1f, \"rss_mib_median_last_tenth\": %.1f, "
      "\"rss_mib_range\": [%.1f, %.1f], \"rss_mib_per_100k_requests\": %.3f, "
      "\"rss_flat\": %s, \"open_fds_range\": [%d, %d], \"fds_flat\": %s, "
      "\"threads_range\": [%d, %d]}",
      name, first_peak, last_peak, last_peak - first_peak, allowed, first, last,
      *std::min_element(rss.begin(), rss.end()),
      *std::max_element(rss.begin(), rss.end()), Slope(done, rss) * 1e5,
      rss_flat ? "true" : "false", fd_low, fd_high, fds_flat ? "true" : "false",
      thread_low, thread_high);
}

absl::Status Run() {
  const int clients = absl::GetFlag(FLAGS_clients);
  const int per_client = absl::GetFlag(FLAGS_requests_per_client);
  const std::string model = absl::GetFlag(FLAGS_model);
  if (clients < 1 || per_client < 1) {
    return absl::InvalidArgumentError(
        "--clients and --requests_per_client >= 1");
  }
  const fs::path out_dir = absl::GetFlag(FLAGS_out_dir);
  fs::create_directories(out_dir);
  const std::string dir = MakeTempDir("soak");
  const std::string repository = absl::GetFlag(FLAGS_model_repository);

  ASSIGN_OR_RETURN(
      Subprocess cloud,
      Subprocess::Start(
          {BinaryFlag(absl::GetFlag(FLAGS_cloud_binary), "cloud/tandem-cloud"),
           "--listen=127.0.0.1:0", "--model_repository=" + repository,
           "--port_file=" + dir + "/cloud.port"},
          {{"TANDEM_MIN_LOG_LEVEL", "1"}}, /*own_group=*/true));
  ASSIGN_OR_RETURN(int cloud_port, WaitForPortFile(dir + "/cloud.port", cloud,
                                                   absl::Minutes(5)));
  ASSIGN_OR_RETURN(
      Subprocess edge,
      Subprocess::Start(
          {BinaryFlag(absl::GetFlag(FLAGS_edge_binary), "edge/tandem-edge"),
           "--listen=unix:" + dir + "/edge.sock,127.0.0.1:0",
           absl::StrCat("--cloud=127.0.0.1:", cloud_port),
           "--model_repository=" + repository,
           "--port_file=" + dir + "/edge.port"},
          {{"TANDEM_MIN_LOG_LEVEL", "1"}}, /*own_group=*/true));
  RETURN_IF_ERROR(
      WaitForPortFile(dir + "/edge.port", edge, absl::Minutes(5)).status());

  ASSIGN_OR_RETURN(ImageDataset data,
                   ReadFashionMnist(kDefaultFashionMnistDir,
                                    FashionMnistSplit::kTest, 1000));
  const absl::Duration deadline =
      absl::Milliseconds(absl::GetFlag(FLAGS_deadline_ms));
  std::atomic<int64_t> done{0}, failed{0}, by_cloud{0}, early_exits{0};
  absl::Mutex mu;
  std::map<std::string, int64_t> errors;  // Guarded by mu.
  std::vector<std::vector<double>> latencies(clients);
  // Clients stay connected until the last sample is taken.
  absl::Notification sampled_to_the_end;
  std::vector<std::thread> threads;
  const absl::Time start = absl::Now();
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      std::vector<double>& mine = latencies[c];
      mine.reserve(per_client);
      ClientOptions connection;
      connection.own_connection = true;
      absl::StatusOr<std::unique_ptr<Client>> client =
          Client::Connect("unix:" + dir + "/edge.sock", connection);
      for (int r = 0; r < per_client; ++r) {
        InferOptions options;
        options.deadline = deadline;
        if (r % 2 == 0) {
          options.split_point = 1;
          options.disable_early_exits = true;
        }
        const absl::Time sent = absl::Now();
        absl::StatusOr<InferResult> result =
            client.ok()
                ? (*client)->Infer(model,
                                   InputTensor::Pixels(
                                       {1, 1, 28, 28},
                                       data.image((c * 7919 + r) % data.count)),
                                   options)
                : absl::StatusOr<InferResult>(client.status());
        // A failure counts at its deadline.
        mine.push_back(absl::ToDoubleMilliseconds(
            result.ok() ? absl::Now() - sent : deadline));
        if (!result.ok()) {
          ++failed;
          absl::MutexLock lock(&mu);
          ++errors[result.status().ToString()];
        } else {
          if (result->answered_by == InferResult::Site::kCloud) ++by_cloud;
          if (result->answered_by == InferResult::Site::kEdge) ++early_exits;
        }
        ++done;
      }
      sampled_to_the_end.WaitForNotification();
    });
  }

  // Sample until every client is done.
  const int64_t total = static_cast<int64_t>(clients) * per_client;
  const absl::Duration every = absl::Seconds(absl::GetFlag(FLAGS_sample_s));
  std::vector<Sample> samples;
  for (int i = 0;; ++i) {
    Sample s;
    s.seconds = absl::ToDoubleSeconds(absl::Now() - start);
    s.done = done.load();
    s.edge = ReadProcessUsage(edge.pid());
    s.cloud = ReadProcessUsage(cloud.pid());
    samples.push_back(s);
    std::cerr << absl::StrFormat(
        "soak: %d/%d requests (%.1f%%), %.0f req/s, %d failed; edge RSS "
        "%.1f MiB, %d fds, %d threads; cloud RSS %.1f MiB, %d fds, %d "
        "threads\n",
        s.done, total, 100.0 * s.done / total,
        s.seconds > 0 ? s.done / s.seconds : 0.0, failed.load(), s.edge.rss_mib,
        s.edge.open_fds, s.edge.threads, s.cloud.rss_mib, s.cloud.open_fds,
        s.cloud.threads);
    if (s.done >= total) break;
    absl::SleepFor(start + every * (i + 1) - absl::Now());
  }
  sampled_to_the_end.Notify();
  for (std::thread& t : threads) t.join();
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);

  std::vector<double> all;
  all.reserve(total);
  for (const std::vector<double>& mine : latencies)
    all.insert(all.end(), mine.begin(), mine.end());
  const double p50 = Percentile(all, 50), p99 = Percentile(all, 99);

  std::vector<Sample> after;
  for (const Sample& s : samples) {
    if (s.done >= kWarmUpShare * total) after.push_back(s);
  }
  if (after.size() < 10) {
    return absl::FailedPreconditionError(
        absl::StrCat("only ", after.size(),
                     " samples after warm-up: lower --sample_s or "
                     "send more requests"));
  }
  bool flat = true;
  const std::string edge_verdict = Verdict("edge", after, &Sample::edge, &flat);
  const std::string cloud_verdict =
      Verdict("cloud", after, &Sample::cloud, &flat);
  std::vector<std::string> error_list;
  for (const auto& [status, count] : errors) {
    error_list.push_back(absl::StrFormat("{\"status\": \"%s\", \"count\": %d}",
                                         absl::CHexEscape(status), count));
  }
  const std::string json = absl::StrFormat(
      "{\"model\": \"%s\", \"clients\": %d, \"requests_per_client\": %d, "
      "\"requests\": %d, \"answered\": %d, \"unexpected_errors\": %d, "
      "\"errors\": [%s], \"answered_by_cloud\": %d, \"answered_on_edge\": %d, "
      "\"seconds\": %.1f, \"throughput_rps\": %.1f, \"p50_ms\": %.3f, "
      "\"p99_ms\": %.3f, \"warm_up_requests\": %d, \"samples\": %d, "
      "\"daemons\": {%s, %s}, \"flat\": %s, \"passed\": %s}\n",
      model, clients, per_client, total, total - failed.load(), failed.load(),
      absl::StrJoin(error_list, ", "), by_cloud.load(), early_exits.load(),
      seconds, total / seconds, p50, p99,
      static_cast<int64_t>(kWarmUpShare * total), samples.size(), edge_verdict,
      cloud_verdict, flat ? "true" : "false",
      flat && failed.load() == 0 ? "true" : "false");
  std::ofstream(out_dir / "soak.json") << json;
  std::cout << json;

  std::ofstream csv(out_dir / "soak_samples.csv");
  csv << "seconds,requests_done,edge_rss_mib,edge_fds,edge_threads,"
         "cloud_rss_mib,cloud_fds,cloud_threads\n";
  for (const Sample& s : samples) {
    csv << absl::StrFormat("%.1f,%d,%.1f,%d,%d,%.1f,%d,%d\n", s.seconds, s.done,
                           s.edge.rss_mib, s.edge.open_fds, s.edge.threads,
                           s.cloud.rss_mib, s.cloud.open_fds, s.cloud.threads);
  }
  csv.close();
  const std::string plot =
      std::string(TANDEM_SOURCE_DIR) + "/tools/plot_soak.py";
  if (std::system(absl::StrCat("/usr/bin/python3 ", plot, " ",
                               (out_dir / "soak_samples.csv").string(), " ",
                               (out_dir / "soak.png").string())
                      .c_str()) != 0) {
    std::cerr << "soak: no plot (matplotlib missing?)\n";
  }

  edge.Signal(SIGTERM);
  cloud.Signal(SIGTERM);
  (void)edge.Wait(absl::Seconds(30));
  (void)cloud.Wait(absl::Seconds(30));
  fs::remove_all(dir);
  return absl::OkStatus();
}

}  // namespace
}  // namespace tandem

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const absl::Status status = tandem::Run();
  if (!status.ok()) {
    std::cerr << "soak_bench: " << status << "\n";
    return 1;
  }
  return 0;
}
