/*
 * flood: receive throughput. Logs in, sends its initial presence (which
 * tells bench/floodserver to start), counts the incoming <message/>
 * stanzas with a handler until the one with id='last', prints
 *
 *   RESULT messages=N wall_s=S cpu_s=C msgs_per_s=R
 *
 * timed from CONNECTED to 'last' (cpu: getrusage of the whole process over
 * the same window), then disconnects.
 *
 * With --self N it floods itself instead, for a real server (and any
 * transport, BOSH included): it sends N chat messages to its own full JID,
 * the last with id='last', paced by uvx_set_high_water, and counts them
 * as they come back; the figures then cover both directions.
 *
 *   flood [--allow-plain] [--mech NAME] SERVICE JID PASSWORD [--self N]
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "benchutil.h"
#include "cli.h"
#include "uvxmpp.h"

#define SELF_HIGH_WATER (256 * 1024)

typedef struct flood {
    uvx_conn_t *conn;
    uv_timer_t login_timer;
    unsigned long messages;
    bench_clock_t clock;
    int done;
    int exit_code;
    unsigned long self_total; /* --self N */
    unsigned long self_sent;
    int above_high_water;
} flood_t;

static int flood_on_message(uvx_conn_t *conn, uvx_stanza_t *msg, void *ud)
{
    flood_t *f = ud;
    f->messages++;
    const char *id = uvx_stanza_id(msg);
    if (id == NULL || strcmp(id, "last") != 0)
        return 1;
    bench_report(&f->clock, f->messages);
    f->done = 1;
    f->exit_code = 0;
    uvx_disconnect(conn, NULL);
    return 0;
}

/* --self: sends to our own JID until the queue is above the high water. */
static void flood_send_self(flood_t *f)
{
    char id[32], body[64];
    while (f->self_sent < f->self_total && !f->above_high_water) {
        f->self_sent++;
        snprintf(id, sizeof(id), f->self_sent == f->self_total ? "last" : "m%lu", f->self_sent);
        snprintf(body, sizeof(body), "flood message %lu", f->self_sent);
        uvx_stanza_t *m = uvx_b_done(
            uvx_b_t(uvx_b_c(uvx_msg("to", uvx_conn_jid(f->conn), "type", "chat", "id", id, NULL),
                            "body", NULL),
                    body));
        int rc = m ? uvx_send(f->conn, m) : UVX_ENOMEM;
        uvx_stanza_unref(m);
        if (rc != 0) {
            fprintf(stderr, "flood: send: %s\n", uvx_strerror(rc));
            return;
        }
    }
}

static void flood_on_high_water(uvx_conn_t *conn, int above, void *ud)
{
    flood_t *f = ud;
    (void)conn;
    f->above_high_water = above;
    if (!above)
        flood_send_self(f);
}

static void flood_on_login_timeout(uv_timer_t *t)
{
    flood_t *f = t->data;
    fprintf(stderr, "flood: not logged in after %d s\n", BENCH_LOGIN_TIMEOUT_S);
    uvx_conn_close(f->conn, NULL);
    uv_close((uv_handle_t *)&f->login_timer, NULL);
}

static void flood_on_status(uvx_conn_t *conn, int status, const char *condition, uvx_stanza_t *elem,
                            void *ud)
{
    flood_t *f = ud;
    (void)elem;
    switch (status) {
    case UVX_STATUS_CONNECTED: {
        uv_timer_stop(&f->login_timer);
        uvx_add_handler(conn, flood_on_message, f, NULL, "message", NULL, NULL, NULL, 0);
        uvx_stanza_t *pres = uvx_b_done(uvx_pres(NULL));
        uvx_send(conn, pres);
        uvx_stanza_unref(pres);
        bench_clock_start(&f->clock);
        if (f->self_total) {
            uvx_set_high_water(conn, SELF_HIGH_WATER, flood_on_high_water, f);
            flood_send_self(f);
        }
        break;
    }
    case UVX_STATUS_CONNFAIL:
    case UVX_STATUS_AUTHFAIL:
    case UVX_STATUS_ERROR:
    case UVX_STATUS_CONNTIMEOUT:
        if (!f->done)
            fprintf(stderr, "flood: %s: %s\n", uvx_status_name(status),
                    condition ? condition : "no reason given");
        break;
    case UVX_STATUS_DISCONNECTED:
        if (!f->done)
            fprintf(stderr, "flood: disconnected after %lu messages%s%s\n", f->messages,
                    condition ? ": " : "", condition ? condition : "");
        uvx_conn_close(conn, NULL);
        if (!uv_is_closing((uv_handle_t *)&f->login_timer))
            uv_close((uv_handle_t *)&f->login_timer, NULL);
        break;
    default:
        break;
    }
}

int main(int argc, char **argv)
{
    cli_t cli;
    cli_parse(&cli, argc, argv, 0, NULL);
    unsigned long self_total = 0;
    if (cli.nargs == 2 && strcmp(cli.args[0], "--self") == 0)
        self_total = strtoul(cli.args[1], NULL, 10);
    if ((cli.nargs != 0 && self_total == 0) || (cli.nargs != 0 && cli.nargs != 2)) {
        fprintf(stderr, "usage: %s [--allow-plain] [--mech NAME] SERVICE JID PASSWORD [--self N]\n",
                cli.prog);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    uv_loop_t *loop = uv_default_loop();
    uvx_ctx_t *ctx = uvx_ctx_new(loop);
    flood_t f;
    memset(&f, 0, sizeof(f));
    f.exit_code = 1;
    f.self_total = self_total;
    int rc = ctx ? uvx_conn_new(ctx, cli.service, &cli.opts, &f.conn) : UVX_ENOMEM;
    if (rc != 0) {
        fprintf(stderr, "flood: %s: %s\n", cli.service, uvx_strerror(rc));
        return 1;
    }
    rc = uvx_connect(f.conn, cli.jid, cli.password, flood_on_status, &f, NULL);
    if (rc != 0) {
        fprintf(stderr, "flood: %s: %s\n", cli.jid, uvx_strerror(rc));
        uvx_conn_close(f.conn, NULL);
        uv_run(loop, UV_RUN_DEFAULT);
        uvx_ctx_free(ctx);
        return 1;
    }
    uv_timer_init(loop, &f.login_timer);
    f.login_timer.data = &f;
    uv_timer_start(&f.login_timer, flood_on_login_timeout, BENCH_LOGIN_TIMEOUT_S * 1000, 0);
    uv_run(loop, UV_RUN_DEFAULT);
    uvx_ctx_free(ctx);
    uv_loop_close(loop);
    return f.exit_code;
}
