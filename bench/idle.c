/*
 * idle: opens N concurrent sessions in one loop, waits until all are
 * bound, lets them sit idle, and reports the process's resident memory per
 * session. Source addresses are spread over 127.0.0.1, 127.0.0.2, ... so
 * that more sessions than one ephemeral port range holds can be opened.
 *
 *   idle [--allow-plain] [--mech NAME] SERVICE JID PASSWORD N
 *
 * prints: RESULT conns=N rss_before_kb=A rss_after_kb=B per_conn_bytes=C bind_s=S
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cli.h"
#include "uvxmpp.h"

#define PER_SOURCE_ADDR 25000 /* below the ~28 000 ephemeral ports of one address */

typedef struct idle {
    int n;
    int connected;
    int failed;
    int disconnected;
    int closed;
    int stopping;
    uvx_conn_t **conns;
} idle_t;

static long rss_kb(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL)
        return -1;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
        resident = -1;
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static void on_status(uvx_conn_t *conn, int status, const char *cond, uvx_stanza_t *el, void *ud)
{
    idle_t *st = ud;
    (void)el;
    switch (status) {
    case UVX_STATUS_CONNECTED:
        st->connected++;
        break;
    case UVX_STATUS_CONNFAIL:
    case UVX_STATUS_AUTHFAIL:
        if (st->failed++ < 5)
            fprintf(stderr, "idle: %s: %s\n", uvx_status_name(status), cond ? cond : "");
        break;
    case UVX_STATUS_DISCONNECTED: {
        uvx_conn_t **slot = uvx_conn_get_data(conn);
        *slot = NULL; /* closed here: the teardown loop must not see it again */
        st->disconnected++;
        uvx_conn_close(conn, NULL);
        break;
    }
    default:
        break;
    }
}

static void on_tick(uv_timer_t *t)
{
    idle_t *st = t->data;
    if (st->connected + st->failed >= st->n || st->stopping)
        uv_stop(t->loop);
}

static void on_signal(void *ud)
{
    ((idle_t *)ud)->stopping = 1;
}

static void raise_nofile(int n)
{
    struct rlimit rl = {(rlim_t)n * 2 + 1024, (rlim_t)n * 2 + 1024};
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0 && getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv)
{
    cli_t cli;
    cli_parse(&cli, argc, argv, 1, "N");
    idle_t st = {0};
    st.n = atoi(cli.args[0]);
    if (st.n <= 0) {
        fprintf(stderr, "idle: N must be a positive number\n");
        return 2;
    }
    raise_nofile(st.n);
    uv_loop_t *loop = uv_default_loop();
    uvx_ctx_t *ctx = uvx_ctx_new(loop);
    st.conns = calloc((size_t)st.n, sizeof(*st.conns));
    malloc_trim(0);
    long before = rss_kb();
    uint64_t t0 = uv_hrtime();
    char addr[32];
    for (int i = 0; i < st.n; i++) {
        uvx_conn_options_t o = cli.opts;
        snprintf(addr, sizeof(addr), "127.0.0.%d", 1 + i / PER_SOURCE_ADDR);
        if (cli.opts.bind_address == NULL)
            o.bind_address = addr;
        o.connect_timeout_ms = 60000;
        int rc = uvx_conn_new(ctx, cli.service, &o, &st.conns[i]);
        if (rc == 0)
            uvx_conn_set_data(st.conns[i], &st.conns[i]);
        if (rc == 0)
            rc = uvx_connect(st.conns[i], cli.jid, cli.password, on_status, &st, NULL);
        if (rc != 0) {
            fprintf(stderr, "idle: %s\n", uvx_strerror(rc));
            return 1;
        }
    }
    cli_signals_start(loop, on_signal, &st);
    uv_timer_t tick;
    uv_timer_init(loop, &tick);
    tick.data = &st;
    uv_timer_start(&tick, on_tick, 50, 50);
    uv_run(loop, UV_RUN_DEFAULT);
    double bind_s = (double)(uv_hrtime() - t0) / 1e9;
    if (st.failed || st.connected < st.n) {
        fprintf(stderr, "idle: only %d of %d sessions bound (%d failed)\n", st.connected, st.n,
                st.failed);
    } else {
        /* let the sessions sit idle a moment, then measure */
        uv_timer_start(&tick, on_tick, 1000, 0);
        uv_run(loop, UV_RUN_DEFAULT);
        malloc_trim(0);
        long after = rss_kb();
        printf(
            "RESULT conns=%d rss_before_kb=%ld rss_after_kb=%ld per_conn_bytes=%ld bind_s=%.2f\n",
            st.n, before, after, (after - before) * 1024 / st.n, bind_s);
        fflush(stdout);
    }
    /* leave politely */
    uv_timer_stop(&tick);
    uv_close((uv_handle_t *)&tick, NULL);
    for (int i = 0; i < st.n; i++)
        if (st.conns[i] && uvx_disconnect(st.conns[i], NULL) != 0)
            uvx_conn_close(st.conns[i], NULL);
    cli_signals_close();
    uv_run(loop, UV_RUN_DEFAULT);
    uvx_ctx_free(ctx);
    free(st.conns);
    return st.failed || st.connected < st.n ? 1 : 0;
}
