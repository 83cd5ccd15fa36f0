/*
 * flood_strophe: bench/flood.c written against libstrophe, for comparison.
 * Logs in, sends its initial presence (bench/floodserver's start signal),
 * counts incoming <message/> stanzas until the one with id='last', prints
 *
 *   RESULT messages=N wall_s=S cpu_s=C msgs_per_s=R
 *
 * timed from the CONNECT event to 'last' (cpu: getrusage of the process).
 *
 *   flood_strophe [--allow-plain] [--mech NAME] SERVICE JID PASSWORD
 *
 * libstrophe sends PLAIN on an unencrypted stream without being asked, and
 * picks the SASL mechanism itself: --allow-plain and --mech are accepted
 * for a command line identical to flood's.
 */
#include <stdio.h>
#include <string.h>

#include "benchutil.h"
#include "cli.h"
#include "strophe_common.h"

typedef struct flood {
    strophe_client_t client;
    unsigned long messages;
    bench_clock_t clock;
    int done;
    int exit_code;
} flood_t;

static int flood_on_message(xmpp_conn_t *conn, xmpp_stanza_t *msg, void *ud)
{
    flood_t *f = ud;
    f->messages++;
    const char *id = xmpp_stanza_get_id(msg);
    if (id == NULL || strcmp(id, "last") != 0)
        return 1;
    bench_report(&f->clock, f->messages);
    f->done = 1;
    f->exit_code = 0;
    xmpp_disconnect(conn);
    return 0;
}

static void flood_on_conn(xmpp_conn_t *conn, xmpp_conn_event_t event, int error,
                          xmpp_stream_error_t *stream_error, void *ud)
{
    flood_t *f = ud;
    if (event == XMPP_CONN_CONNECT) {
        f->client.connected = 1;
        xmpp_handler_add(conn, flood_on_message, NULL, "message", NULL, f);
        strophe_send_presence(&f->client);
        bench_clock_start(&f->clock);
        return;
    }
    if (!f->done)
        strophe_print_end(&f->client, event, error, stream_error, "", f->messages);
    xmpp_stop(f->client.ctx);
}

static int flood_on_login_timeout(xmpp_ctx_t *ctx, void *ud)
{
    flood_t *f = ud;
    if (!f->client.connected) {
        fprintf(stderr, "flood_strophe: not logged in after %d s\n", BENCH_LOGIN_TIMEOUT_S);
        xmpp_stop(ctx);
    }
    return 0; /* once */
}

int main(int argc, char **argv)
{
    cli_t cli;
    cli_parse(&cli, argc, argv, 0, NULL);
    if (cli.nargs != 0) {
        fprintf(stderr, "usage: %s [--allow-plain] [--mech NAME] SERVICE JID PASSWORD\n", cli.prog);
        return 2;
    }
    flood_t f;
    memset(&f, 0, sizeof(f));
    f.exit_code = 1;
    if (strophe_client_init(&f.client, "flood_strophe", cli.service) != 0)
        return 1;
    if (strophe_client_connect(&f.client, cli.jid, cli.password, flood_on_conn, &f) == 0) {
        xmpp_ctx_t *ctx = f.client.ctx;
        xmpp_global_timed_handler_add(ctx, flood_on_login_timeout, BENCH_LOGIN_TIMEOUT_S * 1000,
                                      &f);
        xmpp_run(ctx);
        /* xmpp_ctx_free() does not free global handlers still registered. */
        xmpp_global_timed_handler_delete(ctx, flood_on_login_timeout);
    }
    strophe_client_free(&f.client);
    return f.exit_code;
}
