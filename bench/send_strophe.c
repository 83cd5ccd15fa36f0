/*
 * send_strophe: bench/sendbench.c written against libstrophe, for
 * comparison. Logs in, sends its initial presence, then N chat messages
 * built with libstrophe's stanza API (the last with id='last'), and waits
 * for the server's <message id='done'/>; prints
 *
 *   RESULT messages=N wall_s=S cpu_s=C msgs_per_s=R
 *
 * timed from the CONNECT event to 'done' (cpu: getrusage of the process).
 * libstrophe's send queue has no bound, so the program drives the loop
 * itself: it tops the queue up to QUEUE_MAX stanzas between calls to
 * xmpp_run_once(), which writes what the socket takes.
 *
 *   send_strophe [--allow-plain] [--mech NAME] SERVICE JID PASSWORD [--messages N]
 *
 * libstrophe sends PLAIN on an unencrypted stream without being asked and
 * picks the SASL mechanism itself: --allow-plain and --mech are accepted
 * for a command line identical to sendbench's.
 */
#include <stdio.h>
#include <string.h>

#include "benchutil.h"
#include "cli.h"
#include "strophe_common.h"

#define QUEUE_MAX 2000 /* stanzas: about as many bytes as sendbench's high-water mark */

typedef struct sendbench {
    strophe_client_t client;
    unsigned long total;
    unsigned long sent;
    bench_clock_t clock;
    int stopped;
    int done;
    int exit_code;
} sendbench_t;

/* The same message as sendbench's, with libstrophe's stanza API. */
static void send_one(sendbench_t *sb)
{
    bench_message_t m;
    bench_message_fill(&m, sb->sent, sb->total);
    xmpp_ctx_t *ctx = sb->client.ctx;
    xmpp_stanza_t *msg = xmpp_message_new(ctx, "chat", "juliet@example.com/balcony", m.id);
    xmpp_stanza_set_attribute(msg, "xml:lang", "en");
    xmpp_message_set_body(msg, m.body);
    xmpp_stanza_t *active = xmpp_stanza_new(ctx);
    xmpp_stanza_set_name(active, "active");
    xmpp_stanza_set_ns(active, BENCH_NS_CHATSTATES);
    xmpp_stanza_add_child_ex(msg, active, 0); /* the message takes our reference */
    xmpp_send(sb->client.conn, msg);
    xmpp_stanza_release(msg);
}

static int send_on_done(xmpp_conn_t *conn, xmpp_stanza_t *msg, void *ud)
{
    sendbench_t *sb = ud;
    const char *id = xmpp_stanza_get_id(msg);
    if (id == NULL || strcmp(id, "done") != 0)
        return 1;
    bench_report(&sb->clock, sb->sent);
    sb->done = 1;
    sb->exit_code = sb->sent == sb->total ? 0 : 1;
    xmpp_disconnect(conn);
    return 0;
}

static void send_on_conn(xmpp_conn_t *conn, xmpp_conn_event_t event, int error,
                         xmpp_stream_error_t *stream_error, void *ud)
{
    sendbench_t *sb = ud;
    if (event == XMPP_CONN_CONNECT) {
        sb->client.connected = 1;
        xmpp_handler_add(conn, send_on_done, NULL, "message", NULL, sb);
        bench_clock_start(&sb->clock);
        strophe_send_presence(&sb->client);
        return;
    }
    if (!sb->done)
        strophe_print_end(&sb->client, event, error, stream_error, "sending ", sb->sent);
    sb->stopped = 1;
}

/* Drives libstrophe: tops the queue up, then lets xmpp_run_once() write
 * (and read); it waits up to 1 ms in select() when there is nothing to do. */
static void send_run(sendbench_t *sb)
{
    strophe_client_t *c = &sb->client;
    double deadline = bench_wall_seconds() + BENCH_LOGIN_TIMEOUT_S;
    while (!sb->stopped) {
        if (!c->connected && bench_wall_seconds() > deadline) {
            fprintf(stderr, "send_strophe: not logged in after %d s\n", BENCH_LOGIN_TIMEOUT_S);
            return;
        }
        if (c->connected && !sb->done) {
            int room = QUEUE_MAX - xmpp_conn_send_queue_len(c->conn);
            for (; room > 0 && sb->sent < sb->total; room--, sb->sent++)
                send_one(sb);
        }
        xmpp_run_once(c->ctx, 1);
    }
}

int main(int argc, char **argv)
{
    cli_t cli;
    cli_parse(&cli, argc, argv, 0, "[--messages N]");
    sendbench_t sb;
    memset(&sb, 0, sizeof(sb));
    if (strophe_client_init(&sb.client, "send_strophe", cli.service) != 0)
        return 1;
    sb.total = bench_messages_option(cli.prog, cli.nargs, cli.args);
    sb.exit_code = 1;
    if (strophe_client_connect(&sb.client, cli.jid, cli.password, send_on_conn, &sb) == 0)
        send_run(&sb);
    strophe_client_free(&sb.client);
    return sb.exit_code;
}
