// Where a server's or a client's TLS material lives (PEM files). Plain data,
// so configs map onto it without gRPC; common/grpc_tls.h makes credentials.
#ifndef TANDEM_COMMON_TLS_FILES_H_
#define TANDEM_COMMON_TLS_FILES_H_

#include <string>

namespace tandem {

struct ServerTlsFiles {
  std::string cert;       // PEM certificate chain.
  std::string key;        // Its PEM private key.
  std::string client_ca;  // Set: mutual TLS, clients need a cert it signed.
  int refresh_s = 5;      // How often the files are re-read.

  bool enabled() const { return !cert.empty() || !key.empty(); }
};

struct ClientTlsFiles {
  std::string ca;    // Set: TLS, the server verified against it.
  std::string cert;  // With key: the client's identity (mutual TLS).
  std::string key;
  std::string server_name;  // The name to verify, if not the target's host.

  bool enabled() const { return !ca.empty(); }
};

}  // namespace tandem

#endif  // TANDEM_COMMON_TLS_FILES_H_
