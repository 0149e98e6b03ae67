// Child processes: start a daemon, read the port it wrote, signal it, wait
// for it. Used by fault tests and by the benchmarks that run the daemons.
// Not thread-safe; one owner per process.
#ifndef TANDEM_COMMON_SUBPROCESS_H_
#define TANDEM_COMMON_SUBPROCESS_H_

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace tandem {

class Subprocess {
 public:
  // Starts `argv[0]` with `argv` and extra environment variables. Its output
  // goes to this process's stderr. With `own_group` (daemons a benchmark
  // starts) the child leads a new process group, Signal reaches everything
  // it started, and it gets SIGKILL when the thread that started it ends —
  // when this process dies, however it dies (the kernel's parent-death
  // signal, which survives the exec chain of wrappers such as
  // `ip netns exec` and `taskset`). Start such children from a thread that
  // outlives them (the main thread).
  static absl::StatusOr<Subprocess> Start(
      const std::vector<std::string>& argv,
      const std::map<std::string, std::string>& env = {},
      bool own_group = false);
  Subprocess(Subprocess&& other) noexcept;
  Subprocess& operator=(Subprocess&&) = delete;
  ~Subprocess();  // Kills (SIGKILL) and reaps the child if still running.

  pid_t pid() const { return pid_; }
  void Signal(int signal);
  // Waits up to `timeout` for the child to exit; returns its exit status
  // (128 + signal when killed) or DEADLINE_EXCEEDED.
  absl::StatusOr<int> Wait(absl::Duration timeout);

 private:
  Subprocess(pid_t pid, bool group) : pid_(pid), group_(group) {}
  pid_t pid_ = -1;
  bool group_ = false;
};

// Runs `argv` to completion; its exit status (128 + signal when killed).
absl::StatusOr<int> RunToCompletion(const std::vector<std::string>& argv,
                                    absl::Duration timeout = absl::Minutes(5));

// Polls for `path` (a port file) until it holds a number or the child dies
// or `timeout` passes.
absl::StatusOr<int> WaitForPortFile(const std::string& path, Subprocess& child,
                                    absl::Duration timeout);

// What a running process holds, from /proc (zeros when it cannot be read).
struct ProcessUsage {
  double rss_mib = 0;  // Resident set (VmRSS).
  int open_fds = 0;    // Entries of /proc/PID/fd.
  int threads = 0;
};
ProcessUsage ReadProcessUsage(pid_t pid);

// A fresh directory under the system temp dir, named after the test.
std::string MakeTempDir(const std::string& tag);

}  // namespace tandem

#endif  // TANDEM_COMMON_SUBPROCESS_H_
