// Load on the cloud server in perf_analyzer's manner: a closed-loop
// concurrency sweep of ContinueRequests (a model's tail, from --start_block)
// against a real tandem-cloud, with dynamic batching off and on, and the
// ceiling the same tail reaches offline, batch by batch, in a tight loop.
//
//   build/bench/load_bench [--models=fmnist_branchy,camera_branchy]
//       [--concurrency=1,2,4,8,16,32,64] [--window_s=2] [--out_dir=DIR]
//
// The server runs on CPU 1 with one model instance; the clients (one thread
// per concurrent request) on CPU 0. Each point is measured in windows of
// --window_s until two in a row agree within 10% on throughput (at most 4);
// the last window is reported: throughput, p50/p90/p95/p99 latency, the
// server's queue and compute time per request and the batch sizes formed.
// A failed request counts in the latencies at its deadline.
// Writes DIR/load_bench.json (also printed), DIR/load_sweep.csv and, with
// matplotlib, DIR/load_bench.png.
#include <sched.h>
#include <signal.h>
#include <torch/torch.h>

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
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "common/grpc_status.h"
#include "common/stats.h"
#include "common/status_macros.h"
#include "common/subprocess.h"
#include "grpcpp/grpcpp.h"
#include "models/block_runner.h"
#include "models/model_repository.h"
#include "models/tensor_codec.h"
#include "tandem/v1/cloud_service.grpc.pb.h"

ABSL_FLAG(std::vector<std::string>, models,
          std::vector<std::string>({"fmnist_branchy", "camera_branchy"}),
          "Models whose tails are served");
ABSL_FLAG(std::string, model_repository, "build/model_repository",
          "Model repository");
ABSL_FLAG(int, start_block, 1, "The tail starts at this block");
ABSL_FLAG(std::vector<std::string>, concurrency,
          std::vector<std::string>({"1", "2", "4", "8", "16", "32", "64"}),
          "Concurrent requests (closed loop)");
ABSL_FLAG(double, window_s, 2, "Measurement window, seconds");
ABSL_FLAG(int, max_batch_size, 16, "Batching on: the server's max_batch_size");
ABSL_FLAG(int, max_queue_delay_us, 2000,
          "Batching on: the server's max_queue_delay_microseconds");
ABSL_FLAG(int, deadline_ms, 5000, "Per-request deadline");
ABSL_FLAG(std::string, cloud_binary, "",
          "tandem-cloud (default: ../cloud/tandem-cloud next to this binary)");
ABSL_FLAG(std::string, out_dir, "bench_out/load", "Where the results go");
ABSL_FLAG(int, soak_s, 0,
          "Instead of the sweep: serve the first model's tail at "
          "--soak_concurrency for this many seconds, batching on, sampling "
          "the server's resident memory (soak.json)");
ABSL_FLAG(int, soak_concurrency, 16, "Soak: concurrent requests");

namespace tandem {
namespace {

namespace fs = std::filesystem;
using tandem::v1::ContinueRequest;
using tandem::v1::ContinueResponse;

constexpr double kStable = 0.10;  // Windows agreeing this closely are stable.
constexpr int kMaxWindows = 4;
constexpr int kCloudCpu = 1, kClientCpu = 0;

void PinTo(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  (void)sched_setaffinity(0, sizeof(set), &set);
}

fs::path SelfDir() { return fs::read_symlink("/proc/self/exe").parent_path(); }

// One point of the sweep.
struct Point {
  int concurrency = 0;
  int requests = 0, failed = 0;
  double throughput_rps = 0;
  double p50_ms = 0, p90_ms = 0, p95_ms = 0, p99_ms = 0;
  double queue_us = 0, compute_us = 0;  // Server-side means per request.
  double batch_size = 0;                // Mean batch a request ran in.
  int windows = 0;
};

// One request of the closed loop.
struct Record {
  absl::Time end;
  double latency_ms = 0;
  bool ok = false;
  double queue_us = 0, compute_us = 0;
  int batch_size = 0;
};

// The figures of the requests that completed in [from, to).
Point Summarize(const std::vector<Record>& records, absl::Time from,
                absl::Time to, int concurrency) {
  std::vector<double> latencies;
  double queue_us = 0, compute_us = 0, batch = 0;
  int ok = 0, failed = 0;
  for (const Record& r : records) {
    if (r.end < from || r.end >= to) continue;
    latencies.push_back(r.latency_ms);
    if (!r.ok) {
      ++failed;
      continue;
    }
    ++ok;
    queue_us += r.queue_us;
    compute_us += r.compute_us;
    batch += r.batch_size;
  }
  Point point;
  point.concurrency = concurrency;
  point.requests = ok + failed;
  point.failed = failed;
  point.throughput_rps = ok / absl::ToDoubleSeconds(to - from);
  point.p50_ms = Percentile(latencies, 50);
  point.p90_ms = Percentile(latencies, 90);
  point.p95_ms = Percentile(latencies, 95);
  point.p99_ms = Percentile(latencies, 99);
  if (ok > 0) {
    point.queue_us = queue_us / ok;
    point.compute_us = compute_us / ok;
    point.batch_size = batch / ok;
  }
  return point;
}

// `concurrency` threads send `request` in a closed loop, without pause,
// while the load is measured in consecutive windows of --window_s (after a
// quarter window of warm-up) until two agree within kStable on throughput.
// Only requests that completed inside a window count in it; a failure counts
// at its deadline.
Point MeasurePoint(const std::shared_ptr<grpc::Channel>& channel,
                   const ContinueRequest& request, int concurrency) {
  const absl::Duration window = absl::Seconds(absl::GetFlag(FLAGS_window_s));
  const absl::Duration deadline =
      absl::Milliseconds(absl::GetFlag(FLAGS_deadline_ms));
  absl::Mutex mu;
  std::vector<Record> records;
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int c = 0; c < concurrency; ++c) {
    threads.emplace_back([&, c] {
      auto stub = tandem::v1::CloudService::NewStub(channel);
      ContinueRequest mine = request;
      for (int i = 0; !stop.load(); ++i) {
        mine.set_id(absl::StrCat(c, "-", i));
        grpc::ClientContext context;
        context.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
        ContinueResponse response;
        const absl::Time start = absl::Now();
        const grpc::Status status = stub->Continue(&context, mine, &response);
        Record record;
        record.end = absl::Now();
        record.ok = status.ok();
        record.latency_ms = absl::ToDoubleMilliseconds(
            status.ok() ? record.end - start : deadline);
        record.queue_us = response.queue_us();
        record.compute_us = response.compute_us();
        record.batch_size = response.batch_size();
        absl::MutexLock lock(&mu);
        records.push_back(record);
      }
    });
  }
  absl::Time from = absl::Now() + window / 4;
  absl::SleepFor(window / 4);
  Point last;
  int windows = 0;
  while (windows < kMaxWindows) {
    absl::SleepFor(window);
    const absl::Time to = from + window;
    Point next;
    {
      absl::MutexLock lock(&mu);
      next = Summarize(records, from, to, concurrency);
    }
    ++windows;
    const bool stable =
        windows > 1 &&
        std::abs(last.throughput_rps - next.throughput_rps) <=
            kStable * std::max(last.throughput_rps, next.throughput_rps);
    last = next;
    from = to;
    if (stable) break;
  }
  stop = true;
  for (std::thread& t : threads) t.join();
  last.windows = windows;
  return last;
}

// Rows per second of the tail run offline at each batch size 1..max.
absl::StatusOr<std::vector<double>> Ceiling(const ProgressiveModel& model,
                                            const at::Tensor& row, int begin,
                                            int max_batch) {
  std::vector<double> rows_per_s;
  for (int b = 1; b <= max_batch; ++b) {
    std::vector<int64_t> repeats(row.dim(), 1);
    repeats[0] = b;
    const at::Tensor x = row.repeat(repeats);
    const std::vector<ExitThresholds> thresholds(b);
    const std::vector<absl::Time> deadlines(b, absl::InfiniteFuture());
    RETURN_IF_ERROR(
        RunRowsWithExits(model, x, begin, thresholds, deadlines).status());
    int runs = 0;
    const absl::Time start = absl::Now();
    while (runs < 3 || absl::Now() - start < absl::Milliseconds(500)) {
      RETURN_IF_ERROR(
          RunRowsWithExits(model, x, begin, thresholds, deadlines).status());
      ++runs;
    }
    rows_per_s.push_back(runs * b / absl::ToDoubleSeconds(absl::Now() - start));
  }
  return rows_per_s;
}

absl::StatusOr<Subprocess> StartCloud(const std::string& repository,
                                      const fs::path& port_file,
                                      bool batching) {
  std::error_code ignored;
  fs::remove(port_file, ignored);
  const std::string binary =
      absl::GetFlag(FLAGS_cloud_binary).empty()
          ? (SelfDir().parent_path() / "cloud/tandem-cloud").string()
          : absl::GetFlag(FLAGS_cloud_binary);
  ASSIGN_OR_RETURN(
      Subprocess cloud,
      Subprocess::Start(
          {"taskset", "-c", std::to_string(kCloudCpu), binary,
           "--listen=127.0.0.1:0", "--model_repository=" + repository,
           "--worker_threads=1", "--intra_op_threads=1",
           "--max_queue_size=1024", "--port_file=" + port_file.string(),
           absl::StrCat("--max_batch_size=",
                        batching ? absl::GetFlag(FLAGS_max_batch_size) : 1),
           absl::StrCat(
               "--max_queue_delay_us=",
               batching ? absl::GetFlag(FLAGS_max_queue_delay_us) : 0)},
          {{"TANDEM_MIN_LOG_LEVEL", "1"}}, /*own_group=*/true));
  RETURN_IF_ERROR(
      WaitForPortFile(port_file.string(), cloud, absl::Minutes(5)).status());
  return cloud;
}

// A channel to the server on loopback `port`, for tensors up to 64 MiB.
std::shared_ptr<grpc::Channel> Channel(int port) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  args.SetMaxSendMessageSize(64 << 20);
  return grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port),
                                   grpc::InsecureChannelCredentials(), args);
}

// A long closed loop against one server, batching on: is its memory flat?
// Samples the server's RSS every 10 s; compares the last sample with the
// one after the first minute (allocator pools and caches warm up first).
absl::Status Soak(const std::string& repository_dir, const fs::path& out_dir,
                  const ContinueRequest& request) {
  const int seconds = absl::GetFlag(FLAGS_soak_s);
  const int concurrency = absl::GetFlag(FLAGS_soak_concurrency);
  ASSIGN_OR_RETURN(Subprocess cloud,
                   StartCloud(repository_dir, out_dir / "cloud.port", true));
  ASSIGN_OR_RETURN(int port, WaitForPortFile((out_dir / "cloud.port").string(),
                                             cloud, absl::Seconds(1)));
  auto channel = Channel(port);
  const absl::Duration deadline =
      absl::Milliseconds(absl::GetFlag(FLAGS_deadline_ms));
  std::atomic<bool> stop{false};
  std::atomic<int64_t> ok{0}, failed{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < concurrency; ++c) {
    threads.emplace_back([&] {
      auto stub = tandem::v1::CloudService::NewStub(channel);
      while (!stop.load()) {
        grpc::ClientContext context;
        context.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
        ContinueResponse response;
        if (stub->Continue(&context, request, &response).ok()) {
          ++ok;
        } else {
          ++failed;
        }
      }
    });
  }
  std::vector<std::pair<int, double>> samples;  // (second, MiB)
  const absl::Time start = absl::Now();
  for (int t = 0; t <= seconds; t += 10) {
    absl::SleepFor(start + absl::Seconds(t) - absl::Now());
    samples.push_back({t, ReadProcessUsage(cloud.pid()).rss_mib});
    std::cerr << absl::StrFormat(
        "soak: %d/%d s: RSS %.1f MiB, %d answered, %d failed\n", t, seconds,
        samples.back().second, ok.load(), failed.load());
  }
  stop = true;
  for (std::thread& t : threads) t.join();
  const double warm = samples[std::min<size_t>(6, samples.size() - 1)].second;
  double low = warm, high = warm;
  std::vector<std::string> points;
  for (const auto& [t, mib] : samples) {
    if (t >= 60) {
      low = std::min(low, mib);
      high = std::max(high, mib);
    }
    points.push_back(absl::StrFormat("[%d, %.1f]", t, mib));
  }
  const std::string json = absl::StrFormat(
      "{\"model\": \"%s\", \"seconds\": %d, \"concurrency\": %d, "
      "\"answered\": %d, \"failed\": %d, \"rss_mib_at_60s\": %.1f, "
      "\"rss_mib_last\": %.1f, \"rss_last_over_60s\": %.3f, "
      "\"rss_mib_range_after_60s\": [%.1f, %.1f], \"rss_mib\": [%s]}\n",
      request.model_name(), seconds, concurrency, ok.load(), failed.load(),
      warm, samples.back().second, samples.back().second / warm, low, high,
      absl::StrJoin(points, ", "));
  std::ofstream(out_dir / "soak.json") << json;
  std::cout << json;
  return absl::OkStatus();
}

std::string PointJson(const Point& p) {
  return absl::StrFormat(
      "{\"concurrency\": %d, \"throughput_rps\": %.1f, \"p50_ms\": %.3f, "
      "\"p90_ms\": %.3f, \"p95_ms\": %.3f, \"p99_ms\": %.3f, "
      "\"server_queue_us\": %.1f, \"server_compute_us\": %.1f, "
      "\"mean_batch_size\": %.2f, \"requests\": %d, \"failed\": %d, "
      "\"windows\": %d}",
      p.concurrency, p.throughput_rps, p.p50_ms, p.p90_ms, p.p95_ms, p.p99_ms,
      p.queue_us, p.compute_us, p.batch_size, p.requests, p.failed, p.windows);
}

const Point* At(const std::vector<Point>& sweep, int concurrency) {
  for (const Point& p : sweep) {
    if (p.concurrency == concurrency) return &p;
  }
  return nullptr;
}

absl::Status Main() {
  const std::string repository_dir = absl::GetFlag(FLAGS_model_repository);
  const fs::path out_dir = absl::GetFlag(FLAGS_out_dir);
  fs::create_directories(out_dir);
  std::vector<int> levels;
  for (const std::string& text : absl::GetFlag(FLAGS_concurrency)) {
    int c = 0;
    if (!absl::SimpleAtoi(text, &c) || c < 1 || c > 256)
      return absl::InvalidArgumentError("--concurrency: " + text);
    levels.push_back(c);
  }
  at::set_num_threads(1);
  ASSIGN_OR_RETURN(std::unique_ptr<ModelRepository> repository,
                   ModelRepository::Load(repository_dir, {}));
  const int begin = absl::GetFlag(FLAGS_start_block);
  const int max_batch = absl::GetFlag(FLAGS_max_batch_size);
  std::ofstream csv(out_dir / "load_sweep.csv");
  csv << "model,batching,concurrency,throughput_rps,p50_ms,p90_ms,p95_ms,"
         "p99_ms,server_queue_us,server_compute_us,mean_batch_size,requests,"
         "failed\n";
  std::vector<std::string> model_json;
  for (const std::string& name : absl::GetFlag(FLAGS_models)) {
    ASSIGN_OR_RETURN(const ProgressiveModel* model, repository->Get(name));
    if (begin < 0 || begin >= model->num_blocks())
      return absl::InvalidArgumentError("--start_block outside " + name);
    std::vector<int64_t> shape = {1};
    for (int64_t d : model->BlockInputShape(0)) shape.push_back(d);
    ASSIGN_OR_RETURN(at::Tensor row,
                     model->RunBlocks(torch::rand(shape), 0, begin));
    ContinueRequest request;
    request.set_model_name(name);
    request.set_start_block(begin);
    RETURN_IF_ERROR(EncodeTensor(row, {}, request.add_inputs(),
                                 request.add_raw_input_contents()));

    if (absl::GetFlag(FLAGS_soak_s) > 0) {
      return Soak(repository_dir, out_dir, request);
    }

    // The ceiling on the server's core, before the server starts.
    std::cerr << "load: " << name << ": offline ceiling, batch 1.." << max_batch
              << "\n";
    PinTo(kCloudCpu);
    ASSIGN_OR_RETURN(std::vector<double> ceiling,
                     Ceiling(*model, row, begin, max_batch));
    PinTo(kClientCpu);

    std::map<bool, std::vector<Point>> sweeps;
    for (bool batching : {false, true}) {
      ASSIGN_OR_RETURN(
          Subprocess cloud,
          StartCloud(repository_dir, out_dir / "cloud.port", batching));
      ASSIGN_OR_RETURN(int port,
                       WaitForPortFile((out_dir / "cloud.port").string(), cloud,
                                       absl::Seconds(1)));
      auto channel = Channel(port);
      for (int c : levels) {
        Point point = MeasurePoint(channel, request, c);
        std::cerr << absl::StrFormat(
            "load: %s batching %s concurrency %d: %.0f/s p50 %.2f ms p99 "
            "%.2f ms batch %.1f%s\n",
            name, batching ? "on " : "off", c, point.throughput_rps,
            point.p50_ms, point.p99_ms, point.batch_size,
            point.failed > 0 ? absl::StrCat(", ", point.failed, " failed")
                             : "");
        csv << absl::StrFormat(
            "%s,%s,%d,%.1f,%.3f,%.3f,%.3f,%.3f,%.1f,%.1f,"
            "%.2f,%d,%d\n",
            name, batching ? "on" : "off", c, point.throughput_rps,
            point.p50_ms, point.p90_ms, point.p95_ms, point.p99_ms,
            point.queue_us, point.compute_us, point.batch_size, point.requests,
            point.failed);
        sweeps[batching].push_back(point);
      }
      cloud.Signal(SIGTERM);
      (void)cloud.Wait(absl::Seconds(30));
    }

    // Targets, from the sweeps above.
    const Point* off16 = At(sweeps[false], 16);
    const Point* on16 = At(sweeps[true], 16);
    std::string speedup = "null", vs_ceiling = "null", formed = "null";
    if (off16 != nullptr && on16 != nullptr && off16->throughput_rps > 0) {
      speedup =
          absl::StrFormat("%.3f", on16->throughput_rps / off16->throughput_rps);
      const int b = std::clamp(static_cast<int>(std::lround(on16->batch_size)),
                               1, max_batch);
      formed = absl::StrCat(b);
      vs_ceiling =
          absl::StrFormat("%.3f", on16->throughput_rps / ceiling[b - 1]);
    }
    // The point whose throughput is nearest 80% of the peak (batching on).
    std::string tail = "null";
    double peak = 0;
    for (const Point& p : sweeps[true]) peak = std::max(peak, p.throughput_rps);
    const Point* near80 = nullptr;
    for (const Point& p : sweeps[true]) {
      if (near80 == nullptr ||
          std::abs(p.throughput_rps - 0.8 * peak) <
              std::abs(near80->throughput_rps - 0.8 * peak))
        near80 = &p;
    }
    if (near80 != nullptr && near80->p50_ms > 0) {
      tail =
          absl::StrFormat("{\"concurrency\": %d, \"value\": %.3f}",
                          near80->concurrency, near80->p99_ms / near80->p50_ms);
    }
    std::vector<std::string> off, on, ceil;
    for (const Point& p : sweeps[false]) off.push_back(PointJson(p));
    for (const Point& p : sweeps[true]) on.push_back(PointJson(p));
    for (int b = 1; b <= max_batch; ++b) {
      ceil.push_back(absl::StrFormat(
          "{\"batch_size\": %d, \"rows_per_s\": %.1f}", b, ceiling[b - 1]));
    }
    model_json.push_back(absl::StrFormat(
        "\"%s\": {\"start_block\": %d, \"targets\": "
        "{\"batching_speedup_at_16\": "
        "%s, \"batching_vs_ceiling_at_16\": %s, \"batch_size_formed_at_16\": "
        "%s, "
        "\"p99_over_p50_at_80pct\": %s, \"replica_scaling\": null}, "
        "\"batching_off\": [%s], \"batching_on\": [%s], \"ceiling\": [%s]}",
        name, begin, speedup, vs_ceiling, formed, tail,
        absl::StrJoin(off, ", "), absl::StrJoin(on, ", "),
        absl::StrJoin(ceil, ", ")));
  }
  csv.close();
  const std::string json = absl::StrFormat(
      "{\"server\": \"tandem-cloud on CPU %d, one model instance, "
      "intra-op threads 1\", \"clients\": \"one thread per concurrent request "
      "on CPU %d\", \"batching_on\": {\"max_batch_size\": %d, "
      "\"max_queue_delay_us\": %d}, \"window_s\": %g, \"replica_scaling_as\": "
      "\"not measured: three replicas each pinned to its own core, and the "
      "clients on another, need 4 cores; this machine has %d (replicas are "
      "tested for correctness in tests/integration/replicas_test.cc)\", "
      "\"models\": {%s}}\n",
      kCloudCpu, kClientCpu, max_batch, absl::GetFlag(FLAGS_max_queue_delay_us),
      absl::GetFlag(FLAGS_window_s), std::thread::hardware_concurrency(),
      absl::StrJoin(model_json, ", "));
  std::ofstream(out_dir / "load_bench.json") << json;
  std::cout << json;
  const fs::path plot = fs::path(TANDEM_SOURCE_DIR) / "tools/plot_load.py";
  ASSIGN_OR_RETURN(int plotted,
                   RunToCompletion({"/usr/bin/python3", plot.string(),
                                    (out_dir / "load_sweep.csv").string(),
                                    (out_dir / "load_bench.png").string()}));
  std::cerr << (plotted == 0
                    ? "load: plot in " + (out_dir / "load_bench.png").string()
                    : "load: plotting failed (matplotlib?)")
            << "\n";
  return absl::OkStatus();
}

}  // namespace
}  // namespace tandem

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const absl::Status status = tandem::Main();
  if (!status.ok()) {
    std::cerr << "load_bench: " << status << "\n";
    return 1;
  }
  return 0;
}
