#!/usr/bin/env bash
# Makes a throw-away certificate authority and certificates signed by it, for
# trying TLS and mutual TLS between the SDK, tandem-edge and tandem-cloud.
# Not for production: keys are unencrypted and the CA key sits beside them.
#
#   deploy/make_test_ca.sh DIR [NAME ...]
#
# Writes to DIR (created, mode 0700):
#   ca.pem                      the CA certificate (clients' --tls_ca,
#                               servers' --tls_client_ca)
#   server.pem server.key       for --tls_cert/--tls_key; valid for
#                               localhost, 127.0.0.1, ::1 and every NAME
#   client.pem client.key       a client identity (mutual TLS)
#   ca.key                      the CA's key (sign more with openssl x509 -req)
# All certificates: EC P-256, valid 30 days.
set -euo pipefail

if [ $# -lt 1 ]; then
  echo "usage: $0 DIR [NAME ...]" >&2
  exit 2
fi
dir=$1
shift
command -v openssl >/dev/null || {
  echo "$0: needs openssl (apt-get install openssl)" >&2
  exit 1
}
mkdir -p "$dir"
chmod 700 "$dir"
cd "$dir"

san="DNS:localhost,IP:127.0.0.1,IP:::1"
for name in "$@"; do
  if [[ $name =~ ^[0-9.]+$ || $name == *:* ]]; then
    san="$san,IP:$name"
  else
    san="$san,DNS:$name"
  fi
done

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

key ca.key
openssl req -x509 -new -key ca.key -sha256 -days 30 -subj "/CN=Tandem test CA" \
  -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.pem

# sign NAME CN EXTENSIONS
sign() {
  key "$1.key"
  openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr"
  printf '%s\n' "$3" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
    -days 30 -sha256 -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
sign server "tandem server" "subjectAltName=$san
extendedKeyUsage=serverAuth
basicConstraints=CA:FALSE"
sign client "tandem client" "extendedKeyUsage=clientAuth
basicConstraints=CA:FALSE"
chmod 600 ./*.key
echo "test CA and certificates in $dir (server valid for ${san//,/, })"
