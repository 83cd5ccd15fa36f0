/*
 * RFC 7395 XMPP over WebSocket (RFC 6455), ws:// and wss://.
 *
 * One sock (lib/sock.h) carries an HTTP/1.1 upgrade request; llhttp parses
 * the answer, which must be a 101 with the right Sec-WebSocket-Accept and
 * the "xmpp" subprotocol. From the byte after it the connection speaks
 * WebSocket through wslay's event API: wslay masks our frames, answers
 * pings, checks the peer's frames and runs the closing handshake.
 *
 * wslay runs without buffering: the payload of each text message goes to
 * the core's parser as it arrives, so a message costs no copy and no
 * allocation, and a frame announcing more than max_stanza_size is refused
 * (close 1008) as soon as wslay reports it, with its first payload bytes:
 * nothing of it is ever stored.
 *
 * The core primes its parser with a synthetic stream tag (framed = 1), so
 * each message comes out as one depth-1 element and reaches
 * ws_on_element() first: <open/> and <close/> are ours, the rest stanzas.
 * Outgoing, the core marks where each queued element ends
 * (message_marks = 1) and ws_flush() sends one text message per element.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <llhttp.h>
#include <mbedtls/base64.h>
#include <mbedtls/sha1.h>
#include <wslay/wslay.h>

#include "conn.h"
#include "sock.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
/* An upgrade answer is a few hundred bytes; anything near this is not one. */
#define WS_MAX_RESPONSE 16384
#define WS_DEFAULT_PONG_TIMEOUT_MS 10000

typedef enum ws_phase {
    WS_IDLE,      /* not connected */
    WS_SOCKET,    /* TCP (and TLS) connecting */
    WS_UPGRADING, /* upgrade request sent, waiting for the 101 */
    WS_OPEN,      /* WebSocket frames both ways */
} ws_phase_t;

/* The upgrade's state: only while it lasts (idle sessions keep none). */
typedef struct ws_handshake {
    llhttp_t http;
    char key[32];    /* our Sec-WebSocket-Key (base64 of 16 random bytes) */
    char accept[32]; /* the Sec-WebSocket-Accept it calls for */
    char hname[64];  /* the header being parsed (truncated names match nothing) */
    size_t hname_len;
    char hvalue[256];
    size_t hvalue_len;
    int hvalue_long; /* the value did not fit: it can't be one we accept */
    int saw_upgrade, saw_connection, accept_ok, protocol_ok, extensions;
    size_t response_bytes;
    const char *fail; /* why the handshake failed */
} ws_handshake_t;

typedef struct ws_transport {
    uvx_conn_t *conn;
    sock_t *sock;
    sock_t *closed_sock; /* the one ws_close() closed (counted) */
    int nretired;        /* sockets a redirect left behind, still closing */
    ws_phase_t phase;
    int tearing_down;

    ws_handshake_t *hs; /* while upgrading */

    /* frames */
    wslay_event_context_ptr ws;
    const char *in; /* the read being fed to wslay */
    size_t in_len;
    uint8_t frame_opcode; /* of the frame being received */
    uint8_t msg_opcode;   /* of the data message being received */
    size_t msg_len;       /* its bytes so far */
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

static ws_transport_t *ws_of(const uvx_conn_t *conn)
{
    return conn->transport;
}

static void ws_start_socket(uvx_conn_t *conn);

/* ---- helpers ---- */

static int ws_default_port(int tls)
{
    return tls ? 443 : 80;
}

static void ws_random(ws_transport_t *t, unsigned char *out, size_t len)
{
    if (t->mask_off + len > sizeof(t->mask_pool)) {
        /* getrandom(2) through libuv: synchronous without a loop */
        if (uv_random(NULL, NULL, t->mask_pool, sizeof(t->mask_pool), 0, NULL) != 0) {
            /* never seen on Linux >= 3.17; masks must still differ */
            for (size_t i = 0; i < sizeof(t->mask_pool); i++)
                t->mask_pool[i] ^= (unsigned char)(uv_hrtime() >> (i % 8));
        }
        t->mask_off = 0;
    }
    memcpy(out, t->mask_pool + t->mask_off, len);
    t->mask_off += len;
}

/* Sec-WebSocket-Accept = base64(SHA-1(key + GUID)), RFC 6455 §4.2.2. */
static int ws_expected_accept(const char *key, char *out, size_t cap)
{
    unsigned char digest[20];
    mbedtls_sha1_context sha;
    size_t olen = 0;
    mbedtls_sha1_init(&sha);
    int rc = mbedtls_sha1_starts_ret(&sha);
    if (rc == 0)
        rc = mbedtls_sha1_update_ret(&sha, (const unsigned char *)key, strlen(key));
    if (rc == 0)
        rc = mbedtls_sha1_update_ret(&sha, (const unsigned char *)WS_GUID, strlen(WS_GUID));
    if (rc == 0)
        rc = mbedtls_sha1_finish_ret(&sha, digest);
    mbedtls_sha1_free(&sha);
    if (rc == 0)
        rc = mbedtls_base64_encode((unsigned char *)out, cap, &olen, digest, sizeof(digest));
    return rc == 0 ? 0 : UVX_EINVAL;
}

static int ws_set_key(ws_transport_t *t, const char *key)
{
    snprintf(t->hs->key, sizeof(t->hs->key), "%s", key);
    return ws_expected_accept(t->hs->key, t->hs->accept, sizeof(t->hs->accept));
}

static int ws_new_key(ws_transport_t *t)
{
    unsigned char nonce[16];
    char key[32];
    size_t olen = 0;
    ws_random(t, nonce, sizeof(nonce));
    if (mbedtls_base64_encode((unsigned char *)key, sizeof(key), &olen, nonce, sizeof(nonce)) != 0)
        return UVX_EINVAL;
    return ws_set_key(t, key);
}

/* The condition a close frame's status code stands for. */
static const char *ws_close_condition(ws_transport_t *t, unsigned code)
{
    switch (code) {
    case 1000:
        return "websocket-normal-closure";
    case 1001:
        return "websocket-going-away";
    case 1002:
        return "websocket-protocol-error";
    case 1003:
        return "websocket-unsupported-data";
    case 1005:
        return "websocket-no-status";
    case 1007:
        return "websocket-invalid-payload";
    case 1008:
        return "websocket-policy-violation";
    case 1009:
        return "websocket-message-too-big";
    case 1010:
        return "websocket-mandatory-extension";
    case 1011:
        return "websocket-internal-error";
    default:
        snprintf(t->cond, sizeof(t->cond), "websocket-close-%u", code);
        return t->cond;
    }
}

/* Case-insensitive: does the comma-separated list `v` hold `token`? */
static int ws_list_has_token(const char *v, const char *token)
{
    size_t tlen = strlen(token);
    while (*v) {
        v += strspn(v, " \t,");
        size_t n = strcspn(v, ",");
        size_t m = n;
        while (m > 0 && (v[m - 1] == ' ' || v[m - 1] == '\t'))
            m--;
        if (m == tlen && strncasecmp(v, token, tlen) == 0)
            return 1;
        v += n;
    }
    return 0;
}

/* ---- output ---- */

/* Hands the framed bytes to the socket when it takes bytes now. */
static int ws_write_wire(ws_transport_t *t)
{
    if (t->sock == NULL || t->wire.len == 0 || !sock_writable(t->sock))
        return 0;
    int rc = sock_write(t->sock, &t->wire);
    if (rc == 0 && t->wire.len == 0)
        buf_free(&t->wire); /* an idle session keeps no frame buffer */
    return rc;
}

/* Lets wslay frame what it has queued (messages, pongs, a close), then
 * writes. */
static int ws_pump(ws_transport_t *t)
{
    if (t->ws && wslay_event_want_write(t->ws) && wslay_event_send(t->ws) != 0)
        return UVX_ENOMEM; /* our send callback never fails: wslay ran out of memory */
    return ws_write_wire(t);
}

static ssize_t ws_on_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                          void *ud)
{
    ws_transport_t *t = ud;
    (void)flags;
    if (buf_append(&t->wire, (const char *)data, len) != 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)len;
}

static int ws_on_genmask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *ud)
{
    (void)ctx;
    ws_random(ud, buf, len);
    return 0;
}

/* Starts the closing handshake with `code` (once) and sends what it can. */
static void ws_send_close(ws_transport_t *t, uint16_t code, const char *reason)
{
    if (t->ws == NULL || t->phase != WS_OPEN)
        return;
    wslay_event_queue_close(t->ws, code, (const uint8_t *)reason, reason ? strlen(reason) : 0);
    ws_pump(t);
}

/* ---- input: frames ---- */

static ssize_t ws_on_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                          void *ud)
{
    ws_transport_t *t = ud;
    (void)flags;
    if (t->in_len == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t n = len < t->in_len ? len : t->in_len;
    memcpy(buf, t->in, n);
    t->in += n;
    t->in_len -= n;
    return (ssize_t)n;
}

/* Refuses the peer's frames: close frame `code`, read no more. */
static void ws_refuse(ws_transport_t *t, uint16_t code, const char *condition)
{
    if (t->local_fail == NULL)
        t->local_fail = condition;
    wslay_event_queue_close(t->ws, code, NULL, 0);
    wslay_event_shutdown_read(t->ws);
}

static void ws_on_frame_start(wslay_event_context_ptr ctx,
                              const struct wslay_event_on_frame_recv_start_arg *arg, void *ud)
{
    ws_transport_t *t = ud;
    (void)ctx;
    t->frame_opcode = arg->opcode;
    if (wslay_is_ctrl_frame(arg->opcode) || t->local_fail)
        return;
    if (arg->opcode == WSLAY_BINARY_FRAME) {
        /* RFC 7395 §3.2: XMPP goes in text messages only */
        ws_refuse(t, WSLAY_CODE_UNSUPPORTED_DATA, "websocket-unsupported-data");
        return;
    }
    if (arg->opcode == WSLAY_TEXT_FRAME) {
        t->msg_opcode = arg->opcode;
        t->msg_len = 0;
    }
    /* the header says how big the frame is: refuse it before storing any */
    if (arg->payload_length > t->max_msg - t->msg_len)
        ws_refuse(t, WSLAY_CODE_POLICY_VIOLATION, "websocket-policy-violation");
}

static void ws_on_frame_chunk(wslay_event_context_ptr ctx,
                              const struct wslay_event_on_frame_recv_chunk_arg *arg, void *ud)
{
    ws_transport_t *t = ud;
    (void)ctx;
    if (wslay_is_ctrl_frame(t->frame_opcode) || t->local_fail || t->tearing_down ||
        arg->data_length == 0)
        return;
    t->msg_len += arg->data_length;
    conn_transport_data(t->conn, (const char *)arg->data, arg->data_length);
}

static void ws_stop_pong_timer(ws_transport_t *t)
{
    t->awaiting_pong = 0;
    if (t->pong_timer)
        uv_timer_stop(t->pong_timer);
}

static void ws_on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                      void *ud)
{
    ws_transport_t *t = ud;
    (void)ctx;
    if (arg->opcode == WSLAY_PONG)
        ws_stop_pong_timer(t);
    /* a ping is answered by wslay; a close is looked at once recv returns */
}

static const struct wslay_event_callbacks ws_callbacks = {
    ws_on_recv,        ws_on_send,           ws_on_genmask, ws_on_frame_start,
    ws_on_frame_chunk, NULL /* frame end */, ws_on_msg,
};

static int ws_new_context(ws_transport_t *t)
{
    if (t->ws)
        wslay_event_context_free(t->ws);
    t->ws = NULL;
    if (wslay_event_context_client_init(&t->ws, &ws_callbacks, t) != 0)
        return UVX_ENOMEM;
    /* payloads go straight to the parser; our own check bounds messages */
    wslay_event_config_set_no_buffering(t->ws, 1);
    wslay_event_config_set_max_recv_msg_length(t->ws, UINT64_MAX);
    t->frame_opcode = 0;
    t->msg_len = 0;
    t->local_fail = NULL;
    t->close_elem_received = 0;
    return 0;
}

/* After wslay has seen the input: the peer's close frame, or frames we
 * refused, end the connection. */
static void ws_after_frames(ws_transport_t *t, int recv_rc)
{
    uvx_conn_t *conn = t->conn;
    ws_pump(t); /* pongs, the close reply, our close */
    if (t->tearing_down || t->phase != WS_OPEN)
        return;
    if (wslay_event_get_close_received(t->ws)) {
        if (t->close_elem_received || conn->state == ST_DISCONNECTING) {
            conn_transport_stream_close(conn); /* the graceful end */
            return;
        }
        conn_transport_failed(conn,
                              ws_close_condition(t, wslay_event_get_status_code_received(t->ws)));
        return;
    }
    if (recv_rc != 0 && t->local_fail == NULL)
        t->local_fail = "websocket-protocol-error"; /* a frame wslay could not parse */
    if (t->local_fail == NULL && !wslay_event_get_read_enabled(t->ws))
        t->local_fail = ws_close_condition(t, wslay_event_get_status_code_sent(t->ws));
    if (t->local_fail)
        conn_transport_failed(conn, t->local_fail);
}

static void ws_feed_frames(ws_transport_t *t, const char *data, size_t len)
{
    t->in = data;
    t->in_len = len;
    int rc = wslay_event_recv(t->ws);
    t->in = NULL;
    t->in_len = 0;
    ws_after_frames(t, rc);
}

/* ---- input: the upgrade answer ---- */

/* One complete header: note what it says about the upgrade. */
static void ws_header(ws_handshake_t *hs)
{
    char *v = hs->hvalue;
    size_t n = hs->hvalue_len < sizeof(hs->hvalue) ? hs->hvalue_len : sizeof(hs->hvalue) - 1;
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    v[n] = '\0';
    while (*v == ' ' || *v == '\t')
        v++;
    int ok = !hs->hvalue_long;
    const char *name = hs->hname_len < sizeof(hs->hname) ? hs->hname : ""; /* too long: not ours */
    if (strcasecmp(name, "upgrade") == 0)
        hs->saw_upgrade = ok && strcasecmp(v, "websocket") == 0;
    else if (strcasecmp(name, "connection") == 0)
        hs->saw_connection = ok && ws_list_has_token(v, "upgrade");
    else if (strcasecmp(name, "sec-websocket-accept") == 0)
        hs->accept_ok = ok && strcmp(v, hs->accept) == 0;
    else if (strcasecmp(name, "sec-websocket-protocol") == 0)
        /* ejabberd writes "Sec-Websocket-Protocol:xmpp": names are case-blind */
        hs->protocol_ok = ok && strcmp(v, "xmpp") == 0;
    else if (strcasecmp(name, "sec-websocket-extensions") == 0)
        hs->extensions |= *v != '\0' || !ok; /* we asked for none */
    hs->hname_len = hs->hvalue_len = 0;
    hs->hname[0] = hs->hvalue[0] = '\0';
    hs->hvalue_long = 0;
}

/* Appends to a fixed buffer; what does not fit sets *len to `cap`. */
static void ws_append_bounded(char *dst, size_t cap, size_t *len, const char *at, size_t n)
{
    if (*len >= cap)
        return;
    if (*len + n >= cap) {
        *len = cap;
        return;
    }
    memcpy(dst + *len, at, n);
    *len += n;
    dst[*len] = '\0';
}

static int ws_on_header_field(llhttp_t *p, const char *at, size_t n)
{
    ws_handshake_t *hs = p->data;
    ws_append_bounded(hs->hname, sizeof(hs->hname), &hs->hname_len, at, n);
    return 0;
}

static int ws_on_header_value(llhttp_t *p, const char *at, size_t n)
{
    ws_handshake_t *hs = p->data;
    ws_append_bounded(hs->hvalue, sizeof(hs->hvalue), &hs->hvalue_len, at, n);
    hs->hvalue_long = hs->hvalue_len >= sizeof(hs->hvalue);
    return 0;
}

static int ws_on_header_value_complete(llhttp_t *p)
{
    ws_header(p->data);
    return 0;
}

static int ws_on_headers_complete(llhttp_t *p)
{
    ws_handshake_t *hs = p->data;
    if (llhttp_get_status_code(p) != 101)
        return HPE_PAUSED; /* reported by the caller: not an upgrade */
    if (!hs->saw_upgrade || !hs->saw_connection || hs->extensions)
        hs->fail = "websocket-bad-response";
    else if (!hs->accept_ok)
        hs->fail = "websocket-bad-accept";
    else if (!hs->protocol_ok)
        hs->fail = "websocket-no-subprotocol";
    return hs->fail ? -1 : 0;
}

static const llhttp_settings_t ws_http_settings = {
    .on_header_field = ws_on_header_field,
    .on_header_value = ws_on_header_value,
    .on_header_value_complete = ws_on_header_value_complete,
    .on_headers_complete = ws_on_headers_complete,
};

static void ws_handshake_free(ws_transport_t *t)
{
    free(t->hs);
    t->hs = NULL;
}

/* Fresh upgrade state with Sec-WebSocket-Key `key` (NULL: a random one). */
static int ws_handshake_new(ws_transport_t *t, const char *key)
{
    ws_handshake_free(t);
    t->hs = calloc(1, sizeof(*t->hs));
    if (t->hs == NULL)
        return UVX_ENOMEM;
    llhttp_init(&t->hs->http, HTTP_RESPONSE, &ws_http_settings);
    t->hs->http.data = t->hs;
    int rc = key ? ws_set_key(t, key) : ws_new_key(t);
    if (rc != 0)
        ws_handshake_free(t);
    return rc;
}

static void ws_start_keepalive(ws_transport_t *t);

/* The 101 checked out: frames from here on. */
static int ws_upgraded(ws_transport_t *t)
{
    uvx_conn_t *conn = t->conn;
    ws_handshake_free(t);
    if (ws_new_context(t) != 0) {
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
    ws_handshake_t *hs = t->hs;
    llhttp_errno_t err = llhttp_execute(&hs->http, data, len);
    if (err == HPE_OK) {
        hs->response_bytes += len;
        if (hs->response_bytes > WS_MAX_RESPONSE)
            conn_transport_failed(conn, "websocket-bad-response");
        return;
    }
    if (err == HPE_PAUSED_UPGRADE) {
        const char *rest = llhttp_get_error_pos(&hs->http);
        size_t consumed = rest ? (size_t)(rest - data) : len;
        if (ws_upgraded(t) != 0 || t->sock != s || t->tearing_down || t->phase != WS_OPEN)
            return;
        if (consumed < len)
            ws_feed_frames(t, data + consumed, len - consumed);
        return;
    }
    if (err == HPE_PAUSED) {
        /* an HTTP answer other than 101: the user may want to know which */
        int status = llhttp_get_status_code(&hs->http);
        conn_protocol_error(conn, "websocket", status);
        if (t->tearing_down || t->sock != s)
            return;
        snprintf(t->cond, sizeof(t->cond), "websocket-http-%d", status);
        conn_transport_failed(conn, t->cond);
        return;
    }
    conn_transport_failed(conn, hs->fail ? hs->fail : "websocket-bad-response");
}

/* ---- sock callbacks ---- */

static int ws_send_upgrade_request(ws_transport_t *t);

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

/* ---- the upgrade request ---- */

static int ws_append_host(buf_t *b, const uvx_conn_t *conn)
{
    int v6 = strchr(conn->host, ':') != NULL;
    int rc = buf_append_str(b, v6 ? "[" : "");
    rc = rc ? rc : buf_append_str(b, conn->host);
    rc = rc ? rc : buf_append_str(b, v6 ? "]" : "");
    if (rc == 0 && conn->port != ws_default_port(conn->direct_tls)) {
        char port[16];
        snprintf(port, sizeof(port), ":%d", conn->port);
        rc = buf_append_str(b, port);
    }
    return rc;
}

static int ws_send_upgrade_request(ws_transport_t *t)
{
    uvx_conn_t *conn = t->conn;
    buf_t *b = &t->wire;
    buf_reset(b);
    int rc = buf_append_str(b, "GET ");
    rc = rc ? rc : buf_append_str(b, conn->path && conn->path[0] ? conn->path : "/");
    rc = rc ? rc : buf_append_str(b, " HTTP/1.1\r\nHost: ");
    rc = rc ? rc : ws_append_host(b, conn);
    rc = rc ? rc
            : buf_append_str(b, "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\n"
                                "Sec-WebSocket-Key: ");
    rc = rc ? rc : buf_append_str(b, t->hs->key);
    rc = rc ? rc : buf_append_str(b, "\r\n");
    for (char **h = conn->http_headers; rc == 0 && h && *h; h++) {
        if (strpbrk(*h, "\r\n") != NULL || strchr(*h, ':') == NULL)
            continue; /* one header per string: no smuggled lines */
        rc = buf_append_str(b, *h);
        rc = rc ? rc : buf_append_str(b, "\r\n");
    }
    rc = rc ? rc : buf_append_str(b, "\r\n");
    if (rc != 0)
        return rc;
    rc = ws_write_wire(t);
    return rc == 0 || t->tearing_down ? 0 : rc;
}

/* ---- keepalive (client pings) ---- */

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
    struct wslay_event_msg ping = {WSLAY_PING, (const uint8_t *)"uvx", 3};
    if (wslay_event_queue_msg(t->ws, &ping) != 0)
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
    ws_stop_pong_timer(t);
    if (conn->ws_ping_interval_ms == 0)
        return;
    if (t->ping_timer == NULL && (t->ping_timer = conn_timer_new(conn)) == NULL)
        return;
    if (t->pong_timer == NULL && (t->pong_timer = conn_timer_new(conn)) == NULL)
        return;
    uv_timer_start(t->ping_timer, ws_on_ping_timer, conn->ws_ping_interval_ms,
                   conn->ws_ping_interval_ms);
}

/* ---- RFC 7395 <open/> and <close/> ---- */

/* Splits "ws[s]://host[:port]/path" (see-other-uri). 0 or UVX_EINVAL. */
static int ws_parse_url(const char *url, int *tls, char **host, int *port, char **path)
{
    const char *rest;
    if (strncmp(url, "wss://", 6) == 0) {
        *tls = 1;
        rest = url + 6;
    } else if (strncmp(url, "ws://", 5) == 0) {
        *tls = 0;
        rest = url + 5;
    } else {
        return UVX_EINVAL;
    }
    const char *hend;
    const char *after;
    if (*rest == '[') {
        hend = strchr(rest, ']');
        if (hend == NULL)
            return UVX_EINVAL;
        rest++;
        after = hend + 1;
    } else {
        hend = rest + strcspn(rest, ":/?#");
        after = hend;
    }
    if (hend == rest)
        return UVX_EINVAL;
    *port = ws_default_port(*tls);
    if (*after == ':') {
        char *end;
        long p = strtol(after + 1, &end, 10);
        if (end == after + 1 || p <= 0 || p > 65535)
            return UVX_EINVAL;
        *port = (int)p;
        after = end;
    }
    if (*after != '\0' && *after != '/')
        return UVX_EINVAL;
    *host = strndup(rest, (size_t)(hend - rest));
    *path = strdup(*after ? after : "/");
    if (*host == NULL || *path == NULL) {
        free(*host);
        free(*path);
        return UVX_ENOMEM;
    }
    return 0;
}

/* Leaves the current socket (politely) and dials the new one. */
static void ws_retire_socket(ws_transport_t *t)
{
    if (t->sock == NULL)
        return;
    ws_send_close(t, WSLAY_CODE_NORMAL_CLOSURE, NULL);
    if (t->ws)
        wslay_event_shutdown_read(t->ws); /* stop this read where it is */
    t->nretired++;
    sock_close(t->sock);
    t->sock = NULL;
}

/* <close see-other-uri='...'/> (RFC 7395 §3.6.1): REDIRECT, then connect
 * to the new endpoint ourselves; never from wss:// down to ws://. */
static void ws_redirect(ws_transport_t *t, const char *uri, uvx_stanza_t *elem)
{
    uvx_conn_t *conn = t->conn;
    int tls = 0, port = 0;
    char *host = NULL, *path = NULL;
    int rc = ws_parse_url(uri, &tls, &host, &port, &path);
    if (rc != 0) {
        conn_transport_failed(conn, rc == UVX_ENOMEM ? "out-of-memory" : "redirect-invalid");
        return;
    }
    if (conn->direct_tls && !tls) {
        free(host);
        free(path);
        conn_transport_failed(conn, "redirect-refused");
        return;
    }
    char *service = strdup(uri);
    if (service == NULL) {
        free(host);
        free(path);
        conn_transport_failed(conn, "out-of-memory");
        return;
    }
    conn_change_status(conn, UVX_STATUS_REDIRECT, uri, elem);
    if (conn->closing || conn->state >= ST_CLOSING || t->tearing_down) {
        free(host);
        free(path);
        free(service);
        return;
    }
    free(conn->host);
    free(conn->path);
    free(conn->service);
    conn->host = host;
    conn->path = path;
    conn->service = service;
    conn->port = port;
    conn->direct_tls = tls;
    ws_retire_socket(t);
    ws_start_socket(conn);
}

static int ws_on_element(uvx_conn_t *conn, uvx_stanza_t *elem)
{
    ws_transport_t *t = ws_of(conn);
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
        if (uri) {
            ws_redirect(t, uri, elem);
        } else if (conn->state == ST_DISCONNECTING) {
            /* our close answered: now the close frames, then the socket */
            t->close_elem_received = 1;
            ws_send_close(t, WSLAY_CODE_NORMAL_CLOSURE, NULL);
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

/* Queues one text message per element the core queued. */
static int ws_queue_messages(ws_transport_t *t)
{
    uvx_conn_t *conn = t->conn;
    size_t start = 0;
    for (size_t i = 0; i <= conn->noutq_marks; i++) {
        /* bytes after the last mark (never expected) go as one more message */
        size_t end = i < conn->noutq_marks ? conn->outq_marks[i] : conn->outq.len;
        if (end > conn->outq.len)
            end = conn->outq.len;
        if (end > start) {
            struct wslay_event_msg m = {WSLAY_TEXT_FRAME, (const uint8_t *)conn->outq.data + start,
                                        end - start};
            int rc = wslay_event_queue_msg(t->ws, &m);
            if (rc != 0)
                return rc == WSLAY_ERR_NOMEM ? UVX_ENOMEM : UVX_ESTATE;
        }
        if (end > start)
            start = end;
    }
    return 0;
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
    if (t->ws)
        wslay_event_shutdown_read(t->ws);
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
    if (t->ws)
        wslay_event_context_free(t->ws);
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
