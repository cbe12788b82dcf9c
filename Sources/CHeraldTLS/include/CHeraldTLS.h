// What Swift cannot import from OpenSSL: macros (SSL_CTX_set_min_proto_version,
// SSL_CTX_set_mode, SSL_set_tlsext_host_name, ...) and a message callback that notices
// refused renegotiations. Plain functions only.
#ifndef CHERALD_TLS_H
#define CHERALD_TLS_H
#include <openssl/ssl.h>

// Version numbers for herald_tls_set_min_version / _max_version.
extern const int HERALD_TLS1_2_VERSION;
extern const int HERALD_TLS1_3_VERSION;

int herald_tls_set_min_version(SSL_CTX *ctx, int version);
int herald_tls_set_max_version(SSL_CTX *ctx, int version);
// Server defaults: partial writes, a moving write buffer, buffers released when idle,
// read-ahead, no renegotiation, no compression.
void herald_tls_configure_server(SSL_CTX *ctx);
// Client side of the same (used by the load tool and the tests).
void herald_tls_configure_client(SSL_CTX *ctx);
// Requires and verifies client certificates against the CA file's certificates.
int herald_tls_require_client_certificates(SSL_CTX *ctx, const char *ca_file);

// Marks the connection when it refuses a renegotiation (the no_renegotiation alert).
void herald_tls_watch_renegotiation(SSL *ssl);
int herald_tls_renegotiation_refused(SSL *ssl);

int herald_tls_set_host_name(SSL *ssl, const char *name);
// The protocol version of an established connection (e.g. TLS1_3_VERSION).
int herald_tls_version(const SSL *ssl);
// Asks for a TLS 1.2 renegotiation (client side; tests only).
int herald_tls_renegotiate(SSL *ssl);

// The text of the oldest queued OpenSSL error (then clears the queue), or "" when none.
void herald_tls_last_error(char *out, size_t size);
unsigned long herald_tls_peek_error(void);
// True when the error is OpenSSL 3's "unexpected eof while reading" (a close without
// close_notify).
int herald_tls_is_unexpected_eof(unsigned long error);
#endif
