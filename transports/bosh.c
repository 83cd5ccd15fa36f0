/*
 * XEP-0124/0206 BOSH behind the transport vtable, in the manner of
 * Strophe.js's request manager. A few "slots" each carry one HTTP request
 * at a time on its own keep-alive sock (lib/sock.h); at most the server's
 * `requests` (hold+1) are in flight. Each response body is fed whole to the
 * core's primed parser, which hands the <body/> back to bosh_on_element();
 * its children go on as stanzas. The bytes (requests, bodies, response
 * reading) are in bosh_http.c, sans-I/O.
 *
 * A slot's timer is either the response timeout of its request, the
 * back-off before a resend, or a zero-delay hop that takes a failure out of
 * the sock callback that reported it. A dropped sock's close is counted in
 * conn->pending_closes like any handle the connection closes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bosh.h"
#include "parser.h"

#define BOSH_MAX_RETRIES 5
#define BOSH_MAX_ERRORS 4
#define BOSH_DEFAULT_WAIT 60
#define BOSH_DEFAULT_HOLD 1
#define BOSH_DEFAULT_MAX_BODY (16u * 1024 * 1024)
/* Requests on different connections may reach the server out of order
 * when sent back to back; ejabberd then parks the later one until the
 * earlier (held) one is answered, up to `wait` seconds. So a request
 * follows another one in flight by at least this much. */
#define BOSH_ORDER_GAP_MS 30
/* The polling interval when the server names none (or 0). */
#define BOSH_MIN_POLLING_MS 1000

static void bosh_slot_send(bosh_slot_t *slot);

/* ---- slots and their socks ---- */

static void bosh_on_sock_closed(sock_t *s, void *ud)
{
    bosh_slot_t *slot = ud;
    (void)s;
    conn_handle_closed(slot->t->conn); /* may free everything: touch nothing after */
}

/* Closes the slot's connection (a request on it is abandoned). */
static void bosh_drop_sock(bosh_slot_t *slot)
{
    if (slot->sock == NULL)
        return;
    slot->t->conn->pending_closes++; /* bosh_on_sock_closed gives it back */
    sock_close(slot->sock);
    slot->sock = NULL;
    slot->sock_ready = 0;
}

static void bosh_stop_timer(bosh_slot_t *slot)
{
    if (slot->timer)
        uv_timer_stop(slot->timer);
    slot->timer_mode = TIMER_NONE;
}

static void bosh_on_slot_timer(uv_timer_t *timer);

static int bosh_start_timer(bosh_slot_t *slot, slot_timer_mode_t mode, uint64_t ms)
{
    if (slot->timer == NULL) {
        if ((slot->timer = conn_timer_new(slot->t->conn)) == NULL)
            return UVX_ENOMEM;
        slot->timer->data = slot;
    }
    slot->timer_mode = mode;
    return uv_timer_start(slot->timer, bosh_on_slot_timer, ms, 0);
}

static void bosh_slot_clear_request(bosh_slot_t *slot)
{
    bosh_stop_timer(slot);
    slot->busy = 0;
    slot->dead = 0;
    slot->sends = 0;
    buf_reset(&slot->body);
    buf_reset(&slot->out);
    if (slot->body.cap > 64 * 1024)
        buf_free(&slot->body); /* don't keep a burst's buffer for an idle session */
    if (slot->out.cap > 64 * 1024)
        buf_free(&slot->out);
}

/* A failure seen inside a sock callback (or a write): handled from the
 * slot's timer, so that no teardown runs under the sock's feet. */
static void bosh_slot_failed(bosh_slot_t *slot, int status)
{
    bosh_drop_sock(slot);
    if (!slot->busy)
        return;
    slot->failed_status = status;
    if (bosh_start_timer(slot, TIMER_FAILED, 0) != 0)
        conn_transport_failed(slot->t->conn, "out-of-memory");
}

/* Whether the slot's request is out and its answer is awaited: only then
 * are bytes from its sock a response. A request built but held back (the
 * order gap, a back-off) is not out yet, even on an open connection. */
static int bosh_slot_awaiting(const bosh_slot_t *slot)
{
    return slot->busy && slot->timer_mode == TIMER_RESPONSE;
}

/* Hands the request's bytes to the sock as far as it takes them. */
static void bosh_slot_write(bosh_slot_t *slot)
{
    if (slot->sock == NULL || !slot->sock_ready || slot->out.len == 0)
        return;
    if (sock_write(slot->sock, &slot->out) != 0)
        return; /* `failed` has been called */
    if (slot->out.len == 0)
        conn_transport_wrote(slot->t->conn);
}

static void bosh_on_sock_connected(sock_t *s, void *ud)
{
    bosh_slot_t *slot = ud;
    bosh_transport_t *t = slot->t;
    slot->sock_ready = 1;
    if (sock_secure(s))
        t->conn->secure = 1;
    if (!t->create_sent && !t->attaching && t->conn->state == ST_CONNECTING) {
        /* the first connection is up: the core asks for the session */
        conn_transport_connected(t->conn);
        return;
    }
    if (slot->busy)
        bosh_slot_write(slot);
    else
        bosh_pump(t);
}

static void bosh_on_sock_wrote(sock_t *s, void *ud)
{
    bosh_slot_t *slot = ud;
    (void)s;
    bosh_slot_write(slot);
}

static void bosh_on_sock_failed(sock_t *s, void *ud, const char *condition)
{
    bosh_slot_t *slot = ud;
    bosh_transport_t *t = slot->t;
    (void)s;
    if (!t->create_sent && !t->attaching) {
        /* no session yet: a plain connect failure, as on TCP */
        bosh_drop_sock(slot);
        conn_transport_failed(t->conn, condition);
        return;
    }
    if (!bosh_slot_awaiting(slot)) {
        bosh_drop_sock(slot); /* an idle connection: the next send opens another */
        return;
    }
    bosh_slot_failed(slot, 0);
}

static void bosh_on_response(bosh_slot_t *slot);

static void bosh_on_sock_eof(sock_t *s, void *ud)
{
    bosh_slot_t *slot = ud;
    (void)s;
    if (!bosh_slot_awaiting(slot)) {
        bosh_drop_sock(slot); /* the server closed an idle keep-alive connection */
        return;
    }
    if (!bosh_http_reader_started(&slot->reader)) {
        bosh_slot_failed(slot, 0); /* closed before answering: sent again */
        return;
    }
    if (bosh_http_reader_eof(&slot->reader) != 1) {
        bosh_slot_failed(slot, 0);
        return;
    }
    slot->reader.keep_alive = 0;
    bosh_on_response(slot);
}

static void bosh_on_sock_data(sock_t *s, void *ud, const char *data, size_t len)
{
    bosh_slot_t *slot = ud;
    (void)s;
    if (!bosh_slot_awaiting(slot)) {
        /* nothing was asked on it (yet): not HTTP we can trust. Reading it
         * would take the previous answer for the request not sent yet. */
        bosh_drop_sock(slot);
        return;
    }
    size_t used = 0;
    int rc = bosh_http_reader_feed(&slot->reader, data, len, &used);
    if (rc == 0)
        return;
    if (rc < 0) {
        bosh_slot_failed(slot, 0); /* not HTTP, or too big */
        return;
    }
    if (used < len)
        slot->reader.keep_alive = 0; /* bytes nobody asked for follow */
    bosh_on_response(slot);
}

static const sock_callbacks_t bosh_sock_callbacks = {
    bosh_on_sock_connected, bosh_on_sock_data,   bosh_on_sock_eof, bosh_on_sock_failed, NULL,
    bosh_on_sock_wrote,     bosh_on_sock_closed,
};

static int bosh_slot_open_sock(bosh_slot_t *slot)
{
    bosh_transport_t *t = slot->t;
    uvx_conn_t *conn = t->conn;
    slot->sock = sock_new(conn, &bosh_sock_callbacks, slot);
    if (slot->sock == NULL)
        return UVX_ENOMEM;
    slot->sock_ready = 0;
    bosh_http_reader_init(&slot->reader, conn->limits.max_stanza_size);
    /* HTTPS: the certificate names the web server, not the XMPP domain */
    int rc = sock_connect(slot->sock, conn->host, conn->port, conn->direct_tls, conn->host);
    if (rc != 0) {
        bosh_drop_sock(slot);
        return rc;
    }
    return 0;
}

/* (Re)sends the slot's request: on its open connection, or a new one. */
static void bosh_slot_send(bosh_slot_t *slot)
{
    bosh_transport_t *t = slot->t;
    uvx_conn_t *conn = t->conn;
    slot->sends++;
    buf_reset(&slot->out);
    if (bosh_http_request(&slot->out, &t->target, slot->body.data, slot->body.len) != 0) {
        conn_transport_failed(conn, "out-of-memory");
        return;
    }
    uint64_t timeout = slot->dead ? bosh_secondary_timeout_ms(t->wait) : bosh_timeout_ms(t->wait);
    if (bosh_start_timer(slot, TIMER_RESPONSE, timeout) != 0) {
        conn_transport_failed(conn, "out-of-memory");
        return;
    }
    if (slot->sock == NULL && bosh_slot_open_sock(slot) != 0) {
        bosh_slot_failed(slot, 0);
        return;
    }
    bosh_http_reader_next(&slot->reader);
    if (slot->sends == 1)
        t->last_send_ms = uv_now(conn->ctx->loop);
    if (slot->sends == 1 && slot->rid == t->poll_rid)
        t->poll_sent_ms = t->last_send_ms;
    if (t->body_out) {
        uvx_stanza_t *b = uvx_stanza_from_string(slot->body.data, slot->body.len, NULL);
        if (b)
            t->body_out(conn, b, t->body_ud);
        uvx_stanza_unref(b);
    }
    bosh_slot_write(slot);
}

/* ---- giving up ---- */

static void bosh_give_up(bosh_transport_t *t)
{
    uvx_conn_t *conn = t->conn;
    bosh_store_clear(t);
    if (conn->state < ST_CONNECTED) {
        conn_transport_failed(conn, "giving-up");
        return;
    }
    conn_change_status(conn, UVX_STATUS_CONNTIMEOUT, NULL, NULL);
    conn_do_disconnect(conn, "connection-timeout");
}

/* Sends the request again (same rid) after Strophe's back-off, or gives up. */
static void bosh_slot_retry(bosh_slot_t *slot)
{
    bosh_transport_t *t = slot->t;
    if (slot->sends > BOSH_MAX_RETRIES || t->errors > BOSH_MAX_ERRORS) {
        bosh_give_up(t);
        return;
    }
    uint64_t delay = bosh_backoff_ms(t->wait, slot->sends);
    if (delay == 0) {
        bosh_slot_send(slot);
        return;
    }
    if (bosh_start_timer(slot, TIMER_BACKOFF, delay) != 0)
        conn_transport_failed(t->conn, "out-of-memory");
}

static void bosh_on_slot_timer(uv_timer_t *timer)
{
    bosh_slot_t *slot = timer->data;
    bosh_transport_t *t = slot->t;
    slot_timer_mode_t mode = slot->timer_mode;
    slot->timer_mode = TIMER_NONE;
    if (t->closed || !slot->busy)
        return;
    switch (mode) {
    case TIMER_RESPONSE: /* no answer in time: drop the connection, ask again */
        bosh_drop_sock(slot);
        bosh_slot_retry(slot);
        break;
    case TIMER_FAILED:
        t->errors++;
        conn_protocol_error(t->conn, "HTTP", slot->failed_status);
        if (!t->closed && !t->conn->closing && slot->busy)
            bosh_slot_retry(slot);
        break;
    case TIMER_BACKOFF:
        bosh_slot_send(slot);
        break;
    case TIMER_NONE:
        break;
    }
}

/* ---- responses ---- */

/* HTTP 4xx: the session is gone; Strophe disconnects at once. */
static void bosh_on_client_error(bosh_transport_t *t, int status)
{
    uvx_conn_t *conn = t->conn;
    char cond[24];
    snprintf(cond, sizeof(cond), "http-%d", status);
    bosh_store_clear(t);
    if (conn->state < ST_CONNECTED)
        conn_change_status(conn, UVX_STATUS_CONNFAIL, cond, NULL);
    if (conn->closing || conn->state >= ST_CLOSING)
        return;
    conn_change_status(conn, UVX_STATUS_DISCONNECTING, cond, NULL);
    conn_do_disconnect(conn, cond);
}

/* An earlier request still waiting when a later one was answered is
 * probably lost: it gets the short (secondary) timeout. */
static void bosh_mark_older_dead(bosh_transport_t *t, uint64_t rid)
{
    for (int i = 0; i < BOSH_MAX_SLOTS; i++) {
        bosh_slot_t *s = &t->slots[i];
        if (s->busy && !s->dead && s->rid < rid && s->timer_mode == TIMER_RESPONSE) {
            s->dead = 1;
            uint64_t left = uv_timer_get_due_in(s->timer);
            uint64_t secondary = bosh_secondary_timeout_ms(t->wait);
            if (secondary < left)
                bosh_start_timer(s, TIMER_RESPONSE, secondary);
        }
    }
}

static int bosh_blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
            return 0;
    return 1;
}

/* Feeds a 200's body to the parser. Returns 1 when it was whole <body/>
 * elements (or blank, which Strophe ignores too), 0 when not: a body cut
 * short would leave the parser inside an element, where every later
 * response would vanish. The parser is pooled (lib/parser.h), so it is
 * parked exactly when a feed ended between elements. */
static int bosh_feed_response_body(bosh_transport_t *t, const buf_t *body)
{
    uvx_conn_t *conn = t->conn;
    t->response_stanzas = 0;
    t->response_bodies = 0;
    if (bosh_blank(body->data, body->len))
        return 1;
    conn_transport_data(conn, body->data, body->len);
    if (conn->closing || t->closed || conn->state >= ST_CLOSING)
        return 1; /* gone anyway: nothing to judge */
    return t->response_bodies > 0 && parser_is_parked(conn->parser);
}

/* A 200 whose body is not XML we can read: Strophe's bad-format. */
static void bosh_on_bad_format(bosh_transport_t *t)
{
    uvx_conn_t *conn = t->conn;
    bosh_store_clear(t);
    conn_change_status(conn, UVX_STATUS_CONNFAIL, "bad-format", NULL);
    conn_do_disconnect(conn, "bad-format");
}

static void bosh_on_response(bosh_slot_t *slot)
{
    bosh_transport_t *t = slot->t;
    uvx_conn_t *conn = t->conn;
    int status = slot->reader.status;
    if (!slot->reader.keep_alive)
        bosh_drop_sock(slot);
    if (status >= 400 && status < 500) {
        bosh_slot_clear_request(slot);
        conn_protocol_error(conn, "HTTP", status);
        if (!conn->closing && !t->closed)
            bosh_on_client_error(t, status);
        return;
    }
    if (status != 200) {
        bosh_slot_failed(slot, status); /* 5xx and the like: counted, sent again */
        return;
    }
    /* The request is done before its answer is parsed: what the stanzas
     * make us send may use this slot at once. */
    uint64_t rid = slot->rid;
    request_kind_t kind = slot->kind;
    buf_t body = slot->reader.body;
    slot->reader.body = (buf_t)BUF_INIT;
    bosh_slot_clear_request(slot);
    t->errors = 0;
    bosh_mark_older_dead(t, rid);
    /* The cache no longer asks for this rid before any of its stanzas is
     * handled: a restore must not deliver them twice. */
    bosh_store_save(t);
    if (t->rid_hook)
        t->rid_hook(conn, rid + 1, t->rid_ud);
    int whole = bosh_feed_response_body(t, &body);
    buf_free(&body);
    if (conn->closing || t->closed)
        return;
    if (rid == t->poll_rid)
        t->poll_answered_empty = t->response_stanzas == 0;
    if (kind == REQ_TERMINATE) {
        conn_transport_stream_close(conn); /* our terminate was answered */
        return;
    }
    if (!whole) {
        bosh_on_bad_format(t);
        return;
    }
    /* What the stanzas made us queue goes now, in place of an empty poll */
    if (conn->outq.len && !conn->paused)
        conn_flush_now(conn);
    else
        bosh_pump(t);
    if (conn->closing || t->closed)
        return;
    bosh_store_save(t); /* once connected by this response, or after a request */
}

/* The condition a server terminate carries (Strophe's reading). */
static const char *bosh_terminate_condition(uvx_stanza_t *body)
{
    const char *cond = uvx_stanza_attr(body, "condition");
    uvx_stanza_t *err = uvx_stanza_child_name_ns(body, "error", UVX_NS_STREAMS);
    if (cond && strcmp(cond, "remote-stream-error") == 0 && err &&
        uvx_stanza_child_name_ns(err, "conflict", UVX_NS_STREAMS_ERR))
        return "conflict";
    return cond ? cond : "unknown";
}

static unsigned bosh_attr_uint(uvx_stanza_t *body, const char *name, unsigned dflt)
{
    const char *v = uvx_stanza_attr(body, name);
    char *end;
    if (v == NULL)
        return dflt;
    unsigned long n = strtoul(v, &end, 10);
    return end != v && *end == '\0' && n <= 86400 ? (unsigned)n : dflt;
}

/* The session creation response: the server's terms. */
static int bosh_on_session_created(bosh_transport_t *t, uvx_stanza_t *body)
{
    uvx_conn_t *conn = t->conn;
    const char *sid = uvx_stanza_attr(body, "sid");
    if (sid == NULL || *sid == '\0' || xstrdup_into(&t->sid, sid) != 0) {
        conn_change_status(conn, UVX_STATUS_CONNFAIL, "bad-format", body);
        conn_do_disconnect(conn, "bad-format");
        return -1;
    }
    t->wait = bosh_attr_uint(body, "wait", t->wait);
    t->hold = bosh_attr_uint(body, "hold", t->hold);
    t->requests = bosh_attr_uint(body, "requests", t->hold + 1);
    if (t->requests < 1)
        t->requests = 1;
    if (t->requests > BOSH_MAX_SLOTS)
        t->requests = BOSH_MAX_SLOTS;
    if (t->wait == 0)
        t->wait = 1;
    unsigned polling = bosh_attr_uint(body, "polling", 0);
    t->polling_ms = (uint64_t)(polling > 0 ? polling : 1) * 1000;
    conn_transport_stream_open(conn, body);
    const char *authid = uvx_stanza_attr(body, "authid");
    if (authid && !conn->closing && conn->state < ST_CLOSING)
        xstrdup_into(&conn->stream_id, authid);
    return 0;
}

static int bosh_on_element(uvx_conn_t *conn, uvx_stanza_t *body)
{
    bosh_transport_t *t = bosh_of(conn);
    const char *name = uvx_stanza_name(body);
    const char *ns = uvx_stanza_ns(body);
    if (name == NULL || strcmp(name, "body") != 0 || ns == NULL || strcmp(ns, BOSH_NS) != 0) {
        bosh_store_clear(t);
        conn_change_status(conn,
                           conn->state < ST_CONNECTED ? UVX_STATUS_CONNFAIL : UVX_STATUS_ERROR,
                           "invalid-namespace", body);
        conn_do_disconnect(conn, "invalid-namespace");
        return 1;
    }
    t->response_bodies++;
    if (t->body_in)
        t->body_in(conn, body, t->body_ud);
    if (conn->closing || conn->state >= ST_CLOSING)
        return 1;
    const char *type = uvx_stanza_attr(body, "type");
    if (type && strcmp(type, "terminate") == 0) {
        bosh_store_clear(t);
        if (t->terminate_sent) {
            conn_transport_stream_close(conn);
            return 1;
        }
        const char *cond = bosh_terminate_condition(body);
        conn_change_status(conn, UVX_STATUS_CONNFAIL, cond, body);
        conn_do_disconnect(conn, cond);
        return 1;
    }
    if (t->sid == NULL && bosh_on_session_created(t, body) != 0)
        return 1;
    for (uvx_stanza_t *c = uvx_stanza_children(body); c; c = uvx_stanza_next(c)) {
        if (conn->closing || conn->state >= ST_CLOSING)
            break;
        if (uvx_stanza_is_element(c)) {
            t->response_stanzas++;
            conn_transport_stanza(conn, c);
        }
    }
    return 1;
}

/* ---- sending ---- */

static int bosh_in_flight_count(const bosh_transport_t *t)
{
    int n = 0;
    for (int i = 0; i < BOSH_MAX_SLOTS; i++)
        n += t->slots[i].busy;
    return n;
}

/* A free slot, preferring one whose connection is open. */
static bosh_slot_t *bosh_free_slot(bosh_transport_t *t)
{
    bosh_slot_t *best = NULL;
    for (int i = 0; i < (int)t->requests && i < BOSH_MAX_SLOTS; i++) {
        bosh_slot_t *s = &t->slots[i];
        if (s->busy || s->timer_mode != TIMER_NONE)
            continue;
        if (s->sock_ready)
            return s;
        if (best == NULL || (s->sock && best->sock == NULL))
            best = s;
    }
    return best;
}

/* While authenticated (or waiting for stream features) the server always
 * holds one request, so that it can answer as soon as it has something. */
static int bosh_wants_poll(const bosh_transport_t *t)
{
    const uvx_conn_t *conn = t->conn;
    return t->sid && bosh_in_flight_count(t) == 0 && conn->state < ST_DISCONNECTING &&
           (conn->authenticated || conn->state == ST_STREAM);
}

static void bosh_on_poll_timer(uv_timer_t *timer)
{
    bosh_transport_t *t = timer->data;
    if (!t->closed)
        bosh_pump(t);
}

/* XEP-0124 §12 (and §11): of two empty requests in a row, when the first
 * was answered with nothing, the second waits until `polling` seconds
 * after the first. In a polling session (hold='0') every answer comes at
 * once, so this is what spaces the polls; in a held session it only slows
 * a server that answers polls at once with nothing (say a 200 with an
 * empty body), which would otherwise be asked again back to back. Returns
 * 1 when a poll may go now, else 0 with the poll timer set to pump then. */
static int bosh_poll_may_go(bosh_transport_t *t)
{
    if (t->poll_rid == 0 || !t->poll_answered_empty)
        return 1;
    uint64_t now = uv_now(t->conn->ctx->loop);
    uint64_t due = t->poll_sent_ms + t->polling_ms;
    if (now >= due)
        return 1;
    if (t->poll_timer == NULL) {
        if ((t->poll_timer = conn_timer_new(t->conn)) == NULL)
            return 1; /* out of memory: poll now rather than never */
        t->poll_timer->data = t;
    }
    uv_timer_start(t->poll_timer, bosh_on_poll_timer, due - now, 0);
    return 0;
}

/* What goes next into a free slot: 1 with *kind set, 0 for nothing. */
static int bosh_next_request(bosh_transport_t *t, request_kind_t *kind)
{
    if (t->terminate_sent)
        return 0;
    if (t->sid == NULL) {
        if (t->create_wanted && !t->create_sent) {
            *kind = REQ_CREATE;
            return 1;
        }
        return 0; /* nothing else before the session exists */
    }
    if (t->restart_wanted) {
        *kind = REQ_RESTART;
        return 1;
    }
    if (t->terminate_wanted) {
        *kind = REQ_TERMINATE;
        return 1;
    }
    if (t->pending.len || (bosh_wants_poll(t) && bosh_poll_may_go(t))) {
        *kind = REQ_NORMAL;
        return 1;
    }
    return 0;
}

static int bosh_build_body(bosh_transport_t *t, bosh_slot_t *slot, request_kind_t kind)
{
    uvx_conn_t *conn = t->conn;
    bosh_body_params_t p;
    memset(&p, 0, sizeof(p));
    p.rid = t->next_rid++;
    p.sid = kind == REQ_CREATE ? NULL : t->sid;
    p.to = conn->domain;
    p.route = conn->route;
    p.content = t->target.content_type;
    p.wait = t->wait;
    p.hold = t->hold;
    p.restart = kind == REQ_RESTART;
    p.terminate = kind == REQ_TERMINATE;
    /* a restart carries nothing else (XEP-0206 §5) */
    int carries = kind == REQ_NORMAL || kind == REQ_TERMINATE;
    int empty_poll = kind == REQ_NORMAL && t->pending.len == 0;
    buf_reset(&slot->body);
    int rc = bosh_body_build(&slot->body, &p, carries ? t->pending.data : NULL,
                             carries ? t->pending.len : 0);
    if (rc != 0)
        return rc;
    if (carries) {
        buf_reset(&t->pending);
        if (t->pending.cap > 64 * 1024)
            buf_free(&t->pending);
    }
    t->poll_rid = empty_poll ? p.rid : 0;
    t->poll_answered_empty = 0;
    slot->busy = 1;
    slot->kind = kind;
    slot->rid = p.rid;
    slot->sends = 0;
    slot->dead = 0;
    switch (kind) {
    case REQ_CREATE:
        t->create_sent = 1;
        break;
    case REQ_RESTART:
        t->restart_wanted = 0;
        break;
    case REQ_TERMINATE:
        t->terminate_wanted = 0;
        t->terminate_sent = 1;
        break;
    case REQ_NORMAL:
        break;
    }
    return 0;
}

/* Sends a new request now, or after BOSH_ORDER_GAP_MS since the last one
 * when that one is still in flight. */
static void bosh_slot_start(bosh_transport_t *t, bosh_slot_t *slot)
{
    uint64_t now = uv_now(t->conn->ctx->loop);
    uint64_t since = now - t->last_send_ms;
    if (bosh_in_flight_count(t) > 1 && since < BOSH_ORDER_GAP_MS) {
        if (bosh_start_timer(slot, TIMER_BACKOFF, BOSH_ORDER_GAP_MS - since) != 0)
            conn_transport_failed(t->conn, "out-of-memory");
        return;
    }
    bosh_slot_send(slot);
}

/* Fills free slots with what is waiting, within the server's window. */
void bosh_pump(bosh_transport_t *t)
{
    if (t->pumping) {
        t->pump_again = 1;
        return;
    }
    t->pumping = 1;
    int built = 0;
    do {
        t->pump_again = 0;
        request_kind_t kind;
        while (!t->closed && !t->conn->closing && t->conn->state < ST_CLOSING &&
               bosh_in_flight_count(t) < (t->sid ? (int)t->requests : 1) &&
               bosh_next_request(t, &kind)) {
            bosh_slot_t *slot = bosh_free_slot(t);
            if (slot == NULL)
                break;
            if (bosh_build_body(t, slot, kind) != 0) {
                t->pumping = 0;
                conn_transport_failed(t->conn, "out-of-memory");
                return;
            }
            built = 1;
            bosh_slot_start(t, slot);
        }
    } while (t->pump_again && !t->closed);
    t->pumping = 0;
    /* A restore must not start new requests at a rid the server has seen:
     * it would take their stanzas for a repeat and drop them. */
    if (built && !t->closed && !t->conn->closing)
        bosh_store_save(t);
}

void bosh_resend(bosh_transport_t *t, uint64_t first, uint64_t next, unsigned answered)
{
    for (uint64_t rid = first; rid < next && !t->closed && !t->conn->closing; rid++) {
        if (rid - first < 32 && (answered >> (rid - first)) & 1)
            continue; /* its response came: not asked for (nor delivered) twice */
        bosh_slot_t *slot = bosh_free_slot(t);
        if (slot == NULL)
            break;
        t->next_rid = rid;
        buf_t queued = t->pending; /* not for a rid the server may take as a repeat */
        t->pending = (buf_t)BUF_INIT;
        int rc = bosh_build_body(t, slot, REQ_NORMAL);
        t->pending = queued;
        if (rc != 0) {
            conn_transport_failed(t->conn, "out-of-memory");
            return;
        }
        t->poll_rid = 0; /* a replay, answered at once: not a poll to space */
        bosh_slot_start(t, slot);
    }
    t->next_rid = next;
}

uint64_t bosh_unanswered(const bosh_transport_t *t, unsigned *answered)
{
    uint64_t next = t->next_rid;
    /* the server keeps its last `requests` responses, no more */
    uint64_t floor = next > t->requests ? next - t->requests : 0;
    uint64_t oldest = next;
    for (int i = 0; i < BOSH_MAX_SLOTS; i++) {
        const bosh_slot_t *s = &t->slots[i];
        if (s->busy && s->rid >= floor && s->rid < oldest)
            oldest = s->rid;
    }
    unsigned mask = 0;
    for (uint64_t rid = oldest; rid < next && rid - oldest < 32; rid++) {
        int busy = 0;
        for (int i = 0; i < BOSH_MAX_SLOTS; i++)
            busy |= t->slots[i].busy && t->slots[i].rid == rid;
        if (!busy)
            mask |= 1u << (rid - oldest);
    }
    *answered = mask;
    return oldest;
}

/* ---- vtable ---- */

static int bosh_init(uvx_conn_t *conn)
{
    bosh_transport_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return UVX_ENOMEM;
    t->conn = conn;
    for (int i = 0; i < BOSH_MAX_SLOTS; i++)
        t->slots[i].t = t;
    t->target.host = conn->host;
    t->target.port = conn->port;
    t->target.https = conn->direct_tls;
    t->target.path = conn->path;
    t->target.headers = conn->http_headers;
    /* a <body/> is one element to the parser: its limit is the body's */
    if (conn->limits.max_stanza_size == 0)
        conn->limits.max_stanza_size = BOSH_DEFAULT_MAX_BODY;
    conn->transport = t;
    return 0;
}

/* Forgets the session (not the options) for the next connect/attach. */
void bosh_reset_session(bosh_transport_t *t)
{
    free(t->sid);
    t->sid = NULL;
    t->saved = 0;
    t->errors = 0;
    t->create_wanted = t->create_sent = 0;
    t->restart_wanted = t->terminate_wanted = t->terminate_sent = 0;
    t->attaching = 0;
    t->closed = 0;
    buf_reset(&t->pending);
    t->wait = t->conn->bosh_wait ? t->conn->bosh_wait : BOSH_DEFAULT_WAIT;
    t->hold = t->conn->bosh_hold ? t->conn->bosh_hold : BOSH_DEFAULT_HOLD;
    t->requests = t->hold + 1 > BOSH_MAX_SLOTS ? BOSH_MAX_SLOTS : t->hold + 1;
    t->next_rid = bosh_random_rid();
    t->polling_ms = BOSH_MIN_POLLING_MS;
    t->poll_rid = 0;
    t->poll_answered_empty = 0;
    if (t->poll_timer)
        uv_timer_stop(t->poll_timer);
}

static int bosh_connect(uvx_conn_t *conn)
{
    bosh_transport_t *t = bosh_of(conn);
    bosh_reset_session(t);
    /* The first connection: once it is up the core asks for the session
     * (bosh_on_sock_connected). */
    return bosh_slot_open_sock(&t->slots[0]);
}

static int bosh_open_stream(uvx_conn_t *conn)
{
    bosh_transport_t *t = bosh_of(conn);
    if (t->attaching)
        return 0; /* the session exists already */
    if (t->sid == NULL)
        t->create_wanted = 1;
    else
        t->restart_wanted = 1;
    bosh_pump(t);
    return 0;
}

/* Moves the core's queue into the next <body/> and sends what can go. */
static int bosh_take_queue(uvx_conn_t *conn)
{
    bosh_transport_t *t = bosh_of(conn);
    size_t len = conn->outq.len;
    if (len && buf_append(&t->pending, conn->outq.data, len) != 0)
        return UVX_ENOMEM;
    buf_reset(&conn->outq);
    conn_outq_taken(conn);
    bosh_pump(t);
    return 0;
}

static int bosh_flush(uvx_conn_t *conn)
{
    return bosh_take_queue(conn);
}

static int bosh_close_stream(uvx_conn_t *conn)
{
    bosh_transport_t *t = bosh_of(conn);
    if (!t->terminate_sent)
        t->terminate_wanted = 1;
    bosh_store_clear(t);
    /* What the core queued (the unavailable presence, a stream error) goes
     * inside the terminate body. The core may not flush an empty queue,
     * so the terminate leaves from here. */
    if (conn->raw_out && conn->outq.len)
        conn->raw_out(conn, conn->outq.data, conn->outq.len, conn->raw_ud);
    return bosh_take_queue(conn);
}

static size_t bosh_in_flight(const uvx_conn_t *conn)
{
    const bosh_transport_t *t = bosh_of(conn);
    size_t n = t->pending.len;
    for (int i = 0; i < BOSH_MAX_SLOTS; i++)
        if (t->slots[i].sock)
            n += t->slots[i].out.len + sock_in_flight(t->slots[i].sock);
    return n;
}

static int bosh_close(uvx_conn_t *conn)
{
    bosh_transport_t *t = bosh_of(conn);
    t->closed = 1;
    for (int i = 0; i < BOSH_MAX_SLOTS; i++) {
        bosh_slot_t *slot = &t->slots[i];
        bosh_drop_sock(slot); /* counted in pending_closes already */
        bosh_slot_clear_request(slot);
        if (slot->timer) {
            slot->timer->data = conn;           /* what conn_timer_free's callback expects */
            conn_timer_free(conn, slot->timer); /* counted too */
            slot->timer = NULL;
        }
    }
    if (t->poll_timer) {
        t->poll_timer->data = conn;
        conn_timer_free(conn, t->poll_timer);
        t->poll_timer = NULL;
    }
    return 0;
}

static void bosh_destroy(uvx_conn_t *conn)
{
    bosh_transport_t *t = bosh_of(conn);
    for (int i = 0; i < BOSH_MAX_SLOTS; i++) {
        bosh_http_reader_free(&t->slots[i].reader);
        buf_free(&t->slots[i].body);
        buf_free(&t->slots[i].out);
    }
    buf_free(&t->pending);
    free((char *)t->target.content_type);
    free(t->cookie);
    free(t->session_file);
    free(t->sid);
    free(t);
    conn->transport = NULL;
}

const transport_vtable_t transport_bosh = {
    .name = "bosh",
    .framed = 1,
    .message_marks = 0,
    .init = bosh_init,
    .connect = bosh_connect,
    .open_stream = bosh_open_stream,
    .close_stream = bosh_close_stream,
    .flush = bosh_flush,
    .start_tls = NULL,
    .channel_binding = NULL,
    .in_flight = bosh_in_flight,
    .close = bosh_close,
    .destroy = bosh_destroy,
    .on_element = bosh_on_element,
};
