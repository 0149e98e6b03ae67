// The security flags both daemons take (--tls_cert, --tls_key,
// --tls_client_ca, --tls_refresh_s, --auth_tokens, --unix_socket_mode):
// each overrides its field of the config's `security` when given.
#ifndef TANDEM_COMMON_SECURITY_FLAGS_H_
#define TANDEM_COMMON_SECURITY_FLAGS_H_

#include <cstdint>
#include <string>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"

ABSL_DECLARE_FLAG(std::string, tls_cert);
ABSL_DECLARE_FLAG(std::string, tls_key);
ABSL_DECLARE_FLAG(std::string, tls_client_ca);
ABSL_DECLARE_FLAG(int32_t, tls_refresh_s);
ABSL_DECLARE_FLAG(std::string, auth_tokens);
ABSL_DECLARE_FLAG(std::string, unix_socket_mode);

namespace tandem {

// `mode` in octal ("0660"); false when it is not.
bool ParseFileMode(const std::string& mode, uint32_t* out);

// Applies the flags that were given to `security` (a ServerSecurity).
// False, with `error` set, for a --unix_socket_mode that is not octal.
template <typename ServerSecurity>
bool ApplySecurityFlags(ServerSecurity* security, std::string* error) {
  if (!absl::GetFlag(FLAGS_tls_cert).empty())
    security->set_tls_cert(absl::GetFlag(FLAGS_tls_cert));
  if (!absl::GetFlag(FLAGS_tls_key).empty())
    security->set_tls_key(absl::GetFlag(FLAGS_tls_key));
  if (!absl::GetFlag(FLAGS_tls_client_ca).empty())
    security->set_tls_client_ca(absl::GetFlag(FLAGS_tls_client_ca));
  if (absl::GetFlag(FLAGS_tls_refresh_s) > 0)
    security->set_tls_refresh_s(absl::GetFlag(FLAGS_tls_refresh_s));
  if (!absl::GetFlag(FLAGS_auth_tokens).empty())
    security->set_auth_tokens(absl::GetFlag(FLAGS_auth_tokens));
  if (!absl::GetFlag(FLAGS_unix_socket_mode).empty()) {
    uint32_t mode = 0;
    if (!ParseFileMode(absl::GetFlag(FLAGS_unix_socket_mode), &mode)) {
      *error = "--unix_socket_mode must be an octal mode such as 0660, got '" +
               absl::GetFlag(FLAGS_unix_socket_mode) + "'";
      return false;
    }
    security->set_unix_socket_mode(mode);
  }
  return true;
}

}  // namespace tandem

#endif  // TANDEM_COMMON_SECURITY_FLAGS_H_
