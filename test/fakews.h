/*
 * A scripted RFC 7395 WebSocket "server" for fault injection, running on the
 * test's own loop (the WebSocket twin of test/fakeserver.c). It answers the
 * upgrade request (correctly, or with whatever the test wants), unmasks the
 * client's frames, answers its pings and close frame, and plays steps: each
 * waits until the client's text messages contain `expect` (after the
 * previous match; NULL = at once), then sends a text message and/or raw
 * bytes (any frames: fragmented, masked, oversized, ...) and may end the
 * connection. Real servers cannot be made to send broken frames; this can.
 */
#ifndef UVX_TEST_FAKEWS_H
#define UVX_TEST_FAKEWS_H

#include <stddef.h>
#include <uv.h>

#include "uvxmpp.h"

enum {
    FAKEWS_KEEP = 0, /* stay connected */
    FAKEWS_DROP = 1, /* close the TCP connection without a close frame */
    FAKEWS_CLOSE = 2 /* send close frame 1000, drop once the client answers */
};

typedef struct fakews_step {
    const char *expect;
    const char *text; /* one text message, in one frame (NULL: none) */
    const char *raw;  /* bytes written as they are, after `text` (NULL: none) */
    size_t raw_len;
    int end; /* FAKEWS_KEEP, FAKEWS_DROP or FAKEWS_CLOSE */
} fakews_step_t;

typedef struct fakews_options {
    /* The answer to the upgrade request: a printf format with one %s, the
     * Sec-WebSocket-Accept the request calls for. NULL: a correct 101 with
     * the "xmpp" subprotocol. A non-101 answer ends the connection. */
    const char *response;
    int split;   /* write every byte on its own, a loop turn apart */
    int no_pong; /* leave the client's pings unanswered */
} fakews_options_t;

typedef struct fakews fakews_t;

/* Listens on 127.0.0.1 (a free port, in *port); one client at a time.
 * `steps` ends with an all-zero step and must outlive the server; `opts`
 * may be NULL and is copied. */
fakews_t *fakews_start(uv_loop_t *loop, const fakews_step_t *steps, const fakews_options_t *opts,
                       int *port);
/* The client's last upgrade request (NUL-terminated). */
const char *fakews_request(const fakews_t *fw);
/* The client's text messages, each followed by '\n'. */
const char *fakews_received(const fakews_t *fw);
int fakews_steps_done(const fakews_t *fw);
int fakews_connections(const fakews_t *fw);
int fakews_pings(const fakews_t *fw); /* pings the client sent */
int fakews_pongs(const fakews_t *fw); /* pongs the client sent */
/* The status code of the client's close frame: 0 none yet, 1005 none in it. */
int fakews_close_code(const fakews_t *fw);
/* Client frames that broke RFC 6455 (unmasked, bad length ...). */
int fakews_bad_frames(const fakews_t *fw);
/* 1 once the client closed its side of the TCP connection. */
int fakews_client_gone(const fakews_t *fw);
/* Closes the listener and any connection (asynchronously). */
void fakews_stop(fakews_t *fw);

/* Writes one frame into out (room for len + 14 bytes) and returns its
 * size. `mask`: mask the payload as a client would (a server must not). */
size_t fakews_frame(char *out, int fin, int opcode, int mask, const char *payload, size_t len);

/* Scripts' common server messages */
#define FAKEWS_OPEN                                                                                \
    "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' from='localhost' id='ws-1' "                \
    "version='1.0' xml:lang='en'/>"
#define FAKEWS_FEATURES_PLAIN                                                                      \
    "<stream:features xmlns:stream='http://etherx.jabber.org/streams'>"                            \
    "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism>"            \
    "</mechanisms></stream:features>"
#define FAKEWS_FEATURES_BIND                                                                       \
    "<stream:features xmlns:stream='http://etherx.jabber.org/streams'>"                            \
    "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>"
#define FAKEWS_SUCCESS "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"
#define FAKEWS_BIND_RESULT                                                                         \
    "<iq xmlns='jabber:client' type='result' id='_bind_auth_2'>"                                   \
    "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>alice@localhost/ws</jid></bind></iq>"
#define FAKEWS_CLOSE_ELEM "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"

/* ws_debug_feed(), the transport's test seam, is in lib/transport.h. */
#include "transport.h"

/* RFC 6455's sample key and the accept value it calls for. */
#define FAKEWS_SAMPLE_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define FAKEWS_SAMPLE_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

#endif
