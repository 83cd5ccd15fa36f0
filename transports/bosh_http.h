/*
 * Private, sans-I/O: the byte-level half of BOSH (XEP-0124/0206). Builds
 * HTTP/1.1 POST requests and the <body/> wrappers they carry, and reads
 * HTTP responses (any split, Content-Length, chunked or read-to-EOF) with
 * llhttp. No sockets, timers or connection state here, so that this part is
 * unit tested and fuzzed with plain byte vectors (test/fuzz/fuzz_bosh.c).
 */
#ifndef UVX_BOSH_HTTP_H
#define UVX_BOSH_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <llhttp.h>

#include "buf.h"

#define BOSH_NS "http://jabber.org/protocol/httpbind"
#define BOSH_NS_XBOSH "urn:xmpp:xbosh"
#define BOSH_DEFAULT_CONTENT_TYPE "text/xml; charset=utf-8"

/* ---- responses ---- */

typedef struct bosh_http_reader {
    llhttp_t parser;
    size_t max_body; /* a longer body is an error (UVX_ETOOBIG) */
    buf_t body;
    int started;    /* a byte of the response has been read */
    int status;     /* HTTP status once the headers are in, else 0 */
    int complete;   /* a whole response has been read */
    int keep_alive; /* the connection may carry another request */
    int too_big;
    int out_of_memory;
} bosh_http_reader_t;

/* Ready for the first response on a new connection. */
void bosh_http_reader_init(bosh_http_reader_t *r, size_t max_body);
/* Ready for the next response on the same connection (keeps the buffer). */
void bosh_http_reader_next(bosh_http_reader_t *r);
void bosh_http_reader_free(bosh_http_reader_t *r);

/* Reads response bytes. Returns 0 when more are needed, 1 when a whole
 * response has been read (status, body and keep_alive are set; *used says
 * how many bytes of `data` it took: anything after it is not part of this
 * response), or a negative error: UVX_EPARSE (not HTTP), UVX_ETOOBIG,
 * UVX_ENOMEM. After an error or a complete response, call
 * bosh_http_reader_next() (or init) before feeding again. */
int bosh_http_reader_feed(bosh_http_reader_t *r, const char *data, size_t len, size_t *used);
/* The peer closed the connection: 1 if that completed the response (a body
 * delimited by the end of the connection), else UVX_EPARSE. */
int bosh_http_reader_eof(bosh_http_reader_t *r);
/* 1 when bytes of a response have been read (the connection is mid-message). */
int bosh_http_reader_started(const bosh_http_reader_t *r);

/* ---- requests ---- */

typedef struct bosh_http_target {
    const char *host;
    int port;
    int https;
    const char *path;
    const char *content_type; /* NULL: BOSH_DEFAULT_CONTENT_TYPE */
    const char *cookie;       /* the Cookie header's value, or NULL */
    char *const *headers;     /* NULL-terminated "Name: value", or NULL */
} bosh_http_target_t;

/* Appends a whole POST request carrying `body` (len bytes) to `out`. */
int bosh_http_request(buf_t *out, const bosh_http_target_t *t, const char *body, size_t len);

/* ---- <body/> wrappers ---- */

typedef struct bosh_body_params {
    uint64_t rid;
    const char *sid;     /* NULL for the session creation request */
    const char *to;      /* the XMPP domain (creation and restart) */
    const char *route;   /* creation: "xmpp:host:port", or NULL */
    const char *content; /* creation: the content attribute */
    unsigned wait, hold; /* creation */
    int restart;         /* xmpp:restart='true' */
    int terminate;       /* type='terminate' */
} bosh_body_params_t;

/* Appends <body .../> (or <body ...>payload</body> when plen > 0). */
int bosh_body_build(buf_t *out, const bosh_body_params_t *p, const char *payload, size_t plen);

/* Strophe's retry arithmetic: the timeout of a request in flight
 * (TIMEOUT x wait, TIMEOUT = 1.1), the shorter one of a request found
 * dead (SECONDARY_TIMEOUT x wait, 0.1), and the back-off before the
 * `sends`-th send (none for the first two, then min(TIMEOUT x wait,
 * sends^3) seconds). All in milliseconds. */
uint64_t bosh_timeout_ms(unsigned wait);
uint64_t bosh_secondary_timeout_ms(unsigned wait);
uint64_t bosh_backoff_ms(unsigned wait, unsigned sends);

/* A random initial rid in [1, 2^52): room to count up below 2^53. */
uint64_t bosh_random_rid(void);

#endif
