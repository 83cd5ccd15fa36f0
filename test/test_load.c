/*
 * Scale and failure against a real server owned by this program: 1 000
 * concurrent sessions in one loop, and the server killed under live
 * sessions.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "client.h"
#include "server.h"
#include "tap.h"
#include "uvxmpp.h"

#define NSESSIONS 1000

static const char *kind = "prosody";

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

typedef struct load {
    int connected;
    int disconnected;
    int failed;
    int closed;
} load_t;

static void load_on_status(uvx_conn_t *conn, int status, const char *cond, uvx_stanza_t *el,
                           void *ud)
{
    load_t *l = ud;
    (void)el;
    if (status == UVX_STATUS_CONNECTED)
        l->connected++;
    else if (status == UVX_STATUS_CONNFAIL || status == UVX_STATUS_AUTHFAIL) {
        if (l->failed++ < 5)
            printf("# %s: %s %s\n", uvx_conn_jid(conn), uvx_status_name(status), cond ? cond : "");
    } else if (status == UVX_STATUS_DISCONNECTED)
        l->disconnected++;
}

static void load_on_closed(uvx_conn_t *conn)
{
    load_t *l = uvx_conn_get_data(conn);
    l->closed++;
}

static void test_1000_sessions(void)
{
    test_server_t srv;
    if (!tserver_start(&srv, kind, NULL))
        return;
    CHECK_INT(test_server_register_many(&srv, "load", NSESSIONS, "loadpass"), 0);
    raise_nofile();
    uv_loop_t loop;
    uv_loop_init(&loop);
    uvx_ctx_t *ctx = uvx_ctx_new(&loop);
    char service[64];
    tservice(&srv, service, sizeof(service));
    uvx_conn_options_t o;
    uvx_conn_options_init(&o);
    o.allow_plain = 1;
    o.tls_disabled = 1;
    /* This is about many sessions in one loop, not about SASL's cost: PLAIN
     * keeps 1 000 server-side PBKDF2s from starving the servers' accept
     * loops on a 2-core machine (test_sasl_servers covers SCRAM). */
    static const char *const plain_only[] = {"PLAIN", NULL};
    o.mechanisms = plain_only;
    o.connect_timeout_ms = 30000;
    static uvx_conn_t *conns[NSESSIONS];
    load_t l = {0};
    uint64_t t0 = uv_hrtime();
    for (int i = 0; i < NSESSIONS; i++) {
        char jid[64];
        snprintf(jid, sizeof(jid), "load%d@localhost", i + 1);
        CHECK_INT(uvx_conn_new(ctx, service, &o, &conns[i]), 0);
        uvx_conn_set_data(conns[i], &l);
        CHECK_INT(uvx_connect(conns[i], jid, "loadpass", load_on_status, &l, NULL), 0);
    }
    CHECK(run_until(&loop, &l.connected, NSESSIONS, 180000));
    printf("# %d sessions bound in %.2f s\n", l.connected, (double)(uv_hrtime() - t0) / 1e9);
    CHECK_INT(l.connected, NSESSIONS);
    CHECK_INT(l.failed, 0);
    int bound = 0;
    for (int i = 0; i < NSESSIONS; i++) {
        char prefix[32];
        snprintf(prefix, sizeof(prefix), "load%d@localhost/", i + 1);
        const char *jid = uvx_conn_jid(conns[i]);
        bound += jid && strncmp(jid, prefix, strlen(prefix)) == 0;
    }
    CHECK_INT(bound, NSESSIONS);
    for (int i = 0; i < NSESSIONS; i++)
        CHECK_INT(uvx_disconnect(conns[i], NULL), 0);
    CHECK(run_until(&loop, &l.disconnected, NSESSIONS, 120000));
    CHECK_INT(l.disconnected, NSESSIONS);
    for (int i = 0; i < NSESSIONS; i++)
        uvx_conn_close(conns[i], load_on_closed);
    CHECK(run_until(&loop, &l.closed, NSESSIONS, 10000));
    for (int i = 0; i < 10; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    CHECK_INT(uvx_ctx_free(ctx), 0);
    CHECK_INT(loop_finish(&loop), 0);
    test_server_stop(&srv);
}

static void test_server_killed(void)
{
    test_server_t srv;
    if (!tserver_start(&srv, kind, NULL))
        return;
    uv_loop_t loop;
    uv_loop_init(&loop);
    uvx_ctx_t *ctx = uvx_ctx_new(&loop);
    char service[64];
    tservice(&srv, service, sizeof(service));
    tclient_t a, b;
    CHECK_INT(tclient_init(&a, ctx, service, NULL), 0);
    CHECK_INT(tclient_init(&b, ctx, service, NULL), 0);
    CHECK_INT(tclient_connect(&a, "alice@localhost", "alicepass"), 0);
    CHECK_INT(tclient_connect(&b, "bob@localhost", "bobpass"), 0);
    CHECK(run_until(&loop, &a.connected, 1, 10000));
    CHECK(run_until(&loop, &b.connected, 1, 10000));
    /* something in flight when the server dies */
    uvx_stanza_t *m = uvx_stanza_fmt("<message to='bob@localhost'><body>x</body></message>");
    uvx_send(a.conn, m);
    uvx_stanza_unref(m);
    CHECK_INT(kill(srv.pid, SIGKILL), 0);
    CHECK(run_until(&loop, &a.disconnected, 1, 10000));
    CHECK(run_until(&loop, &b.disconnected, 1, 10000));
    CHECK_STR(tclient_condition(&a, UVX_STATUS_DISCONNECTED), "connection-lost");
    CHECK_STR(tclient_condition(&b, UVX_STATUS_DISCONNECTED), "connection-lost");
    CHECK(!tclient_saw(&a, UVX_STATUS_CONNFAIL)); /* it was connected: no CONNFAIL */
    CHECK_INT(uvx_send(a.conn, NULL), UVX_EINVAL);
    tclient_close(&a, &loop);
    tclient_close(&b, &loop);
    for (int i = 0; i < 10; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    CHECK_INT(uvx_ctx_free(ctx), 0);
    CHECK_INT(loop_finish(&loop), 0);
    test_server_stop(&srv);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        kind = argv[1];
    tap_run("server killed under live sessions -> DISCONNECTED connection-lost",
            test_server_killed);
    tap_run("1 000 concurrent sessions in one loop: all bound, all closed", test_1000_sessions);
    return tap_done();
}
