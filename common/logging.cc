#include "common/logging.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace tandem {
namespace {

LogSeverity InitialSeverity() {
  const char* env = std::getenv("TANDEM_MIN_LOG_LEVEL");
  if (env == nullptr || env[0] < '0' || env[0] > '3' || env[1] != '\0') {
    return LogSeverity::kInfo;
  }
  return static_cast<LogSeverity>(env[0] - '0');
}

std::atomic<LogSeverity>& MinSeverityFlag() {
  static std::atomic<LogSeverity> flag(InitialSeverity());
  return flag;
}

const char* Basename(const char* path) {
  const char* slash = std::strrchr(path, '/');
  return slash == nullptr ? path : slash + 1;
}

}  // namespace

void SetMinLogSeverity(LogSeverity severity) { MinSeverityFlag() = severity; }
LogSeverity MinLogSeverity() { return MinSeverityFlag().load(); }

namespace logging_internal {

LogMessage::LogMessage(const char* file, int line, LogSeverity severity)
    : severity_(severity) {
  static constexpr char kLetters[] = {'I', 'W', 'E', 'F'};
  stream_ << kLetters[static_cast<int>(severity)]
          << absl::FormatTime("%Y%m%d %H:%M:%E6S", absl::Now(),
                              absl::LocalTimeZone())
          << ' ' << static_cast<long>(syscall(SYS_gettid)) << ' '
          << Basename(file) << ':' << line << "] ";
}

LogMessage::~LogMessage() {
  stream_ << '\n';
  const std::string line = stream_.str();
  // One write per line keeps concurrent lines whole.
  ssize_t ignored = write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
  if (severity_ == LogSeverity::kFatal) std::abort();
}

}  // namespace logging_internal
}  // namespace tandem
