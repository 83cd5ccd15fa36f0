/*
 * Private: TLS on mbedtls 2.28, sans I/O. The session takes ciphertext in
 * (tls_session_input), hands plaintext out through a callback, and leaves
 * the ciphertext it produces in a buffer the transport writes to the
 * socket. Transports (TCP now; WebSocket's wss:// and BOSH's https://
 * later) own the socket; this file owns no handle and never blocks.
 */
#ifndef UVX_TLS_H
#define UVX_TLS_H

#include <stddef.h>

#include "buf.h"
#include "uvxmpp.h"

/* Per-context state: the DRBG and the configurations (CA chains parsed
 * once per distinct set of options, shared by every session using them). */
typedef struct tls_shared tls_shared_t;

tls_shared_t *tls_shared_new(void);
void tls_shared_free(tls_shared_t *sh);

typedef struct tls_options {
    const char *cafile; /* NULL: the system bundle unless cadir is set */
    const char *cadir;
    int insecure;          /* accept any certificate (tests only) */
    const char *cert_file; /* client certificate (SASL EXTERNAL) */
    const char *key_file;
    /* Asked when verification fails; returns 1 to accept the certificate
     * anyway. NULL: a failed verification fails the handshake. */
    int (*verify)(void *ud, const uvx_tls_cert_info_t *cert);
    void *verify_ud;
} tls_options_t;

typedef struct tls_session tls_session_t;

typedef struct tls_callbacks {
    void (*plaintext)(void *ud, const char *data, size_t len);
    void (*handshake_done)(void *ud);
} tls_callbacks_t;

/* A client session for `hostname` (SNI and the name the certificate must
 * match). 0, UVX_ENOMEM, or UVX_ETLS with *error describing a bad option
 * (e.g. an unreadable CA file); *error is static. */
int tls_session_new(tls_shared_t *sh, const tls_options_t *opts, const char *hostname,
                    const tls_callbacks_t *cb, void *ud, tls_session_t **out, const char **error);
void tls_session_free(tls_session_t *s);

/* Starts the handshake (the ClientHello lands in tls_session_out()). */
int tls_session_start(tls_session_t *s);
/* Ciphertext from the peer. Drives the handshake, then decrypts and calls
 * plaintext(). 0, or UVX_ETLS (see tls_session_error()), or UVX_ECLOSED
 * after the peer's close_notify. */
int tls_session_input(tls_session_t *s, const char *data, size_t len);
/* Encrypts application data into tls_session_out(). */
int tls_session_write(tls_session_t *s, const char *data, size_t len);
/* Queues a close_notify alert. */
int tls_session_close_notify(tls_session_t *s);
/* The ciphertext waiting to be written; the caller sends and resets it. */
buf_t *tls_session_out(tls_session_t *s);
int tls_session_established(const tls_session_t *s);
/* RFC 5929 tls-unique: the first Finished message of the latest handshake
 * (ours, as the client, after a full handshake). 0 and *len = 12, or
 * UVX_ENOTSUP before the handshake or after a resumption. */
int tls_session_tls_unique(const tls_session_t *s, unsigned char *out, size_t cap, size_t *len);
/* Channel-binding data of the established session by type:
 *   "tls-unique"           RFC 5929 (as above), 12 bytes;
 *   "tls-exporter"         RFC 9266: the exporter "EXPORTER-Channel-Binding",
 *                          no context, 32 bytes; only when the session has
 *                          the extended master secret (RFC 7627);
 *   "tls-server-end-point" RFC 5929 §4: the hash of the server certificate
 *                          (SHA-256 for MD5/SHA-1 signatures, else the
 *                          signature's hash), 32 to 64 bytes.
 * 0 with *len set, or UVX_ENOTSUP (no such type, not computable for this
 * session, before the handshake, or longer than cap). */
int tls_session_channel_binding(const tls_session_t *s, const char *type, unsigned char *out,
                                size_t cap, size_t *len);
/* A condition for the status callback: "tls-cert-invalid", "tls-alert",
 * "tls-handshake-failed", "tls-protocol-error". Static. */
const char *tls_session_error(const tls_session_t *s);

#endif
