/*
 * Private: one client byte stream for the transports. It resolves the
 * host on the libuv thread pool (a literal IP skips the resolver), tries
 * every address in turn with the connection's connect timeout and source
 * address, optionally runs TLS (lib/tls.c) from the first byte or after
 * STARTTLS, and moves bytes: reads land in the context's shared buffer and
 * come out as plaintext through a callback; writes try the socket first and
 * keep a buffer only for what the kernel would not take.
 *
 * TCP uses one sock per connection, WebSocket one, BOSH one per HTTP
 * request slot. A sock reports to its owner through callbacks, never to
 * the connection directly, so an owner can drop one socket (a BOSH request
 * that timed out) without touching the connection's state.
 */
#ifndef UVX_SOCK_H
#define UVX_SOCK_H

#include <stddef.h>

#include "buf.h"
#include "uvxmpp.h"

typedef struct sock sock_t;

typedef struct sock_callbacks {
    /* Connected; with TLS asked at sock_connect(), after the handshake. */
    void (*connected)(sock_t *s, void *ud);
    /* Plaintext from the peer, in the context's shared read buffer (valid
     * only during the call). */
    void (*data)(sock_t *s, void *ud, const char *data, size_t len);
    /* The peer closed its side (EOF, or TLS close_notify). An EOF inside
     * the TLS handshake is a failure instead: "tls-handshake-failed". */
    void (*eof)(sock_t *s, void *ud);
    /* Could not connect (every address tried), or the connection broke, or
     * TLS failed; `condition` is static ("connection-refused",
     * "connection-timeout", "host-unresolved", "bind-failed",
     * "connection-lost", "tls-cert-invalid", ...). The sock stays open
     * until sock_close(). */
    void (*failed)(sock_t *s, void *ud, const char *condition);
    /* The TLS handshake begun by sock_start_tls() finished. May be NULL. */
    void (*tls_ready)(sock_t *s, void *ud);
    /* A write the kernel did not take at once has completed: the owner
     * may hand more bytes now. May be NULL. */
    void (*wrote)(sock_t *s, void *ud);
    /* After sock_close(): every handle is closed (never inside
     * sock_close() itself). The sock is freed right after this returns. */
    void (*closed)(sock_t *s, void *ud);
} sock_callbacks_t;

/* A sock for `conn` (its loop, read buffer, bind_address,
 * connect_timeout_ms and TLS options are used). NULL when out of memory. */
sock_t *sock_new(uvx_conn_t *conn, const sock_callbacks_t *cb, void *ud);

/* Starts resolving and connecting to host:port. With `tls`, TLS starts as
 * soon as TCP is up and `tls_name` (SNI and the name the certificate must
 * carry; RFC 6120 §13.7.2: the XMPP domain for XMPP, the URL's host for
 * HTTP) is checked. `connected` or `failed` follows, never from inside
 * this call. 0 or a negative error. */
int sock_connect(sock_t *s, const char *host, int port, int tls, const char *tls_name);

/* STARTTLS: wraps the open socket in TLS; `tls_ready` or `failed` follows. */
int sock_start_tls(sock_t *s, const char *tls_name);

/* Writes `src`: when the sock can take bytes now (connected, TLS up if
 * any, no write pending) the bytes are encrypted if needed and written
 * (what the kernel does not take at once goes to uv_write from the sock's
 * own buffer) and `src` is left empty. Otherwise `src` is left as it is
 * and `wrote` (or `connected` / `tls_ready`) says when to try again.
 * 0, or a negative error after which `failed` has been called. */
int sock_write(sock_t *s, buf_t *src);

/* 1 when sock_write() would take bytes now. */
int sock_writable(const sock_t *s);
/* Bytes handed to uv_write and not yet written. */
size_t sock_in_flight(const sock_t *s);
/* 1 when connected inside an established TLS session. */
int sock_secure(const sock_t *s);
/* Channel-binding data ("tls-unique", "tls-exporter",
 * "tls-server-end-point"); 0 or UVX_ENOTSUP. */
int sock_channel_binding(const sock_t *s, const char *type, unsigned char *out, size_t cap,
                         size_t *len);

/* Closes: a TLS close_notify goes out if the socket takes it at once,
 * pending requests are cancelled, every handle is closed, `closed` runs
 * once all are, then the sock is freed. No other callback runs after
 * this call. Safe from inside any of the sock's callbacks. */
void sock_close(sock_t *s);

#endif
