/*
 * Private: the parts of the WebSocket transport (RFC 7395 over RFC 6455).
 *
 *  - ws_upgrade.c, sans-I/O: the HTTP/1.1 upgrade request, the answer to
 *    it (llhttp: a 101 with the right Sec-WebSocket-Accept and the "xmpp"
 *    subprotocol), ws:// and wss:// URLs. Bytes in, a verdict out.
 *  - ws_frames.c: the WebSocket session on wslay: frames in and out, close
 *    codes, and RFC 7395's rule of one whole element per text message.
 *  - websocket.c: the transport itself: sockets, driving the upgrade,
 *    <open/> and <close/>, see-other-uri redirects, client pings.
 */
#ifndef UVX_WS_H
#define UVX_WS_H

#include <stddef.h>
#include <stdint.h>

#include <llhttp.h>
#include <wslay/wslay.h>

#include "buf.h"
#include "conn.h"
#include "sock.h"

/* ---- the upgrade (ws_upgrade.c) ---- */

/* base64 of 16 bytes, and of a 20-byte SHA-1, fit with room to spare */
#define WS_KEY_SIZE 32

typedef struct ws_upgrade {
    llhttp_t http;
    char key[WS_KEY_SIZE];    /* our Sec-WebSocket-Key */
    char accept[WS_KEY_SIZE]; /* the Sec-WebSocket-Accept it calls for */
    char hname[64];           /* the header being parsed (truncated names match nothing) */
    size_t hname_len;
    char hvalue[256];
    size_t hvalue_len;
    int hvalue_long; /* the value did not fit: it can't be one we accept */
    int saw_upgrade, saw_connection, accept_ok, protocol_ok, extensions;
    size_t response_bytes;
    int status;       /* WS_UPGRADE_HTTP: the answer's HTTP status */
    const char *fail; /* WS_UPGRADE_FAILED: the condition */
} ws_upgrade_t;

/* What ws_upgrade_feed() makes of the bytes so far. */
enum {
    WS_UPGRADE_FAILED = -1, /* not an acceptable answer: u->fail says why */
    WS_UPGRADE_MORE = 0,    /* the answer is not complete yet */
    WS_UPGRADE_DONE = 1,    /* a good 101: WebSocket frames follow */
    WS_UPGRADE_HTTP = 2,    /* an HTTP answer other than 101: u->status */
};

/* The Sec-WebSocket-Key made of 16 random bytes, into key[WS_KEY_SIZE]. */
int ws_key_from_nonce(const unsigned char nonce[16], char *key);

/* Ready to read the answer to a request that sent `key`. 0 or UVX_EINVAL. */
int ws_upgrade_init(ws_upgrade_t *u, const char *key);

/* Reads answer bytes. On WS_UPGRADE_DONE, *used says how many of `data`
 * the answer took: the rest are already frames. After anything but
 * WS_UPGRADE_MORE, feed no more. */
int ws_upgrade_feed(ws_upgrade_t *u, const char *data, size_t len, size_t *used);

typedef struct ws_target {
    const char *host; /* a name, an IPv4 or a bare IPv6 address */
    int port;
    int tls;
    const char *path;     /* NULL or "": "/" */
    char *const *headers; /* NULL-terminated "Name: value" to add, or NULL */
} ws_target_t;

/* Appends the upgrade request (GET, Host, the WebSocket headers with
 * `key`, the xmpp subprotocol, the extra headers) to `out`. */
int ws_upgrade_request(buf_t *out, const ws_target_t *t, const char *key);

/* 80 for ws://, 443 for wss://. */
int ws_default_port(int tls);

/* Splits "ws[s]://host[:port][/path]" (a see-other-uri). *host and *path
 * are allocated. 0, UVX_EINVAL (not such a URL) or UVX_ENOMEM. */
int ws_parse_url(const char *url, int *tls, char **host, int *port, char **path);

/* ---- the transport's state (websocket.c, ws_frames.c) ---- */

typedef enum ws_phase {
    WS_IDLE,      /* not connected */
    WS_SOCKET,    /* TCP (and TLS) connecting */
    WS_UPGRADING, /* upgrade request sent, waiting for the 101 */
    WS_OPEN,      /* WebSocket frames both ways */
} ws_phase_t;

typedef struct ws_transport {
    uvx_conn_t *conn;
    sock_t *sock;
    sock_t *closed_sock; /* the one ws_close() closed (counted) */
    int nretired;        /* sockets a redirect left behind, still closing */
    ws_phase_t phase;
    int tearing_down;

    ws_upgrade_t *hs; /* while upgrading (idle sessions keep none) */

    /* frames */
    wslay_event_context_ptr ws;
    const char *in; /* the read being fed to wslay */
    size_t in_len;
    uint8_t frame_opcode; /* of the frame being received */
    size_t msg_len;       /* bytes of the text message being received */
    int msg_elements;     /* elements it delivered so far */
    int msg_leading;      /* only white space of it seen so far */
    size_t max_msg;
    const char *local_fail; /* we refused the peer's frames: why */
    buf_t wire;             /* framed bytes not yet taken by the sock */
    unsigned char mask_pool[128];
    size_t mask_off;

    /* RFC 7395 §3.6: after our <close/> and the server's, the close frames */
    int close_elem_received;

    /* keepalive */
    uv_timer_t *ping_timer;
    uv_timer_t *pong_timer;
    int awaiting_pong;

    char cond[48]; /* a formatted condition ("websocket-http-404") */
} ws_transport_t;

/* ---- frames (ws_frames.c) ---- */

/* A fresh wslay client session (after each 101). 0 or UVX_ENOMEM. */
int ws_frames_start(ws_transport_t *t);
void ws_frames_free(ws_transport_t *t);

/* Random bytes for keys and masks, from a small pool. */
void ws_random(ws_transport_t *t, unsigned char *out, size_t len);

/* Frame bytes read from the socket: messages go to the core's parser,
 * pings are answered, a close frame or a refused frame ends the
 * connection. */
void ws_feed_frames(ws_transport_t *t, const char *data, size_t len);

/* One text message per element the core queued (conn->outq and its
 * marks). 0, UVX_ENOMEM, or UVX_ESTATE once our close frame went. */
int ws_queue_messages(ws_transport_t *t);
/* Queues a ping. 0, or not 0 when closing. */
int ws_queue_ping(ws_transport_t *t);

/* Lets wslay frame what is queued, then hands the bytes to the socket. */
int ws_pump(ws_transport_t *t);
/* Hands the framed bytes to the socket when it takes bytes now. */
int ws_write_wire(ws_transport_t *t);
/* Starts the closing handshake with `code` (once) and sends what it can. */
void ws_send_close(ws_transport_t *t, uint16_t code, const char *reason);
/* Reads nothing more from this session (a redirect leaves it). */
void ws_stop_reading(ws_transport_t *t);

/* Called by ws_on_element() for each element the parser delivers: 1 when
 * it breaks RFC 7395's one element per message (the connection is being
 * failed, and the element must be dropped), else 0. */
int ws_frames_element(ws_transport_t *t);

/* ---- websocket.c, for ws_frames.c ---- */

/* The server answered our ping. */
void ws_pong_received(ws_transport_t *t);

#endif
