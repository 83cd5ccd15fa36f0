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
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bosh_http.h"
#include "conn.h"
#include "sock.h"

#define BOSH_MAX_SLOTS 4
#define BOSH_MAX_RETRIES 5
#define BOSH_MAX_ERRORS 4
#define BOSH_DEFAULT_WAIT 60
#define BOSH_DEFAULT_HOLD 1
#define BOSH_DEFAULT_MAX_BODY (16u * 1024 * 1024)
#define BOSH_RID_LIMIT ((uint64_t)1 << 53)
/* Requests on different connections may reach the server out of order
 * when sent back to back; ejabberd then parks the later one until the
 * earlier (held) one is answered, up to `wait` seconds. So a request
 * follows another one in flight by at least this much. */
#define BOSH_ORDER_GAP_MS 30

typedef enum slot_timer_mode {
    TIMER_NONE,
    TIMER_RESPONSE, /* the request is out; no answer yet */
    TIMER_BACKOFF,  /* waiting to send it again */
    TIMER_FAILED,   /* a failure to handle outside the sock callback */
} slot_timer_mode_t;

typedef enum request_kind {
    REQ_NORMAL,
    REQ_CREATE,
    REQ_RESTART,
    REQ_TERMINATE,
} request_kind_t;

struct bosh_transport;

typedef struct bosh_slot {
    struct bosh_transport *t;
    sock_t *sock;
    int sock_ready; /* connected (TLS up for https) */
    bosh_http_reader_t reader;
    uv_timer_t *timer;
    slot_timer_mode_t timer_mode;
    int failed_status; /* TIMER_FAILED: the HTTP status (0: no answer) */
    /* the request this slot carries */
    int busy;
    request_kind_t kind;
    uint64_t rid;
    unsigned sends;
    int dead;   /* a later request was answered first */
    buf_t body; /* the <body/>, kept for resends */
    buf_t out;  /* HTTP bytes the sock has not taken yet */
} bosh_slot_t;

typedef struct bosh_transport {
    uvx_conn_t *conn;
    bosh_slot_t slots[BOSH_MAX_SLOTS];
    bosh_http_target_t target;
    char *cookie;
    int keepalive;
    char *session_file;
    uvx_bosh_store_t store;
    int have_store;
    void (*rid_hook)(uvx_conn_t *, uint64_t, void *);
    void *rid_ud;
    uvx_xml_hook body_in, body_out;
    void *body_ud;
    /* the session */
    char *sid;
    uint64_t next_rid;
    unsigned wait, hold, requests;
    int errors;        /* failed responses in a row */
    int create_wanted; /* open_stream() before the session exists */
    int create_sent;
    int restart_wanted; /* open_stream() after SASL */
    int terminate_wanted;
    int terminate_sent;
    int attaching; /* uvx_attach(): no session request */
    buf_t pending; /* stanzas taken from the core's queue, not sent yet */
    int pumping, pump_again;
    uint64_t last_send_ms; /* loop time of the last first send */
    int closed;            /* close() ran; nothing more goes out */
} bosh_transport_t;

static bosh_transport_t *bosh_of(const uvx_conn_t *conn)
{
    return conn->transport;
}

static int bosh_is(const uvx_conn_t *conn)
{
    return conn && conn->tp == &transport_bosh && conn->transport;
}

static void bosh_pump(bosh_transport_t *t);
static void bosh_slot_send(bosh_slot_t *slot);

/* ---- session store ---- */

static int bosh_file_save(const uvx_bosh_session_t *s, void *ud)
{
    const char *path = ud;
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
        return UVX_EINVAL;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return -errno;
    FILE *f = fdopen(fd, "w");
    if (f == NULL) {
        close(fd);
        return UVX_ENOMEM;
    }
    fprintf(f, "%s\n%s\n%llu\n%u %u %u\n", s->jid, s->sid, (unsigned long long)s->rid, s->wait,
            s->hold, s->requests);
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        return -errno;
    return 0;
}

static int bosh_read_line(FILE *f, char *buf, size_t cap)
{
    if (fgets(buf, (int)cap, f) == NULL)
        return -1;
    size_t n = strcspn(buf, "\n");
    if (buf[n] != '\n')
        return -1; /* too long */
    buf[n] = '\0';
    return n > 0 ? 0 : -1;
}

static int bosh_file_load(uvx_bosh_session_t *s, void *ud)
{
    FILE *f = fopen(ud, "r");
    if (f == NULL)
        return UVX_ENOTFOUND;
    char line[64];
    unsigned long long rid = 0;
    int ok = bosh_read_line(f, s->jid, sizeof(s->jid)) == 0 &&
             bosh_read_line(f, s->sid, sizeof(s->sid)) == 0 &&
             bosh_read_line(f, line, sizeof(line)) == 0 && sscanf(line, "%llu", &rid) == 1 &&
             bosh_read_line(f, line, sizeof(line)) == 0 &&
             sscanf(line, "%u %u %u", &s->wait, &s->hold, &s->requests) == 3;
    fclose(f);
    s->rid = rid;
    return ok ? 0 : UVX_ENOTFOUND;
}

static void bosh_file_clear(void *ud)
{
    unlink(ud);
}

static void bosh_store_save(bosh_transport_t *t)
{
    uvx_conn_t *conn = t->conn;
    if (!t->keepalive || !t->have_store || t->sid == NULL || conn->state != ST_CONNECTED ||
        t->terminate_wanted || t->terminate_sent)
        return;
    uvx_bosh_session_t s;
    memset(&s, 0, sizeof(s));
    snprintf(s.jid, sizeof(s.jid), "%s", uvx_conn_jid(conn));
    snprintf(s.sid, sizeof(s.sid), "%s", t->sid);
    s.rid = t->next_rid;
    s.wait = t->wait;
    s.hold = t->hold;
    s.requests = t->requests;
    t->store.save(&s, t->store.ud);
}

static void bosh_store_clear(bosh_transport_t *t)
{
    if (t->keepalive && t->have_store && t->store.clear)
        t->store.clear(t->store.ud);
}

/* ---- options ---- */

static char *bosh_join_cookies(const char *const *cookies)
{
    buf_t b = BUF_INIT;
    for (const char *const *c = cookies; *c; c++) {
        if (strpbrk(*c, "\r\n;") != NULL || strchr(*c, '=') == NULL) {
            buf_free(&b);
            return NULL;
        }
        if ((b.len && buf_append_str(&b, "; ")) || buf_append_str(&b, *c)) {
            buf_free(&b);
            return NULL;
        }
    }
    return b.data ? b.data : strdup("");
}

int bosh_set_options(uvx_conn_t *conn, const uvx_conn_options_t *opts)
{
    bosh_transport_t *t = bosh_of(conn);
    if (opts->bosh_content_type) {
        if (strpbrk(opts->bosh_content_type, "\r\n") != NULL)
            return UVX_EINVAL;
        if ((t->target.content_type = strdup(opts->bosh_content_type)) == NULL)
            return UVX_ENOMEM;
    }
    if (opts->bosh_cookies && opts->bosh_cookies[0] &&
        (t->cookie = bosh_join_cookies(opts->bosh_cookies)) == NULL)
        return UVX_EINVAL;
    t->target.cookie = t->cookie;
    t->keepalive = opts->bosh_keepalive;
    if (opts->bosh_store) {
        if (opts->bosh_store->save == NULL || opts->bosh_store->load == NULL)
            return UVX_EINVAL;
        t->store = *opts->bosh_store;
        t->have_store = 1;
    } else if (opts->bosh_session_file) {
        if ((t->session_file = strdup(opts->bosh_session_file)) == NULL)
            return UVX_ENOMEM;
        uvx_bosh_store_t file = {bosh_file_save, bosh_file_load, bosh_file_clear, t->session_file};
        t->store = file;
        t->have_store = 1;
    }
    return 0;
}

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
    bosh_slot_failed(slot, 0);
}

static void bosh_on_response(bosh_slot_t *slot);

static void bosh_on_sock_eof(sock_t *s, void *ud)
{
    bosh_slot_t *slot = ud;
    (void)s;
    if (!slot->busy || !bosh_http_reader_started(&slot->reader)) {
        /* the server closed a keep-alive connection between requests, or
         * before answering: the request (if any) is sent again */
        bosh_slot_failed(slot, 0);
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
    if (!slot->busy) {
        bosh_drop_sock(slot); /* nothing was asked: not HTTP we can trust */
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
    if (t->rid_hook)
        t->rid_hook(conn, rid + 1, t->rid_ud);
    if (body.len && !conn->closing && !t->closed)
        conn_transport_data(conn, body.data, body.len);
    buf_free(&body);
    if (conn->closing || t->closed)
        return;
    if (kind == REQ_TERMINATE) {
        conn_transport_stream_close(conn); /* our terminate was answered */
        return;
    }
    /* What the stanzas made us queue goes now, in place of an empty poll */
    if (conn->outq.len && !conn->paused)
        conn_flush_now(conn);
    else
        bosh_pump(t);
    if (conn->closing || t->closed)
        return;
    bosh_store_save(t); /* with the rid after the request just sent, if any */
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
        if (uvx_stanza_is_element(c))
            conn_transport_stanza(conn, c);
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
    if (t->pending.len || bosh_wants_poll(t)) {
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
static void bosh_pump(bosh_transport_t *t)
{
    if (t->pumping) {
        t->pump_again = 1;
        return;
    }
    t->pumping = 1;
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
            bosh_slot_start(t, slot);
        }
    } while (t->pump_again && !t->closed);
    t->pumping = 0;
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
static void bosh_reset_session(bosh_transport_t *t)
{
    free(t->sid);
    t->sid = NULL;
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

/* ---- public API ---- */

static void bosh_attach_failed(uvx_conn_t *conn, uvx_status_cb cb, void *ud, const char *cond)
{
    if (cb)
        cb(conn, UVX_STATUS_ATTACHFAIL, cond, NULL, ud);
}

int uvx_attach(uvx_conn_t *conn, const char *jid, const char *sid, uint64_t rid, uvx_status_cb cb,
               void *ud, unsigned wait, unsigned hold, unsigned wind)
{
    if (conn == NULL)
        return UVX_EINVAL;
    if (!bosh_is(conn)) {
        bosh_attach_failed(conn, cb, ud, "not-bosh");
        return UVX_ENOTSUP;
    }
    if (conn->closing || (conn->state != ST_IDLE && conn->state != ST_DISCONNECTED))
        return UVX_ESTATE;
    char *domain = NULL;
    if (jid == NULL || sid == NULL || *sid == '\0' || rid == 0 || rid >= BOSH_RID_LIMIT ||
        strpbrk(sid, "<>&'\"") != NULL || uvx_jid_split(jid, NULL, &domain, NULL) != 0) {
        bosh_attach_failed(conn, cb, ud, "bad-format");
        return UVX_EINVAL;
    }
    bosh_transport_t *t = bosh_of(conn);
    char *resource = uvx_jid_resource(jid);
    free(conn->domain);
    conn->domain = domain;
    int rc = xstrdup_into(&conn->jid, jid);
    rc = rc ? rc : xstrdup_into(&conn->bound_jid, resource ? jid : NULL);
    free(resource);
    conn->bosh_wait = wait;
    conn->bosh_hold = hold;
    bosh_reset_session(t);
    rc = rc ? rc : xstrdup_into(&t->sid, sid);
    if (rc != 0)
        return rc;
    t->next_rid = rid;
    if (wind)
        t->requests = wind > BOSH_MAX_SLOTS ? BOSH_MAX_SLOTS : wind;
    t->attaching = 1;
    conn->status_cb = cb;
    conn->status_ud = ud;
    conn->secure = 0;
    if (conn->disconnection_timeout_ms == 0)
        conn->disconnection_timeout_ms = 3000;
    /* the parser primed as for a new session, but no session request */
    conn_transport_connected(conn);
    if (conn->closing || conn->state != ST_STREAM)
        return UVX_ENOMEM;
    conn->state = ST_CONNECTED;
    conn->authenticated = 1;
    handlers_authenticated(conn);
    conn_change_status(conn, UVX_STATUS_ATTACHED, NULL, NULL);
    if (!conn->closing && conn->state == ST_CONNECTED)
        bosh_pump(t); /* collect what the server holds for the session */
    return 0;
}

/* Whether a cached session may be restored as `jid` (Strophe's test). */
static int bosh_session_matches(const char *cached, const char *jid)
{
    if (jid == NULL)
        return 1;
    if (uvx_jid_bare_equal(cached, jid))
        return 1;
    char *node = uvx_jid_node(jid);
    char *domain = uvx_jid_domain(cached);
    int same_domain = node == NULL && domain && strcmp(domain, jid) == 0;
    free(node);
    free(domain);
    return same_domain;
}

int uvx_restore(uvx_conn_t *conn, const char *jid, uvx_status_cb cb, void *ud)
{
    if (conn == NULL)
        return UVX_EINVAL;
    if (!bosh_is(conn))
        return UVX_ENOTFOUND;
    bosh_transport_t *t = bosh_of(conn);
    uvx_bosh_session_t s;
    memset(&s, 0, sizeof(s));
    if (!t->have_store || t->store.load(&s, t->store.ud) != 0 || s.sid[0] == '\0' || s.rid == 0 ||
        !bosh_session_matches(s.jid, jid))
        return UVX_ENOTFOUND;
    return uvx_attach(conn, s.jid, s.sid, s.rid, cb, ud, s.wait, s.hold, s.requests);
}

int uvx_bosh_set_rid_hook(uvx_conn_t *conn, void (*cb)(uvx_conn_t *conn, uint64_t rid, void *ud),
                          void *ud)
{
    if (!bosh_is(conn))
        return UVX_ENOTSUP;
    bosh_transport_t *t = bosh_of(conn);
    t->rid_hook = cb;
    t->rid_ud = ud;
    return 0;
}

int uvx_bosh_set_body_hooks(uvx_conn_t *conn, uvx_xml_hook input, uvx_xml_hook output, void *ud)
{
    if (!bosh_is(conn))
        return UVX_ENOTSUP;
    bosh_transport_t *t = bosh_of(conn);
    t->body_in = input;
    t->body_out = output;
    t->body_ud = ud;
    return 0;
}

int uvx_bosh_session(const uvx_conn_t *conn, const char **sid, uint64_t *rid)
{
    if (!bosh_is(conn))
        return UVX_ENOTSUP;
    const bosh_transport_t *t = bosh_of(conn);
    if (t->sid == NULL)
        return UVX_ENOTFOUND;
    if (sid)
        *sid = t->sid;
    if (rid)
        *rid = t->next_rid;
    return 0;
}
