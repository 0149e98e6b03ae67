#include "common/security_flags.h"

ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain: TLS on the TCP listeners (with --tls_key; "
          "re-read every --tls_refresh_s, checked on SIGHUP)");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA: mutual TLS, clients must present a certificate it signed");
ABSL_FLAG(int32_t, tls_refresh_s, 0,
          "How often the TLS files are re-read, seconds (default 5)");
ABSL_FLAG(std::string, auth_tokens, "",
          "Bearer tokens file, one 'TOKEN [MODEL ...]' a line: every call but "
          "health then needs 'authorization: Bearer TOKEN' (re-read on "
          "SIGHUP)");
ABSL_FLAG(std::string, unix_socket_mode, "",
          "File mode of unix-socket listeners, octal (default 0660)");

namespace tandem {

bool ParseFileMode(const std::string& mode, uint32_t* out) {
  if (mode.empty() || mode.size() > 4) return false;
  uint32_t value = 0;
  for (char c : mode) {
    if (c < '0' || c > '7') return false;
    value = value * 8 + static_cast<uint32_t>(c - '0');
  }
  *out = value;
  return true;
}

}  // namespace tandem
