#!/bin/sh
# A self-signed development certificate for herald's TLS listeners, in one command.
#   deploy/dev-cert.sh [DIR]      (default ./certs)
# Writes DIR/server-cert.pem and DIR/server-key.pem (RSA 2048, 825 days, SAN localhost,
# 127.0.0.1 and ::1). Then: herald start --secure --cert DIR/server-cert.pem --key DIR/server-key.pem
# Not for production: clients must be told to trust it (openssl s_client -CAfile DIR/server-cert.pem).
set -eu
dir="${1:-./certs}"
mkdir -p "$dir"
umask 077
openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 825 \
    -keyout "$dir/server-key.pem" -out "$dir/server-cert.pem" \
    -subj "/CN=localhost" \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" \
    -addext "basicConstraints=critical,CA:FALSE" \
    -addext "keyUsage=critical,digitalSignature,keyEncipherment" \
    -addext "extendedKeyUsage=serverAuth" 2>/dev/null
chmod 644 "$dir/server-cert.pem"
echo "wrote $dir/server-cert.pem and $dir/server-key.pem (CN=localhost, SAN localhost 127.0.0.1 ::1)"
