/*
 * The WebSocket session (RFC 6455) of the WebSocket transport, on wslay's
 * event API: wslay masks our frames, answers pings, checks the peer's
 * frames and runs the closing handshake.
 *
 * wslay runs without buffering: the payload of each text message goes to
 * the core's parser as it arrives, so a message costs no copy and no
 * allocation, and a frame announcing more than max_stanza_size is refused
 * (close 1008) as soon as wslay reports it, with its first payload bytes:
 * nothing of it is ever stored.
 *
 * RFC 7395 §3.3.3 puts exactly one complete element in each message. The
 * core's parser is primed (framed = 1), so it does not see message bounds;
 * we count the elements it delivers during a message and ask it, once the
 * message is complete, whether it stands between elements again.
 */
#include <string.h>

#include "parser.h"
#include "ws.h"

/* ---- random bytes ---- */

void ws_random(ws_transport_t *t, unsigned char *out, size_t len)
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

/* ---- output ---- */

int ws_write_wire(ws_transport_t *t)
{
    if (t->sock == NULL || t->wire.len == 0 || !sock_writable(t->sock))
        return 0;
    int rc = sock_write(t->sock, &t->wire);
    if (rc == 0 && t->wire.len == 0)
        buf_free(&t->wire); /* an idle session keeps no frame buffer */
    return rc;
}

int ws_pump(ws_transport_t *t)
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

void ws_send_close(ws_transport_t *t, uint16_t code, const char *reason)
{
    if (t->ws == NULL || t->phase != WS_OPEN)
        return;
    wslay_event_queue_close(t->ws, code, (const uint8_t *)reason, reason ? strlen(reason) : 0);
    ws_pump(t);
}

void ws_stop_reading(ws_transport_t *t)
{
    if (t->ws)
        wslay_event_shutdown_read(t->ws); /* stop this read where it is */
}

int ws_queue_messages(ws_transport_t *t)
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

int ws_queue_ping(ws_transport_t *t)
{
    struct wslay_event_msg ping = {WSLAY_PING, (const uint8_t *)"uvx", 3};
    return wslay_event_queue_msg(t->ws, &ping);
}

/* ---- input ---- */

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

/* RFC 7395 §3.3.3 wants one whole element per message and says nothing of
 * the close code. A server breaking it sends well-formed WebSocket, so not
 * 1002 (which wslay uses for broken frames); its message holds data that
 * does not fit the type of the message, which is what 1007 is for. */
static void ws_refuse_framing(ws_transport_t *t)
{
    ws_refuse(t, WSLAY_CODE_INVALID_FRAME_PAYLOAD_DATA, "websocket-bad-framing");
}

/* 1 while the message's bytes are fed to the parser (not after a refusal,
 * a teardown or a redirect that left this session). */
static int ws_reading_messages(const ws_transport_t *t)
{
    const uvx_conn_t *conn = t->conn;
    return t->local_fail == NULL && !t->tearing_down && t->phase == WS_OPEN && !conn->closing &&
           conn->state < ST_CLOSING;
}

int ws_frames_element(ws_transport_t *t)
{
    if (!ws_reading_messages(t))
        return 1; /* what is left of a message we no longer read */
    if (++t->msg_elements == 1)
        return 0;
    ws_refuse_framing(t); /* a second element in one message */
    return 1;
}

/* Text ahead of the message's element would be dropped by the parser
 * (text between stanzas is white space there): refuse it ourselves. */
static void ws_check_leading(ws_transport_t *t, const uint8_t *data, size_t len)
{
    for (size_t i = 0; i < len && t->msg_leading; i++) {
        if (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n')
            continue;
        t->msg_leading = 0;
        if (data[i] != '<')
            ws_refuse_framing(t);
    }
}

/* A text message is complete: it must have been exactly one element,
 * leaving the parser between elements (not inside a second one, not
 * holding the start of one for the next message). */
static void ws_check_message(ws_transport_t *t)
{
    if (!ws_reading_messages(t))
        return;
    if (t->msg_elements != 1 || !parser_between_stanzas(t->conn->parser))
        ws_refuse_framing(t);
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
        t->msg_len = 0;
        t->msg_elements = 0;
        t->msg_leading = 1;
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
    if (wslay_is_ctrl_frame(t->frame_opcode) || !ws_reading_messages(t) || arg->data_length == 0)
        return;
    t->msg_len += arg->data_length;
    if (t->msg_leading) {
        ws_check_leading(t, arg->data, arg->data_length);
        if (t->local_fail)
            return;
    }
    conn_transport_data(t->conn, (const char *)arg->data, arg->data_length);
}

static void ws_on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                      void *ud)
{
    ws_transport_t *t = ud;
    (void)ctx;
    if (arg->opcode == WSLAY_TEXT_FRAME)
        ws_check_message(t);
    else if (arg->opcode == WSLAY_PONG)
        ws_pong_received(t);
    /* a ping is answered by wslay; a close is looked at once recv returns */
}

static const struct wslay_event_callbacks ws_callbacks = {
    ws_on_recv,        ws_on_send,           ws_on_genmask, ws_on_frame_start,
    ws_on_frame_chunk, NULL /* frame end */, ws_on_msg,
};

int ws_frames_start(ws_transport_t *t)
{
    ws_frames_free(t);
    if (wslay_event_context_client_init(&t->ws, &ws_callbacks, t) != 0)
        return UVX_ENOMEM;
    /* payloads go straight to the parser; our own check bounds messages */
    wslay_event_config_set_no_buffering(t->ws, 1);
    wslay_event_config_set_max_recv_msg_length(t->ws, UINT64_MAX);
    t->frame_opcode = 0;
    t->msg_len = 0;
    t->msg_elements = 0;
    t->msg_leading = 0;
    t->local_fail = NULL;
    t->close_elem_received = 0;
    return 0;
}

void ws_frames_free(ws_transport_t *t)
{
    if (t->ws)
        wslay_event_context_free(t->ws);
    t->ws = NULL;
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

void ws_feed_frames(ws_transport_t *t, const char *data, size_t len)
{
    t->in = data;
    t->in_len = len;
    int rc = wslay_event_recv(t->ws);
    t->in = NULL;
    t->in_len = 0;
    ws_after_frames(t, rc);
}
