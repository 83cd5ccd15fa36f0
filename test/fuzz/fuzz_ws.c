/*
 * libFuzzer target for the WebSocket transport's input path: the answer to
 * the upgrade request (llhttp), then frames (wslay), then the elements
 * they carry (the core's primed parser, <open/>, <close/>, see-other-uri,
 * negotiation). A ws:// or wss:// connection is started as a client would
 * and the input goes in through ws_debug_feed() in pieces, so no socket is
 * involved; what the client writes stays in the transport's buffer.
 *
 * Input layout: byte 0 chooses the piece size (0: everything at once),
 * byte 1 holds option bits, the rest is what the server "sends".
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../fakews.h"
#include "uvxmpp.h"

enum {
    OPT_WSS = 1,          /* a wss:// service (redirects to ws:// are refused) */
    OPT_SMALL_LIMIT = 2,  /* max_stanza_size 512 */
    OPT_GOOD_UPGRADE = 4, /* a valid 101 answer comes first: the fuzzer starts at the frames */
    OPT_PINGS = 8,        /* a client ping interval (timers exist, never fire here) */
};

static const char good_upgrade[] =
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Accept: " FAKEWS_SAMPLE_ACCEPT
    "\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n";

static uv_loop_t loop;
static uvx_ctx_t *ctx;

typedef struct run {
    int closing; /* uvx_conn_close() called */
    int closed;  /* its callback ran */
} run_t;

static void on_closed(uvx_conn_t *conn)
{
    ((run_t *)uvx_conn_get_data(conn))->closed = 1;
}

static void on_status(uvx_conn_t *conn, int status, const char *condition, uvx_stanza_t *elem,
                      void *ud)
{
    run_t *r = ud;
    (void)elem;
    /* conditions are strings the caller may print: they must be readable */
    if (condition && strlen(condition) > 4096)
        abort();
    /* a redirect would dial whatever host the input names: stop there */
    if (status == UVX_STATUS_REDIRECT && !r->closing) {
        r->closing = 1;
        uvx_conn_close(conn, on_closed);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    if (ctx == NULL) {
        uv_loop_init(&loop);
        ctx = uvx_ctx_new(&loop);
    }
    size_t chunk = data[0];
    unsigned opts = data[1];
    data += 2;
    size -= 2;

    uvx_conn_options_t o;
    uvx_conn_options_init(&o);
    o.allow_plain = 1;
    o.tls_insecure = 1;
    if (opts & OPT_SMALL_LIMIT)
        o.max_stanza_size = 512;
    if (opts & OPT_PINGS)
        o.ws_ping_interval_ms = 60000;
    const char *service =
        opts & OPT_WSS ? "wss://127.0.0.1:9/xmpp-websocket" : "ws://127.0.0.1:9/xmpp-websocket";
    uvx_conn_t *conn = NULL;
    if (uvx_conn_new(ctx, service, &o, &conn) != 0)
        abort();
    run_t r = {0, 0};
    uvx_conn_set_data(conn, &r);
    if (uvx_connect(conn, "alice@localhost", "alicepass", on_status, &r, NULL) != 0)
        abort();

    char *input = malloc(sizeof(good_upgrade) + size);
    size_t n = 0;
    if (opts & OPT_GOOD_UPGRADE) {
        memcpy(input, good_upgrade, sizeof(good_upgrade) - 1);
        n = sizeof(good_upgrade) - 1;
    }
    if (size)
        memcpy(input + n, data, size);
    n += size;
    ws_debug_feed(conn, FAKEWS_SAMPLE_KEY, input, n, chunk);
    free(input);

    if (!r.closing)
        uvx_conn_close(conn, on_closed);
    for (int i = 0; i < 1000 && !r.closed; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    if (!r.closed)
        abort(); /* something of the connection never closed */
    return 0;
}
