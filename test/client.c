#include "client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"

void tservice(const test_server_t *srv, char *buf, size_t len)
{
    snprintf(buf, len, "tcp://127.0.0.1:%d", srv->c2s_port);
}

static void tclient_on_status(uvx_conn_t *conn, int status, const char *condition,
                              uvx_stanza_t *elem, void *ud)
{
    tclient_t *c = ud;
    (void)elem;
    if (c->nstatus < TCLIENT_MAX_STATUS) {
        c->status[c->nstatus] = status;
        snprintf(c->condition[c->nstatus], sizeof(c->condition[0]), "%s",
                 condition ? condition : "");
        c->nstatus++;
    }
    if (status == UVX_STATUS_CONNECTED)
        c->connected = 1;
    if (status == UVX_STATUS_DISCONNECTED) {
        c->disconnected = 1;
        if (c->close_on_disconnect)
            uvx_conn_close(conn, NULL);
    }
}

int tclient_init(tclient_t *c, uvx_ctx_t *ctx, const char *service, const uvx_conn_options_t *opts)
{
    memset(c, 0, sizeof(*c));
    uvx_conn_options_t o;
    if (opts == NULL) {
        uvx_conn_options_init(&o);
        o.allow_plain = 1;
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

int run_until(uv_loop_t *loop, const int *flag, int target, unsigned timeout_ms)
{
    int expired = 0;
    uv_timer_t watchdog;
    uv_timer_init(loop, &watchdog);
    watchdog.data = &expired;
    uv_timer_start(&watchdog, on_watchdog, timeout_ms, 0);
    while (*flag < target && !expired)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&watchdog, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
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
