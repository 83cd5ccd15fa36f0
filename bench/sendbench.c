/*
 * sendbench: send throughput. Logs in, sends its initial presence (which
 * puts bench/floodserver --mode sink into counting), then sends N chat
 * messages as fast as the server reads them, building each one with the
 * builder as an application would; the last has id='last'. uvx_set_high_water
 * paces it: sending stops above the mark and resumes when the queue has
 * drained to half of it. The server answers <message id='done'/> once it
 * has read the last one; then it prints
 *
 *   RESULT messages=N wall_s=S cpu_s=C msgs_per_s=R
 *
 * timed from CONNECTED to 'done' (cpu: getrusage of the whole process).
 *
 *   sendbench [--allow-plain] [--mech NAME] SERVICE JID PASSWORD [--messages N]
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "benchutil.h"
#include "cli.h"
#include "uvxmpp.h"

#define HIGH_WATER (512 * 1024)

typedef struct sendbench {
    uvx_conn_t *conn;
    uv_timer_t login_timer;
    unsigned long total;
    unsigned long sent;
    int above_high_water;
    int failed;
    bench_clock_t clock;
    int done;
    int exit_code;
} sendbench_t;

/* <message to=… type='chat' id=… xml:lang='en'><body>…</body>
 * <active xmlns='http://jabber.org/protocol/chatstates'/></message> */
static int send_one(sendbench_t *sb)
{
    bench_message_t m;
    bench_message_fill(&m, sb->sent, sb->total);
    uvx_builder_t *b = uvx_msg("to", "juliet@example.com/balcony", "type", "chat", "id", m.id,
                               "xml:lang", "en", NULL);
    uvx_b_up(uvx_b_t(uvx_b_c(b, "body", NULL), m.body));
    uvx_stanza_t *msg = uvx_b_done(uvx_b_c(b, "active", "xmlns", BENCH_NS_CHATSTATES, NULL));
    if (msg == NULL)
        return UVX_ENOMEM;
    int rc = uvx_send(sb->conn, msg);
    uvx_stanza_unref(msg);
    return rc;
}

/* Sends until the queue rises above the high-water mark or all are sent. */
static void send_fill(sendbench_t *sb)
{
    while (!sb->above_high_water && sb->sent < sb->total && !sb->failed) {
        int rc = send_one(sb);
        if (rc != 0) {
            fprintf(stderr, "sendbench: send: %s\n", uvx_strerror(rc));
            sb->failed = 1;
            uvx_disconnect(sb->conn, "send failed");
            return;
        }
        sb->sent++;
    }
}

static void send_on_high_water(uvx_conn_t *conn, int above, void *ud)
{
    sendbench_t *sb = ud;
    (void)conn;
    sb->above_high_water = above;
    if (!above)
        send_fill(sb);
}

static int send_on_done(uvx_conn_t *conn, uvx_stanza_t *msg, void *ud)
{
    sendbench_t *sb = ud;
    (void)msg;
    bench_report(&sb->clock, sb->sent);
    sb->done = 1;
    sb->exit_code = sb->sent == sb->total ? 0 : 1;
    uvx_disconnect(conn, NULL);
    return 0;
}

static void send_on_login_timeout(uv_timer_t *t)
{
    sendbench_t *sb = t->data;
    fprintf(stderr, "sendbench: not logged in after %d s\n", BENCH_LOGIN_TIMEOUT_S);
    uvx_conn_close(sb->conn, NULL);
    uv_close((uv_handle_t *)&sb->login_timer, NULL);
}

static void send_on_status(uvx_conn_t *conn, int status, const char *condition, uvx_stanza_t *elem,
                           void *ud)
{
    sendbench_t *sb = ud;
    (void)elem;
    switch (status) {
    case UVX_STATUS_CONNECTED: {
        uv_timer_stop(&sb->login_timer);
        uvx_add_handler(conn, send_on_done, sb, NULL, "message", NULL, "done", NULL, 0);
        uvx_set_high_water(conn, HIGH_WATER, send_on_high_water, sb);
        bench_clock_start(&sb->clock);
        uvx_stanza_t *pres = uvx_b_done(uvx_pres(NULL));
        uvx_send(conn, pres);
        uvx_stanza_unref(pres);
        send_fill(sb);
        break;
    }
    case UVX_STATUS_CONNFAIL:
    case UVX_STATUS_AUTHFAIL:
    case UVX_STATUS_ERROR:
    case UVX_STATUS_CONNTIMEOUT:
        if (!sb->done)
            fprintf(stderr, "sendbench: %s: %s\n", uvx_status_name(status),
                    condition ? condition : "no reason given");
        break;
    case UVX_STATUS_DISCONNECTED:
        if (!sb->done)
            fprintf(stderr, "sendbench: disconnected after sending %lu messages%s%s\n", sb->sent,
                    condition ? ": " : "", condition ? condition : "");
        uvx_conn_close(conn, NULL);
        if (!uv_is_closing((uv_handle_t *)&sb->login_timer))
            uv_close((uv_handle_t *)&sb->login_timer, NULL);
        break;
    default:
        break;
    }
}

int main(int argc, char **argv)
{
    cli_t cli;
    cli_parse(&cli, argc, argv, 0, "[--messages N]");
    signal(SIGPIPE, SIG_IGN);
    sendbench_t sb;
    memset(&sb, 0, sizeof(sb));
    sb.total = bench_messages_option(cli.prog, cli.nargs, cli.args);
    sb.exit_code = 1;
    uv_loop_t *loop = uv_default_loop();
    uvx_ctx_t *ctx = uvx_ctx_new(loop);
    int rc = ctx ? uvx_conn_new(ctx, cli.service, &cli.opts, &sb.conn) : UVX_ENOMEM;
    if (rc != 0) {
        fprintf(stderr, "sendbench: %s: %s\n", cli.service, uvx_strerror(rc));
        return 1;
    }
    rc = uvx_connect(sb.conn, cli.jid, cli.password, send_on_status, &sb, NULL);
    if (rc != 0) {
        fprintf(stderr, "sendbench: %s: %s\n", cli.jid, uvx_strerror(rc));
        uvx_conn_close(sb.conn, NULL);
        uv_run(loop, UV_RUN_DEFAULT);
        uvx_ctx_free(ctx);
        return 1;
    }
    uv_timer_init(loop, &sb.login_timer);
    sb.login_timer.data = &sb;
    uv_timer_start(&sb.login_timer, send_on_login_timeout, BENCH_LOGIN_TIMEOUT_S * 1000, 0);
    uv_run(loop, UV_RUN_DEFAULT);
    uvx_ctx_free(ctx);
    uv_loop_close(loop);
    return sb.exit_code;
}
