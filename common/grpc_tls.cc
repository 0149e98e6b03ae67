#include "common/grpc_tls.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/text_proto.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_credentials_options.h"

namespace tandem {
namespace {

constexpr size_t kMaxPemBytes = 1 << 20;

struct BioDeleter {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Deleter {
  void operator()(X509* cert) const { X509_free(cert); }
};
struct KeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using Bio = std::unique_ptr<BIO, BioDeleter>;
using Cert = std::unique_ptr<X509, X509Deleter>;
using Key = std::unique_ptr<EVP_PKEY, KeyDeleter>;

Bio BioOf(const std::string& pem) {
  return Bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// The first certificate of a PEM file (a chain's leaf).
absl::StatusOr<Cert> ReadCert(const std::string& path, std::string* pem) {
  RETURN_IF_ERROR(ReadFile(path, pem, kMaxPemBytes));
  Bio bio = BioOf(*pem);
  Cert cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (cert == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": no PEM certificate in it"));
  }
  return cert;
}

absl::StatusOr<Key> ReadKey(const std::string& path, std::string* pem) {
  RETURN_IF_ERROR(ReadFile(path, pem, kMaxPemBytes));
  Bio bio = BioOf(*pem);
  Key key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (key == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": no unencrypted PEM private key in it"));
  }
  return key;
}

// Reads a certificate and its key, and checks that they belong together.
absl::Status ReadPair(const std::string& cert_path, const std::string& key_path,
                      std::string* cert_pem, std::string* key_pem) {
  if (cert_path.empty() != key_path.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a TLS certificate needs its key and a key its certificate (cert '",
        cert_path, "', key '", key_path, "')"));
  }
  ASSIGN_OR_RETURN(Cert cert, ReadCert(cert_path, cert_pem));
  ASSIGN_OR_RETURN(Key key, ReadKey(key_path, key_pem));
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        key_path, " is not the private key of the certificate in ", cert_path));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckServerTlsFiles(const ServerTlsFiles& files) {
  std::string cert_pem, key_pem, ca_pem;
  RETURN_IF_ERROR(ReadPair(files.cert, files.key, &cert_pem, &key_pem));
  if (!files.client_ca.empty()) {
    RETURN_IF_ERROR(ReadCert(files.client_ca, &ca_pem).status());
  }
  if (files.refresh_s <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("tls_refresh_s must be positive, got ", files.refresh_s));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> TlsServerCredentials(
    const ServerTlsFiles& files) {
  RETURN_IF_ERROR(CheckServerTlsFiles(files));
  auto provider =
      std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
          files.key, files.cert, files.client_ca,
          static_cast<unsigned int>(files.refresh_s));
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  if (!files.client_ca.empty()) {
    options.watch_root_certs();
    options.set_cert_request_type(
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  }
  std::shared_ptr<grpc::ServerCredentials> credentials =
      grpc::experimental::TlsServerCredentials(options);
  if (credentials == nullptr) {
    return absl::InternalError("gRPC refused the TLS server options");
  }
  return credentials;
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> TlsChannelCredentials(
    const ClientTlsFiles& files, grpc::ChannelArguments* args) {
  if (!files.enabled()) {
    return absl::InvalidArgumentError(
        "TLS to a server needs the CA that signed its certificate");
  }
  grpc::SslCredentialsOptions options;
  RETURN_IF_ERROR(ReadCert(files.ca, &options.pem_root_certs).status());
  if (!files.cert.empty() || !files.key.empty()) {
    RETURN_IF_ERROR(ReadPair(files.cert, files.key, &options.pem_cert_chain,
                             &options.pem_private_key));
  }
  if (!files.server_name.empty())
    args->SetSslTargetNameOverride(files.server_name);
  return grpc::SslCredentials(options);
}

}  // namespace tandem
