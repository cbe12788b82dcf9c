// OpenSSL 3 (Debian libssl-dev) as seen from Swift. Macros Swift cannot import are
// wrapped as plain functions in CHeraldTLS.
#ifndef COPENSSL_SHIM_H
#define COPENSSL_SHIM_H
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/pem.h>
#endif
