/*
 * RFC 7395 XMPP over WebSocket (RFC 6455), ws:// and wss://.
 *
 * One sock (lib/sock.h) carries an HTTP/1.1 upgrade request; the answer
 * must be a 101 with the right Sec-WebSocket-Accept and the "xmpp"
 * subprotocol (ws_upgrade.c). From the byte after it the connection speaks
 * WebSocket (ws_frames.c, on wslay).
 *
 * The core primes its parser with a synthetic stream tag (framed = 1), so
 * each message comes out as one depth-1 element and reaches
 * ws_on_element() first: <open/> and <close/> are ours, the rest stanzas.
 * Outgoing, the core marks where each queued element ends
 * (message_marks = 1) and ws_flush() sends one text message per element.
 *
 * A <close see-other-uri='...'/> starts a new login at the new endpoint,
 * reported as REDIRECT then CONNECTING (see ws_redirect()).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws.h"

#define WS_DEFAULT_PONG_TIMEOUT_MS 10000

static ws_transport_t *ws_of(const uvx_conn_t *conn)
{
    return conn->transport;
}

static void ws_start_socket(uvx_conn_t *conn);
static void ws_start_keepalive(ws_transport_t *t);

/* ---- the upgrade ---- */

static void ws_handshake_free(ws_transport_t *t)
{
    free(t->hs);
    t->hs = NULL;
}

/* Fresh upgrade state with Sec-WebSocket-Key `key` (NULL: a random one). */
static int ws_handshake_new(ws_transport_t *t, const char *key)
{
    char random_key[WS_KEY_SIZE];
    if (key == NULL) {
        unsigned char nonce[16];
        ws_random(t, nonce, sizeof(nonce));
        if (ws_key_from_nonce(nonce, random_key) != 0)
            return UVX_EINVAL;
        key = random_key;
    }
    ws_handshake_free(t);
    t->hs = malloc(sizeof(*t->hs));
    if (t->hs == NULL)
        return UVX_ENOMEM;
    int rc = ws_upgrade_init(t->hs, key);
    if (rc != 0)
        ws_handshake_free(t);
    return rc;
}

static int ws_send_upgrade_request(ws_transport_t *t)
{
    uvx_conn_t *conn = t->conn;
    ws_target_t target = {conn->host, conn->port, conn->direct_tls, conn->path, conn->http_headers};
    buf_reset(&t->wire);
    int rc = ws_upgrade_request(&t->wire, &target, t->hs->key);
    if (rc != 0)
        return rc;
    rc = ws_write_wire(t);
    return rc == 0 || t->tearing_down ? 0 : rc;
}

/* The 101 checked out: frames from here on. */
static int ws_upgraded(ws_transport_t *t)
{
    uvx_conn_t *conn = t->conn;
    ws_handshake_free(t);
    if (ws_frames_start(t) != 0) {
        conn_transport_failed(conn, "out-of-memory");
        return UVX_ENOMEM;
    }
    t->phase = WS_OPEN;
    /* anything queued while a redirect was under way belongs to the old
     * stream: the new one starts with <open/> */
    buf_reset(&conn->outq);
    conn_outq_taken(conn);
    ws_start_keepalive(t);
    conn_transport_connected(conn); /* primes the parser, sends <open/> */
    return 0;
}

/* Bytes of the answer to the upgrade request (and maybe frames after it). */
static void ws_feed_http(ws_transport_t *t, sock_t *s, const char *data, size_t len)
{
    uvx_conn_t *conn = t->conn;
    size_t used = 0;
    switch (ws_upgrade_feed(t->hs, data, len, &used)) {
    case WS_UPGRADE_MORE:
        return;
    case WS_UPGRADE_DONE:
        if (ws_upgraded(t) != 0 || t->sock != s || t->tearing_down || t->phase != WS_OPEN)
            return;
        if (used < len)
            ws_feed_frames(t, data + used, len - used);
        return;
    case WS_UPGRADE_HTTP: {
        /* an HTTP answer other than 101: the user may want to know which */
        int status = t->hs->status;
        conn_protocol_error(conn, "websocket", status);
        if (t->tearing_down || t->sock != s)
            return;
        snprintf(t->cond, sizeof(t->cond), "websocket-http-%d", status);
        conn_transport_failed(conn, t->cond);
        return;
    }
    default:
        conn_transport_failed(conn, t->hs->fail);
        return;
    }
}

/* ---- sock callbacks ---- */

static void ws_on_connected(sock_t *s, void *ud)
{
    uvx_conn_t *conn = ud;
    ws_transport_t *t = ws_of(conn);
    if (s != t->sock || t->tearing_down)
        return;
    conn->secure = sock_secure(s);
    t->phase = WS_UPGRADING;
    if (ws_handshake_new(t, NULL) != 0 || ws_send_upgrade_request(t) != 0) {
        if (!t->tearing_down)
            conn_transport_failed(conn, "out-of-memory");
    }
}

static void ws_on_data(sock_t *s, void *ud, const char *data, size_t len)
{
    uvx_conn_t *conn = ud;
    ws_transport_t *t = ws_of(conn);
    if (s != t->sock || t->tearing_down)
        return;
    if (t->phase == WS_UPGRADING)
        ws_feed_http(t, s, data, len);
    else if (t->phase == WS_OPEN)
        ws_feed_frames(t, data, len);
}

static void ws_on_eof(sock_t *s, void *ud)
{
    uvx_conn_t *conn = ud;
    ws_transport_t *t = ws_of(conn);
    if (s != t->sock || t->tearing_down)
        return;
    /* no close frame: RFC 6455 §7.1.5 calls this 1006, abnormal closure */
    conn_transport_eof(conn);
}

static void ws_on_failed(sock_t *s, void *ud, const char *condition)
{
    uvx_conn_t *conn = ud;
    ws_transport_t *t = ws_of(conn);
    if (s != t->sock || t->tearing_down)
        return;
    conn_transport_failed(conn, condition);
}

static void ws_on_wrote(sock_t *s, void *ud)
{
    uvx_conn_t *conn = ud;
    ws_transport_t *t = ws_of(conn);
    if (s != t->sock || t->tearing_down)
        return;
    if (ws_write_wire(t) != 0 || t->tearing_down)
        return;
    conn_transport_wrote(conn);
    if (t->phase == WS_OPEN && conn->outq.len && !conn->paused && sock_writable(s))
        conn_flush_now(conn);
}

static void ws_on_sock_closed(sock_t *s, void *ud)
{
    uvx_conn_t *conn = ud;
    ws_transport_t *t = ws_of(conn);
    if (s != t->closed_sock) {
        t->nretired--;
        if (!t->tearing_down)
            return; /* a redirect's old socket: nobody counts it */
    } else {
        t->closed_sock = NULL;
    }
    conn_handle_closed(conn); /* counted by ws_close() */
}

static const sock_callbacks_t ws_sock_callbacks = {
    ws_on_connected,
    ws_on_data,
    ws_on_eof,
    ws_on_failed,
    NULL /* STARTTLS is not a WebSocket thing */,
    ws_on_wrote,
    ws_on_sock_closed,
};

/* ---- keepalive (client pings) ---- */

void ws_pong_received(ws_transport_t *t)
{
    t->awaiting_pong = 0;
    if (t->pong_timer)
        uv_timer_stop(t->pong_timer);
}

static void ws_on_pong_timeout(uv_timer_t *timer)
{
    uvx_conn_t *conn = timer->data;
    ws_transport_t *t = ws_of(conn);
    if (t->tearing_down || !t->awaiting_pong)
        return;
    conn_transport_failed(conn, "ping-timeout");
}

static void ws_on_ping_timer(uv_timer_t *timer)
{
    uvx_conn_t *conn = timer->data;
    ws_transport_t *t = ws_of(conn);
    if (t->tearing_down || t->phase != WS_OPEN || t->awaiting_pong)
        return; /* the pong timer decides about the last one */
    if (ws_queue_ping(t) != 0)
        return; /* closing: no more pings */
    t->awaiting_pong = 1;
    unsigned timeout =
        conn->ws_pong_timeout_ms ? conn->ws_pong_timeout_ms : WS_DEFAULT_PONG_TIMEOUT_MS;
    uv_timer_start(t->pong_timer, ws_on_pong_timeout, timeout, 0);
    ws_pump(t);
}

static void ws_start_keepalive(ws_transport_t *t)
{
    uvx_conn_t *conn = t->conn;
    ws_pong_received(t); /* nothing owed from an earlier connection */
    if (conn->ws_ping_interval_ms == 0)
        return;
    if (t->ping_timer == NULL && (t->ping_timer = conn_timer_new(conn)) == NULL)
        return;
    if (t->pong_timer == NULL && (t->pong_timer = conn_timer_new(conn)) == NULL)
        return;
    uv_timer_start(t->ping_timer, ws_on_ping_timer, conn->ws_ping_interval_ms,
                   conn->ws_ping_interval_ms);
}

/* ---- RFC 7395 <open/>, <close/> and redirects ---- */

/* Leaves the current socket (politely) and dials the new one. */
static void ws_retire_socket(ws_transport_t *t)
{
    if (t->sock == NULL)
        return;
    ws_send_close(t, WSLAY_CODE_NORMAL_CLOSURE, NULL);
    ws_stop_reading(t);
    t->nretired++;
    sock_close(t->sock);
    t->sock = NULL;
}

/* The new endpoint is a new session, as after a DISCONNECTED: the
 * handlers go (pending IQs get their error callback, NULL), the login and
 * negotiation start over, and nothing can be sent until CONNECTED. */
static void ws_forget_session(uvx_conn_t *conn)
{
    handlers_clear(conn, 1);
    conn->authenticated = 0;
    conn->state = ST_CONNECTING;
    buf_reset(&conn->outq);
    conn_outq_taken(conn);
}

static int ws_gone(const uvx_conn_t *conn)
{
    const ws_transport_t *t = ws_of(conn);
    return conn->closing || conn->state >= ST_CLOSING || t->tearing_down;
}

/* <close see-other-uri='...'/> (RFC 7395 §3.6.1): REDIRECT, then connect
 * to the new endpoint ourselves (CONNECTING, AUTHENTICATING, CONNECTED);
 * never from wss:// down to ws://. */
static void ws_redirect(ws_transport_t *t, const char *uri, uvx_stanza_t *elem)
{
    uvx_conn_t *conn = t->conn;
    int tls = 0, port = 0;
    char *host = NULL, *path = NULL, *service = NULL;
    int rc = ws_parse_url(uri, &tls, &host, &port, &path);
    if (rc != 0) {
        conn_transport_failed(conn, rc == UVX_ENOMEM ? "out-of-memory" : "redirect-invalid");
        return;
    }
    if (conn->direct_tls && !tls) {
        conn_transport_failed(conn, "redirect-refused");
        goto out;
    }
    if ((service = strdup(uri)) == NULL) {
        conn_transport_failed(conn, "out-of-memory");
        goto out;
    }
    ws_forget_session(conn);
    if (ws_gone(conn)) /* an IQ's error callback closed us */
        goto out;
    conn_change_status(conn, UVX_STATUS_REDIRECT, uri, elem);
    if (ws_gone(conn) || conn->state != ST_CONNECTING)
        goto out;
    free(conn->host);
    free(conn->path);
    free(conn->service);
    conn->host = host;
    conn->path = path;
    conn->service = service;
    conn->port = port;
    conn->direct_tls = tls;
    host = path = service = NULL;
    ws_retire_socket(t);
    conn_arm_login_timer(conn); /* CONNECTED stopped the first login's deadline */
    conn_change_status(conn, UVX_STATUS_CONNECTING, NULL, NULL);
    if (!ws_gone(conn) && conn->state == ST_CONNECTING)
        ws_start_socket(conn);
out:
    free(host);
    free(path);
    free(service);
}

static int ws_on_element(uvx_conn_t *conn, uvx_stanza_t *elem)
{
    ws_transport_t *t = ws_of(conn);
    if (ws_frames_element(t))
        return 1; /* not one element per message: dropped, we are leaving */
    const char *ns = uvx_stanza_ns(elem);
    const char *name = uvx_stanza_name(elem);
    if (ns == NULL || strcmp(ns, UVX_NS_FRAMING) != 0 || name == NULL)
        return 0;
    if (strcmp(name, "open") == 0) {
        const char *version = uvx_stanza_attr(elem, "version");
        if (version == NULL || strcmp(version, "1.0") != 0) {
            conn_transport_failed(conn, "unsupported-version");
            return 1;
        }
        conn_transport_stream_open(conn, elem);
        return 1;
    }
    if (strcmp(name, "close") == 0) {
        const char *uri = uvx_stanza_attr(elem, "see-other-uri");
        if (conn->state == ST_DISCONNECTING) {
            /* our close answered (a redirect too: we are leaving anyway);
             * now the close frames, then the socket */
            t->close_elem_received = 1;
            ws_send_close(t, WSLAY_CODE_NORMAL_CLOSURE, NULL);
        } else if (uri) {
            ws_redirect(t, uri, elem);
        } else {
            conn_transport_stream_close(conn);
        }
        return 1;
    }
    return 1; /* some other framing element: nothing for the core */
}

/* ---- vtable ---- */

static int ws_init(uvx_conn_t *conn)
{
    ws_transport_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return UVX_ENOMEM;
    t->conn = conn;
    t->mask_off = sizeof(t->mask_pool); /* fill on first use */
    conn->transport = t;
    return 0;
}

/* A new socket to conn->host:port (TLS for wss://). */
static int ws_dial(uvx_conn_t *conn)
{
    ws_transport_t *t = ws_of(conn);
    t->phase = WS_SOCKET;
    conn->secure = 0;
    buf_reset(&t->wire);
    t->sock = sock_new(conn, &ws_sock_callbacks, conn);
    if (t->sock == NULL)
        return UVX_ENOMEM;
    /* HTTP names the host in the URL, so does the certificate */
    return sock_connect(t->sock, conn->host, conn->port, conn->direct_tls, conn->host);
}

/* After a redirect: like ws_connect(), but failures are reported. */
static void ws_start_socket(uvx_conn_t *conn)
{
    int rc = ws_dial(conn);
    if (rc != 0)
        conn_transport_failed(conn, rc == UVX_ENOMEM ? "out-of-memory" : "host-unresolved");
}

static int ws_connect(uvx_conn_t *conn)
{
    ws_transport_t *t = ws_of(conn);
    if (t->sock != NULL)
        return UVX_ESTATE;
    t->tearing_down = 0;
    t->max_msg =
        conn->limits.max_stanza_size ? conn->limits.max_stanza_size : UVX_DEFAULT_MAX_STANZA_SIZE;
    t->awaiting_pong = 0;
    return ws_dial(conn);
}

static int ws_open_stream(uvx_conn_t *conn)
{
    buf_t open = BUF_INIT;
    int rc = buf_append_str(&open, "<open xmlns='" UVX_NS_FRAMING "' to='");
    rc = rc ? rc : buf_append_escaped(&open, conn->domain, strlen(conn->domain), 1);
    rc = rc ? rc : buf_append_str(&open, "' version='1.0'/>");
    rc = rc ? rc : conn_queue_raw(conn, open.data, open.len);
    buf_free(&open);
    return rc;
}

static int ws_close_stream(uvx_conn_t *conn)
{
    static const char close[] = "<close xmlns='" UVX_NS_FRAMING "'/>";
    return conn_queue_raw(conn, close, sizeof(close) - 1);
}

static int ws_flush(uvx_conn_t *conn)
{
    ws_transport_t *t = ws_of(conn);
    if (t->tearing_down || t->phase != WS_OPEN)
        return 0; /* the queue waits for the (new) connection */
    if (t->sock && !sock_writable(t->sock))
        return 0; /* ws_on_wrote flushes again */
    int rc = ws_queue_messages(t);
    buf_reset(&conn->outq);
    conn_outq_taken(conn);
    if (rc == UVX_ESTATE)
        return 0; /* our close frame went: nothing more may follow */
    if (rc == 0)
        rc = ws_pump(t);
    if (rc == UVX_ENOMEM && !t->tearing_down)
        conn_transport_failed(conn, "out-of-memory");
    if (rc == 0 && t->sock && t->wire.len == 0 && sock_in_flight(t->sock) == 0)
        conn_transport_wrote(conn); /* all of it went at once */
    return rc;
}

static int ws_channel_binding(uvx_conn_t *conn, const char *type, unsigned char *out, size_t cap,
                              size_t *len)
{
    ws_transport_t *t = ws_of(conn);
    if (t->sock == NULL || !sock_secure(t->sock))
        return UVX_ENOTSUP;
    return sock_channel_binding(t->sock, type, out, cap, len);
}

static size_t ws_in_flight(const uvx_conn_t *conn)
{
    const ws_transport_t *t = ws_of(conn);
    return t->wire.len + (t->sock ? sock_in_flight(t->sock) : 0);
}

static void ws_on_timer_closed(uv_handle_t *h)
{
    uvx_conn_t *conn = h->data;
    free(h);
    conn_handle_closed(conn);
}

static int ws_close_timer(uv_timer_t **timer)
{
    if (*timer == NULL)
        return 0;
    uv_timer_stop(*timer);
    uv_close((uv_handle_t *)*timer, ws_on_timer_closed);
    *timer = NULL;
    return 1;
}

static int ws_close(uvx_conn_t *conn)
{
    ws_transport_t *t = ws_of(conn);
    int n = 0;
    if (t->tearing_down)
        return 0;
    /* RFC 6455 §7.1.1: say goodbye with a close frame if none went yet */
    ws_send_close(t, WSLAY_CODE_NORMAL_CLOSURE, NULL);
    ws_stop_reading(t);
    t->tearing_down = 1;
    n += ws_close_timer(&t->ping_timer);
    n += ws_close_timer(&t->pong_timer);
    if (t->sock) {
        t->closed_sock = t->sock;
        sock_close(t->sock);
        t->sock = NULL;
        n++;
    }
    n += t->nretired; /* ws_on_sock_closed reports those now */
    t->phase = WS_IDLE;
    return n;
}

static void ws_destroy(uvx_conn_t *conn)
{
    ws_transport_t *t = ws_of(conn);
    ws_frames_free(t);
    ws_handshake_free(t);
    buf_free(&t->wire);
    free(t);
    conn->transport = NULL;
}

const transport_vtable_t transport_websocket = {
    .name = "websocket",
    .framed = 1,
    .message_marks = 1,
    .init = ws_init,
    .connect = ws_connect,
    .open_stream = ws_open_stream,
    .close_stream = ws_close_stream,
    .flush = ws_flush,
    .start_tls = NULL,
    .channel_binding = ws_channel_binding,
    .in_flight = ws_in_flight,
    .close = ws_close,
    .destroy = ws_destroy,
    .on_element = ws_on_element,
};

/* ---- tests and fuzzing (declared in lib/transport.h) ---- */

void ws_debug_feed(uvx_conn_t *conn, const char *key, const char *data, size_t len, size_t chunk)
{
    ws_transport_t *t = ws_of(conn);
    if (t == NULL || conn->tp != &transport_websocket || t->tearing_down)
        return;
    if (t->sock != NULL || t->phase == WS_SOCKET) {
        ws_retire_socket(t);
        if (ws_handshake_new(t, key) != 0)
            return;
        t->phase = WS_UPGRADING;
    }
    if (chunk == 0)
        chunk = len ? len : 1;
    for (size_t off = 0; off < len && !t->tearing_down && t->sock == NULL; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        ws_on_data(NULL, conn, data + off, n);
    }
}
