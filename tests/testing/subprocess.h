// Real child processes for fault tests: start a daemon, read the port it
// wrote, kill it hard. Not thread-safe; one owner per process.
#ifndef TANDEM_TESTS_TESTING_SUBPROCESS_H_
#define TANDEM_TESTS_TESTING_SUBPROCESS_H_

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace tandem {
namespace testing {

class Subprocess {
 public:
  // Starts `argv[0]` with `argv` and extra environment variables. Its output
  // goes to this process's stderr.
  static absl::StatusOr<Subprocess> Start(const std::vector<std::string>& argv,
                                          const std::map<std::string, std::string>& env = {});
  Subprocess(Subprocess&& other) noexcept;
  Subprocess& operator=(Subprocess&&) = delete;
  ~Subprocess();  // Kills (SIGKILL) and reaps the child if still running.

  pid_t pid() const { return pid_; }
  void Signal(int signal);
  // Waits up to `timeout` for the child to exit; returns its exit status
  // (128 + signal when killed) or DEADLINE_EXCEEDED.
  absl::StatusOr<int> Wait(absl::Duration timeout);

 private:
  explicit Subprocess(pid_t pid) : pid_(pid) {}
  pid_t pid_ = -1;
};

// Polls for `path` (a port file) until it holds a number or the child dies
// or `timeout` passes.
absl::StatusOr<int> WaitForPortFile(const std::string& path, Subprocess& child,
                                    absl::Duration timeout);

// A fresh directory under the system temp dir, named after the test.
std::string MakeTempDir(const std::string& tag);

}  // namespace testing
}  // namespace tandem

#endif  // TANDEM_TESTS_TESTING_SUBPROCESS_H_
