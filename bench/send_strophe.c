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
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strophe.h>
#include <sys/resource.h>
#include <time.h>

#include "cli.h"

#define LOGIN_TIMEOUT_S 10
#define QUEUE_MAX 2000 /* stanzas: about as many bytes as sendbench's high-water mark */
#define DEFAULT_MESSAGES 1000000

#define NS_CHATSTATES "http://jabber.org/protocol/chatstates"
#define BODY_FMT                                                                                   \
    "Wherefore art thou & why <3? It's caf\xc3\xa9 time in \xe6\x97\xa5\xe6\x9c\xac "              \
    "\xf0\x9f\x8e\x89 (%lu) lorem ipsum"

typedef struct sendbench {
    xmpp_ctx_t *ctx;
    xmpp_conn_t *conn;
    unsigned long total;
    unsigned long sent;
    double start_wall;
    double start_cpu;
    int connected;
    int stopped;
    int done;
    int exit_code;
} sendbench_t;

static double wall_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double process_cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* "tcp://host[:port]" or "host[:port]" into host and port (0: default). */
static int split_service(const char *service, char *host, size_t hostsz, unsigned short *port)
{
    if (strncmp(service, "tcp://", 6) == 0)
        service += 6;
    else if (strstr(service, "://") != NULL)
        return -1;
    const char *colon = strrchr(service, ':');
    size_t n = colon ? (size_t)(colon - service) : strlen(service);
    if (n == 0 || n >= hostsz)
        return -1;
    memcpy(host, service, n);
    host[n] = '\0';
    *port = 0;
    if (colon) {
        long p = strtol(colon + 1, NULL, 10);
        if (p <= 0 || p > 65535)
            return -1;
        *port = (unsigned short)p;
    }
    return 0;
}

/* The same message as sendbench's, with libstrophe's stanza API. */
static void send_one(sendbench_t *sb)
{
    char id[32], body[160];
    if (sb->sent + 1 == sb->total)
        snprintf(id, sizeof(id), "last");
    else
        snprintf(id, sizeof(id), "msg-%08lu", sb->sent);
    snprintf(body, sizeof(body), BODY_FMT, sb->sent);
    xmpp_stanza_t *msg = xmpp_message_new(sb->ctx, "chat", "juliet@example.com/balcony", id);
    xmpp_stanza_set_attribute(msg, "xml:lang", "en");
    xmpp_message_set_body(msg, body);
    xmpp_stanza_t *active = xmpp_stanza_new(sb->ctx);
    xmpp_stanza_set_name(active, "active");
    xmpp_stanza_set_ns(active, NS_CHATSTATES);
    xmpp_stanza_add_child_ex(msg, active, 0); /* the message takes our reference */
    xmpp_send(sb->conn, msg);
    xmpp_stanza_release(msg);
}

static int send_on_done(xmpp_conn_t *conn, xmpp_stanza_t *msg, void *ud)
{
    sendbench_t *sb = ud;
    const char *id = xmpp_stanza_get_id(msg);
    if (id == NULL || strcmp(id, "done") != 0)
        return 1;
    double wall = wall_seconds() - sb->start_wall;
    double cpu = process_cpu_seconds() - sb->start_cpu;
    printf("RESULT messages=%lu wall_s=%.3f cpu_s=%.3f msgs_per_s=%.0f\n", sb->sent, wall, cpu,
           wall > 0 ? (double)sb->sent / wall : 0.0);
    fflush(stdout);
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
        sb->connected = 1;
        xmpp_handler_add(conn, send_on_done, NULL, "message", NULL, sb);
        sb->start_cpu = process_cpu_seconds();
        sb->start_wall = wall_seconds();
        xmpp_stanza_t *pres = xmpp_presence_new(sb->ctx);
        xmpp_send(conn, pres);
        xmpp_stanza_release(pres);
        return;
    }
    if (!sb->done) {
        const char *why = stream_error && stream_error->text ? stream_error->text
                          : error                            ? strerror(error)
                          : sb->connected                    ? "the server closed the stream"
                                                             : "could not connect or log in";
        fprintf(stderr, "send_strophe: %s after sending %lu messages: %s\n",
                event == XMPP_CONN_FAIL ? "connection failed" : "disconnected", sb->sent, why);
    }
    sb->stopped = 1;
}

static unsigned long parse_messages(const cli_t *cli)
{
    unsigned long n = DEFAULT_MESSAGES;
    for (int i = 0; i < cli->nargs; i++) {
        char *end;
        if (strcmp(cli->args[i], "--messages") == 0 && i + 1 < cli->nargs &&
            (n = strtoul(cli->args[i + 1], &end, 10)) > 0 && *end == '\0') {
            i++;
            continue;
        }
        fprintf(stderr, "%s: bad argument %s\n", cli->prog, cli->args[i]);
        fprintf(stderr,
                "usage: %s [--allow-plain] [--mech NAME] [--bind ADDR] SERVICE JID PASSWORD "
                "[--messages N]\n",
                cli->prog);
        exit(2);
    }
    return n;
}

/* Drives libstrophe: tops the queue up, then lets xmpp_run_once() write
 * (and read); it waits up to 1 ms in select() when there is nothing to do. */
static void send_run(sendbench_t *sb)
{
    double deadline = wall_seconds() + LOGIN_TIMEOUT_S;
    while (!sb->stopped) {
        if (!sb->connected && wall_seconds() > deadline) {
            fprintf(stderr, "send_strophe: not logged in after %d s\n", LOGIN_TIMEOUT_S);
            return;
        }
        if (sb->connected && !sb->done) {
            int room = QUEUE_MAX - xmpp_conn_send_queue_len(sb->conn);
            for (; room > 0 && sb->sent < sb->total; room--, sb->sent++)
                send_one(sb);
        }
        xmpp_run_once(sb->ctx, 1);
    }
}

int main(int argc, char **argv)
{
    cli_t cli;
    cli_parse(&cli, argc, argv, 0, "[--messages N]");
    char host[256];
    unsigned short port;
    if (split_service(cli.service, host, sizeof(host), &port) != 0) {
        fprintf(stderr, "send_strophe: %s: not a tcp://host[:port] service\n", cli.service);
        return 1;
    }
    sendbench_t sb;
    memset(&sb, 0, sizeof(sb));
    sb.total = parse_messages(&cli);
    sb.exit_code = 1;
    signal(SIGPIPE, SIG_IGN);
    xmpp_initialize();
    sb.ctx = xmpp_ctx_new(NULL, NULL); /* no logger: logging would cost time */
    sb.conn = xmpp_conn_new(sb.ctx);
    xmpp_conn_set_flags(sb.conn, XMPP_CONN_FLAG_DISABLE_TLS);
    xmpp_conn_set_jid(sb.conn, cli.jid);
    xmpp_conn_set_pass(sb.conn, cli.password);
    if (xmpp_connect_client(sb.conn, host, port, send_on_conn, &sb) != XMPP_EOK)
        fprintf(stderr, "send_strophe: cannot connect to %s\n", cli.service);
    else
        send_run(&sb);
    xmpp_conn_release(sb.conn);
    xmpp_ctx_free(sb.ctx);
    xmpp_shutdown();
    return sb.exit_code;
}
