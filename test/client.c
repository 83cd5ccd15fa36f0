#include "client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"

void tservice(const test_server_t *srv, char *buf, size_t len)
{
    snprintf(buf, len, "tcp://127.0.0.1:%d", srv->c2s_port);
}

void tclient_on_status(uvx_conn_t *conn, int status, const char *condition, uvx_stanza_t *elem,
                       void *ud)
{
    tclient_t *c = ud;
    (void)elem;
    if (c->nstatus < TCLIENT_MAX_STATUS) {
        c->status[c->nstatus] = status;
        snprintf(c->condition[c->nstatus], sizeof(c->condition[0]), "%s",
                 condition ? condition : "");
        c->nstatus++;
    }
    if (status == UVX_STATUS_CONNECTED || status == UVX_STATUS_ATTACHED)
        c->connected = 1;
    if (status == UVX_STATUS_DISCONNECTED) {
        c->disconnected = 1;
        if (c->close_on_disconnect)
            uvx_conn_close(conn, NULL);
    }
}

void tclient_options(uvx_conn_options_t *o, const char *mechs[2], const char *mech)
{
    uvx_conn_options_init(o);
    o->allow_plain = 1;
    if (mech) {
        mechs[0] = mech;
        mechs[1] = NULL;
        o->mechanisms = mechs;
    }
}

int tclient_init(tclient_t *c, uvx_ctx_t *ctx, const char *service, const uvx_conn_options_t *opts)
{
    memset(c, 0, sizeof(*c));
    uvx_conn_options_t o;
    if (opts == NULL) {
        tclient_options(&o, NULL, NULL);
        o.tls_disabled = 1; /* these tests exercise the core in the clear */
        opts = &o;
    }
    int rc = uvx_conn_new(ctx, service, opts, &c->conn);
    if (rc == 0)
        uvx_conn_set_data(c->conn, c);
    return rc;
}

int tclient_connect(tclient_t *c, const char *jid, const char *pass)
{
    return uvx_connect(c->conn, jid, pass, tclient_on_status, c, NULL);
}

static void tclient_on_closed(uvx_conn_t *conn)
{
    tclient_t *c = uvx_conn_get_data(conn);
    c->closed = 1;
}

void tclient_close(tclient_t *c, uv_loop_t *loop)
{
    if (c->conn == NULL)
        return;
    uvx_conn_close(c->conn, tclient_on_closed);
    run_until(loop, &c->closed, 1, 5000);
    c->conn = NULL;
}

int tclient_saw(const tclient_t *c, int status)
{
    for (int i = 0; i < c->nstatus; i++)
        if (c->status[i] == status)
            return 1;
    return 0;
}

const char *tclient_condition(const tclient_t *c, int status)
{
    for (int i = c->nstatus - 1; i >= 0; i--)
        if (c->status[i] == status)
            return c->condition[i];
    return NULL;
}

static void on_watchdog(uv_timer_t *t)
{
    *(int *)t->data = 1;
}

/* Runs the loop until *a >= target or *b >= target (b may be NULL), for at
 * most timeout_ms. */
static void run_until_either(uv_loop_t *loop, const int *a, const int *b, int target,
                             unsigned timeout_ms)
{
    int expired = 0;
    uv_timer_t watchdog;
    uv_timer_init(loop, &watchdog);
    watchdog.data = &expired;
    uv_timer_start(&watchdog, on_watchdog, timeout_ms, 0);
    while (*a < target && (b == NULL || *b < target) && !expired)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&watchdog, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

int run_until(uv_loop_t *loop, const int *flag, int target, unsigned timeout_ms)
{
    run_until_either(loop, flag, NULL, target, timeout_ms);
    return *flag >= target;
}

void run_for(uv_loop_t *loop, unsigned ms)
{
    int never = 0;
    run_until(loop, &never, 1, ms);
}

static void close_walk_cb(uv_handle_t *h, void *arg)
{
    (void)arg;
    fprintf(stderr, "# handle left open: type %s\n", uv_handle_type_name(h->type));
}

int loop_finish(uv_loop_t *loop)
{
    for (int i = 0; i < 100 && uv_loop_alive(loop); i++)
        uv_run(loop, UV_RUN_NOWAIT);
    int rc = uv_loop_close(loop);
    if (rc != 0)
        uv_walk(loop, close_walk_cb, NULL);
    return rc;
}

int tserver_start(test_server_t *srv, const char *kind, const char *extra_users)
{
    const char *req = getenv("UVX_REQUIRE_SERVERS");
    if (!test_server_available(kind)) {
        if (req && strcmp(req, "1") == 0)
            tap_fail(__FILE__, __LINE__, "%s is not installed but UVX_REQUIRE_SERVERS=1", kind);
        return 0;
    }
    if (test_server_start(srv, kind, extra_users) != 0) {
        tap_fail(__FILE__, __LINE__, "could not start %s", kind);
        return 0;
    }
    return 1;
}

void loopenv_init(loopenv_t *e)
{
    uv_loop_init(&e->loop);
    e->ctx = uvx_ctx_new(&e->loop);
    CHECK(e->ctx != NULL);
}

void loopenv_done(loopenv_t *e)
{
    for (int i = 0; i < 10; i++)
        uv_run(&e->loop, UV_RUN_NOWAIT);
    CHECK_INT(uvx_ctx_free(e->ctx), 0);
    CHECK_INT(loop_finish(&e->loop), 0);
}

int tclient_login(loopenv_t *e, tclient_t *c, const char *service, const uvx_conn_options_t *opts,
                  const char *jid, const char *pass)
{
    int rc = tclient_init(c, e->ctx, service, opts);
    CHECK_INT(rc, 0);
    if (rc != 0)
        return 0;
    rc = tclient_connect(c, jid, pass);
    CHECK_INT(rc, 0);
    if (rc != 0)
        return 0;
    /* a refused login ends at once rather than at the deadline */
    run_until_either(&e->loop, &c->connected, &c->disconnected, 1, 15000);
    return c->connected;
}

void tclient_disconnect_and_close(loopenv_t *e, tclient_t *c)
{
    if (c->conn && c->connected && !c->disconnected) {
        CHECK_INT(uvx_disconnect(c->conn, NULL), 0);
        CHECK(run_until(&e->loop, &c->disconnected, 1, 8000));
        CHECK(!tclient_saw(c, UVX_STATUS_CONNTIMEOUT));
    }
    tclient_close(c, &e->loop);
}

static int count_numbered(uvx_conn_t *conn, uvx_stanza_t *msg, void *ud)
{
    tcounter_t *cnt = ud;
    (void)conn;
    const char *body = uvx_stanza_child_text(msg, "body");
    if (body == NULL || atoi(body) != cnt->n)
        cnt->out_of_order++;
    cnt->n++;
    return 1;
}

void tcount_messages(tclient_t *c, tcounter_t *cnt, const char *type)
{
    CHECK(uvx_add_handler(c->conn, count_numbered, cnt, NULL, "message", type, NULL, NULL, 0) !=
          NULL);
}

int tsend_numbered(tclient_t *from, const char *to, const char *type, int first, int count)
{
    for (int i = first; i < first + count; i++) {
        uvx_stanza_t *m =
            type ? uvx_stanza_fmt("<message to='%s' type='%s'><body>%d</body></message>", to, type,
                                  i)
                 : uvx_stanza_fmt("<message to='%s'><body>%d</body></message>", to, i);
        CHECK(m != NULL);
        if (m == NULL)
            return 0;
        int rc = uvx_send(from->conn, m);
        uvx_stanza_unref(m);
        CHECK_INT(rc, 0);
        if (rc != 0)
            return 0;
    }
    return 1;
}

int tiq_ok(uvx_conn_t *conn, uvx_stanza_t *s, void *ud)
{
    tiq_result_t *r = ud;
    (void)conn;
    r->ok++;
    snprintf(r->type, sizeof(r->type), "%s", uvx_stanza_type(s));
    r->done = 1;
    return 0;
}

int tiq_err(uvx_conn_t *conn, uvx_stanza_t *s, void *ud)
{
    tiq_result_t *r = ud;
    (void)conn;
    if (s == NULL)
        r->timeout++;
    else
        r->err++;
    r->done = 1;
    return 0;
}

int tping(loopenv_t *e, tclient_t *c, const char *to, tiq_result_t *r, unsigned timeout_ms)
{
    uvx_builder_t *iq = to ? uvx_iq("type", "get", "to", to, NULL) : uvx_iq("type", "get", NULL);
    uvx_stanza_t *ping = uvx_b_done(uvx_b_c(iq, "ping", "xmlns", UVX_NS_PING, NULL));
    CHECK_INT(uvx_send_iq(c->conn, ping, tiq_ok, tiq_err, r, timeout_ms), 0);
    CHECK(uvx_stanza_id(ping) != NULL); /* send_iq gave it one to match the answer */
    uvx_stanza_unref(ping);
    return run_until(&e->loop, &r->done, 1, timeout_ms + 1000);
}
