#include "common/subprocess.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"

namespace tandem {

absl::StatusOr<Subprocess> Subprocess::Start(
    const std::vector<std::string>& argv,
    const std::map<std::string, std::string>& env, bool own_group) {
  if (argv.empty()) return absl::InvalidArgumentError("empty argv");
  std::vector<char*> args;
  for (const std::string& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0)
    return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  if (pid == 0) {
    // The child must not inherit the test's blocked signal mask.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    if (own_group) {
      setpgid(0, 0);
      // Dies with the parent; if the parent is already gone, now.
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(137);
    }
    dup2(STDERR_FILENO, STDOUT_FILENO);  // Our stdout is for results.
    for (const auto& [name, value] : env)
      setenv(name.c_str(), value.c_str(), 1);
    execvp(args[0], args.data());  // PATH lookup for bare names ("bash").
    _exit(127);
  }
  if (own_group) setpgid(pid, pid);  // Also here: no race with an early Signal.
  return Subprocess(pid, own_group);
}

Subprocess::Subprocess(Subprocess&& other) noexcept
    : pid_(other.pid_), group_(other.group_) {
  other.pid_ = -1;
}

Subprocess::~Subprocess() {
  if (pid_ > 0) {
    Signal(SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

void Subprocess::Signal(int signal) {
  if (pid_ > 0) kill(group_ ? -pid_ : pid_, signal);
}

absl::StatusOr<int> Subprocess::Wait(absl::Duration timeout) {
  if (pid_ <= 0) return absl::FailedPreconditionError("not running");
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    int status = 0;
    const pid_t done = waitpid(pid_, &status, WNOHANG);
    if (done == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (absl::Now() > deadline)
      return absl::DeadlineExceededError("child still running");
    absl::SleepFor(absl::Milliseconds(10));
  }
}

absl::StatusOr<int> RunToCompletion(const std::vector<std::string>& argv,
                                    absl::Duration timeout) {
  absl::StatusOr<Subprocess> child = Subprocess::Start(argv);
  if (!child.ok()) return child.status();
  return child->Wait(timeout);
}

absl::StatusOr<int> WaitForPortFile(const std::string& path, Subprocess& child,
                                    absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    std::ifstream in(path);
    int port = 0;
    if (in >> port && port > 0) return port;
    int ignored = 0;
    if (waitpid(child.pid(), &ignored, WNOHANG) == child.pid()) {
      return absl::UnavailableError(
          absl::StrCat("process exited before writing ", path));
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::DeadlineExceededError(absl::StrCat("no port in ", path));
}

ProcessUsage ReadProcessUsage(pid_t pid) {
  ProcessUsage usage;
  const std::string proc = absl::StrCat("/proc/", pid);
  std::ifstream status(proc + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      usage.rss_mib = std::strtod(line.c_str() + 6, nullptr) / 1024.0;
    } else if (line.rfind("Threads:", 0) == 0) {
      usage.threads =
          static_cast<int>(std::strtol(line.c_str() + 8, nullptr, 10));
    }
  }
  std::error_code error;
  for (std::filesystem::directory_iterator it(proc + "/fd", error), end;
       !error && it != end; it.increment(error)) {
    ++usage.open_fds;
  }
  return usage;
}

std::string MakeTempDir(const std::string& tag) {
  std::string pattern =
      (std::filesystem::temp_directory_path() / ("tandem_" + tag + "_XXXXXX"))
          .string();
  const char* dir = mkdtemp(pattern.data());
  return dir == nullptr ? "" : dir;
}

}  // namespace tandem
