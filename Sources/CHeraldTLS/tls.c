#include "CHeraldTLS.h"
#include <openssl/err.h>
#include <string.h>

const int HERALD_TLS1_2_VERSION = TLS1_2_VERSION;
const int HERALD_TLS1_3_VERSION = TLS1_3_VERSION;

int herald_tls_set_min_version(SSL_CTX *ctx, int version) {
    return (int)SSL_CTX_set_min_proto_version(ctx, version);
}

int herald_tls_set_max_version(SSL_CTX *ctx, int version) {
    return (int)SSL_CTX_set_max_proto_version(ctx, version);
}

void herald_tls_configure_server(SSL_CTX *ctx) {
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                          SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_clear_options(ctx, SSL_OP_ALLOW_CLIENT_RENEGOTIATION);
}

void herald_tls_configure_client(SSL_CTX *ctx) {
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_read_ahead(ctx, 1);
}

int herald_tls_require_client_certificates(SSL_CTX *ctx, const char *ca_file) {
    if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) return 0;
    STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca_file);
    if (names == NULL) return 0;
    SSL_CTX_set_client_CA_list(ctx, names);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    return 1;
}

static void herald_tls_message(int write_p, int version, int content_type, const void *buf,
                               size_t len, SSL *ssl, void *arg) {
    (void)version; (void)arg;
    const unsigned char *bytes = buf;
    if (write_p && content_type == SSL3_RT_ALERT && len >= 2 && bytes[1] == SSL_AD_NO_RENEGOTIATION) {
        SSL_set_app_data(ssl, (void *)1);
    }
}

void herald_tls_watch_renegotiation(SSL *ssl) {
    SSL_set_app_data(ssl, NULL);
    SSL_set_msg_callback(ssl, herald_tls_message);
}

int herald_tls_renegotiation_refused(SSL *ssl) { return SSL_get_app_data(ssl) != NULL; }

int herald_tls_set_host_name(SSL *ssl, const char *name) {
    return (int)SSL_set_tlsext_host_name(ssl, name);
}

int herald_tls_version(const SSL *ssl) { return SSL_version(ssl); }

int herald_tls_renegotiate(SSL *ssl) { return SSL_renegotiate(ssl); }

void herald_tls_last_error(char *out, size_t size) {
    unsigned long error = ERR_get_error();
    if (size > 0) out[0] = 0;
    if (error != 0 && size > 0) ERR_error_string_n(error, out, size);
    ERR_clear_error();
}

unsigned long herald_tls_peek_error(void) { return ERR_peek_error(); }

int herald_tls_is_unexpected_eof(unsigned long error) {
    return ERR_GET_LIB(error) == ERR_LIB_SSL && ERR_GET_REASON(error) == SSL_R_UNEXPECTED_EOF_WHILE_READING;
}
