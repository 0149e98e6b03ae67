// The one logging facade of the project. Lines go to stderr as
//   I20261126 09:40:01.123456 12345 file.cc:42] message
// (glog's layout, so log tools that read LibTorch's glog lines read ours).
// Thread-safe: each line is written with a single write().
//
//   TANDEM_LOG(INFO) << "loaded " << name;
//   TANDEM_LOG(FATAL) << "unreachable";   // Aborts after writing.
#ifndef TANDEM_COMMON_LOGGING_H_
#define TANDEM_COMMON_LOGGING_H_

#include <sstream>

namespace tandem {

enum class LogSeverity { kInfo = 0, kWarning = 1, kError = 2, kFatal = 3 };

// Lines below this severity are dropped. Default kInfo; the environment
// variable TANDEM_MIN_LOG_LEVEL (0-3) sets it at start-up.
void SetMinLogSeverity(LogSeverity severity);
LogSeverity MinLogSeverity();

namespace logging_internal {

// Accumulates one line and writes it when destroyed.
class LogMessage {
 public:
  LogMessage(const char* file, int line, LogSeverity severity);
  ~LogMessage();
  LogMessage(const LogMessage&) = delete;
  LogMessage& operator=(const LogMessage&) = delete;

  std::ostream& stream() { return stream_; }

 private:
  LogSeverity severity_;
  std::ostringstream stream_;
};

// Swallows the stream when the severity is filtered out.
struct Voidify {
  void operator&(std::ostream&) {}
};

}  // namespace logging_internal
}  // namespace tandem

#define TANDEM_LOG_SEVERITY_INFO ::tandem::LogSeverity::kInfo
#define TANDEM_LOG_SEVERITY_WARNING ::tandem::LogSeverity::kWarning
#define TANDEM_LOG_SEVERITY_ERROR ::tandem::LogSeverity::kError
#define TANDEM_LOG_SEVERITY_FATAL ::tandem::LogSeverity::kFatal

#define TANDEM_LOG(severity)                                        \
  (TANDEM_LOG_SEVERITY_##severity < ::tandem::MinLogSeverity())     \
      ? (void)0                                                     \
      : ::tandem::logging_internal::Voidify() &                     \
            ::tandem::logging_internal::LogMessage(                 \
                __FILE__, __LINE__, TANDEM_LOG_SEVERITY_##severity) \
                .stream()

#endif  // TANDEM_COMMON_LOGGING_H_
