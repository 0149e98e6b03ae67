// What the benches that run real daemons share: the build and source trees,
// the emulated link (tools/linkemu: two network namespaces joined by a
// shaped veth pair), `tandem-cloud` and `tandem-edge` started in them on a
// core each, and the inputs the benches send. Needs root for the link.
//
//   const fs::path work = WorkDir();
//   RETURN_IF_ERROR(LinkUp(linkemu, work));
//   RETURN_IF_ERROR(RunChecked(RateArgs(linkemu, 18.88)));
//   ASSIGN_OR_RETURN(Subprocess cloud, StartCloud(linkemu, repository, work));
//   ASSIGN_OR_RETURN(Subprocess edge, StartEdge(linkemu, repository, config,
//                                               /*slowdown=*/4, true, work));
//   ASSIGN_OR_RETURN(std::unique_ptr<Client> client, ConnectEdge(work));
#ifndef TANDEM_TOOLS_BENCH_DAEMONS_H_
#define TANDEM_TOOLS_BENCH_DAEMONS_H_

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/subprocess.h"
#include "tandem/client.h"

namespace tandem {

// The build tree the running `tandem` binary belongs to, and the source tree
// its CMakeCache.txt names.
std::filesystem::path BuildDir();
std::filesystem::path SourceDir();

// Runs argv to completion; FAILED_PRECONDITION naming argv[1] and argv[2]
// when it exits non-zero.
absl::Status RunChecked(const std::vector<std::string>& argv);

// `linkemu rate` arguments that shape the link to `mbit`.
std::vector<std::string> RateArgs(const std::string& linkemu, double mbit);

// How long an idle link at `mbit` takes to refill its bucket: the trace
// bench waits this long after every request that used the link, so each
// request starts on the same rested link whatever policy ran before it.
absl::Duration RefillTime(double mbit);

// Bytes the edge has written to its TCP sockets that the other end has not
// acknowledged yet (the tx_queue column of /proc/`edge_pid`/net/tcp and
// tcp6; `edge_pid`: a process in the edge's namespace, e.g. the edge
// daemon), or -1 when they cannot be read. Nothing unacknowledged means
// nothing left in the socket or the shaper's queue.
int64_t LinkUnackedBytes(pid_t edge_pid);

// Waits, at most `limit`, until LinkUnackedBytes is 0: a transfer cut off
// at its deadline, an offload the agent cut off and finished on the edge,
// or the agent's own bandwidth probe cut off at its deadline leaves bytes in
// the socket and the shaper's queue, and they would drain into the next
// request's transfer. Does not wait when those bytes need longer than
// `limit` at `mbit`. Returns how long it waited.
absl::Duration WaitForQuietLink(pid_t edge_pid, double mbit,
                                absl::Duration limit);

// Where the daemons' port files, socket and config go (per bench process).
std::filesystem::path WorkDir();

// The two namespaces joined by the link (a leftover pair is removed first);
// LinkDown removes them and `work`.
absl::Status LinkUp(const std::string& linkemu,
                    const std::filesystem::path& work);
void LinkDown(const std::string& linkemu, const std::filesystem::path& work);

// On SIGTERM, SIGINT or SIGHUP (blocked by main(), see tandem_main.cc) the
// link is removed and the process exits; the daemons it started die with it
// (Subprocess's parent-death signal). A bench killed by SIGKILL leaves the
// namespaces to the next bench, whose LinkUp removes them.
void TearDownOnSignal(const std::string& linkemu);

// tandem-cloud in the cloud namespace on core 1, one worker, listening on
// the link's cloud address; returns once its port file is written.
absl::StatusOr<Subprocess> StartCloud(const std::string& linkemu,
                                      const std::string& repository,
                                      const std::filesystem::path& work);

// tandem-edge in the edge namespace on core 0, emulated `slowdown` times
// slower, serving on unix:<work>/<name>.sock (and loopback TCP); with
// `with_cloud` its cloud is StartCloud's. Returns once its port file is
// written.
absl::StatusOr<Subprocess> StartEdge(const std::string& linkemu,
                                     const std::string& repository,
                                     const std::string& config_path,
                                     double slowdown, bool with_cloud,
                                     const std::filesystem::path& work,
                                     int workers = 1,
                                     const std::string& name = "edge");

// An SDK client of StartEdge's default daemon (its unix socket).
absl::StatusOr<std::unique_ptr<Client>> ConnectEdge(
    const std::filesystem::path& work);

// What the benches send a model: the Fashion-MNIST test set for 28×28
// inputs, seeded noise for others.
struct Inputs {
  std::vector<int64_t> shape;
  std::vector<std::vector<uint8_t>> images;
  std::vector<int> labels;  // Empty without labels.
};
absl::StatusOr<Inputs> MakeInputs(const ModelInfo& model);

}  // namespace tandem

#endif  // TANDEM_TOOLS_BENCH_DAEMONS_H_
