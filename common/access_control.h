// Who may call a daemon, and how much each caller may hold at once: bearer
// tokens with per-model rights, a cap on each client's requests in flight and
// a cap on the decoded tensor bytes in flight over all clients
// (docs/design.md, "Security"). Transport-free: the services hand it the
// call's `authorization` header and peer; tls is the servers' business
// (common/grpc_tls.h).
//
// Tokens file, one token a line, optionally followed by the models it may
// use (none: every model); blank lines and '#' comments are skipped:
//
//   # camera fleet
//   3f9c2a7e61d04b58a1e0c97f2d6b8e41 camera_branchy
//   a04be1c9d27f4e3a8b6c05d91e7f2a36
//
// Thread-safe.
#ifndef TANDEM_COMMON_ACCESS_CONTROL_H_
#define TANDEM_COMMON_ACCESS_CONTROL_H_

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace tandem {

class AccessControl {
 public:
  struct Options {
    // Empty: no token needed, every caller may use every model.
    std::string tokens_file;
    // Requests in flight per client (its token, else its address); 0: no cap.
    int max_inflight_per_client = 0;
    // Decoded tensor bytes in flight over all clients; 0: no cap.
    int64_t max_inflight_tensor_bytes = 0;
  };

  // The caller of one call, once its token checked out.
  struct Caller {
    // "token-<8 hex digits of a hash>" or the peer's address without its
    // port ("ipv4:10.0.0.7", "unix:"): safe to log, never the token.
    std::string client;
    bool all_models = true;
    std::set<std::string> models;  // When !all_models.
  };

  // What an admitted request holds until destroyed: one of its client's
  // slots and its tensor bytes. Move-only.
  class Admission {
   public:
    Admission() = default;
    Admission(Admission&& other) noexcept { *this = std::move(other); }
    Admission& operator=(Admission&& other) noexcept;
    ~Admission() { Release(); }

   private:
    friend class AccessControl;
    void Release();
    AccessControl* owner_ = nullptr;
    std::string client_;
    int64_t bytes_ = 0;
  };

  // INVALID_ARGUMENT for a malformed tokens file (the line named), NOT_FOUND
  // for a missing one.
  static absl::StatusOr<std::unique_ptr<AccessControl>> Create(
      const Options& options);
  ~AccessControl();

  // Re-reads the tokens file (SIGHUP). On an error the tokens in use stay.
  absl::Status Reload() ABSL_LOCKS_EXCLUDED(mu_);

  bool tokens_required() const ABSL_LOCKS_EXCLUDED(mu_);

  // `authorization` is the call's header ("Bearer TOKEN", or empty when it
  // sent none); `peer` is gRPC's peer string ("ipv4:10.0.0.7:51234").
  // UNAUTHENTICATED when tokens are on and the header is missing, malformed
  // or names no known token. Tokens compare in time independent of where
  // they differ.
  absl::StatusOr<Caller> Authenticate(absl::string_view authorization,
                                      absl::string_view peer) const
      ABSL_LOCKS_EXCLUDED(mu_);

  // PERMISSION_DENIED when the caller's token does not cover `model`.
  static absl::Status CheckModel(const Caller& caller, absl::string_view model);

  // Checks `model` (as CheckModel), then takes one of the caller's slots and
  // `tensor_bytes` of the budget: RESOURCE_EXHAUSTED (naming the limit) when
  // either is spent. An empty `model` skips the model check.
  absl::StatusOr<Admission> Admit(const Caller& caller, absl::string_view model,
                                  int64_t tensor_bytes)
      ABSL_LOCKS_EXCLUDED(mu_);

  // One line of a tokens file.
  struct Token {
    std::string secret;
    Caller caller;
  };
  // The tokens in a tokens file's `text`; errors name `source` and the line.
  static absl::StatusOr<std::vector<Token>> ParseTokens(
      absl::string_view text, absl::string_view source);

  // Requests and tensor bytes in flight now (tests, metrics).
  int inflight(const std::string& client) const ABSL_LOCKS_EXCLUDED(mu_);
  int64_t inflight_tensor_bytes() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  explicit AccessControl(const Options& options) : options_(options) {}
  void Release(const std::string& client, int64_t bytes)
      ABSL_LOCKS_EXCLUDED(mu_);

  const Options options_;
  mutable absl::Mutex mu_;
  std::vector<Token> tokens_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> inflight_ ABSL_GUARDED_BY(mu_);
  int64_t inflight_bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

// A client's token from a file of its own (one line; surrounding whitespace
// and '#' comment lines ignored), so it is not in a command line.
absl::StatusOr<std::string> ReadBearerToken(const std::string& path);

// The decoded size, in FP32 bytes, of tensors of these shapes (what a model
// runs on), saturating at INT64_MAX; a negative dimension counts as 0 (the
// request's own validation refuses it).
int64_t DecodedFloatBytes(const std::vector<std::vector<int64_t>>& shapes);

// The same for a request with KServe-style `inputs` (TensorSpec.shape).
template <typename Request>
int64_t DecodedInputBytes(const Request& request) {
  std::vector<std::vector<int64_t>> shapes;
  for (const auto& spec : request.inputs())
    shapes.emplace_back(spec.shape().begin(), spec.shape().end());
  return DecodedFloatBytes(shapes);
}

}  // namespace tandem

#endif  // TANDEM_COMMON_ACCESS_CONTROL_H_
