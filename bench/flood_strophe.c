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
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strophe.h>
#include <sys/resource.h>
#include <time.h>

#include "cli.h"

#define LOGIN_TIMEOUT_MS 10000

typedef struct flood {
    xmpp_ctx_t *ctx;
    unsigned long messages;
    double start_wall;
    double start_cpu;
    int connected;
    int done;
    int exit_code;
} flood_t;

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

static int flood_on_message(xmpp_conn_t *conn, xmpp_stanza_t *msg, void *ud)
{
    flood_t *f = ud;
    f->messages++;
    const char *id = xmpp_stanza_get_id(msg);
    if (id == NULL || strcmp(id, "last") != 0)
        return 1;
    double wall = wall_seconds() - f->start_wall;
    double cpu = process_cpu_seconds() - f->start_cpu;
    printf("RESULT messages=%lu wall_s=%.3f cpu_s=%.3f msgs_per_s=%.0f\n", f->messages, wall, cpu,
           wall > 0 ? (double)f->messages / wall : 0.0);
    fflush(stdout);
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
        f->connected = 1;
        xmpp_handler_add(conn, flood_on_message, NULL, "message", NULL, f);
        xmpp_stanza_t *pres = xmpp_presence_new(f->ctx);
        xmpp_send(conn, pres);
        xmpp_stanza_release(pres);
        f->start_cpu = process_cpu_seconds();
        f->start_wall = wall_seconds();
        return;
    }
    if (!f->done) {
        const char *why = stream_error && stream_error->text ? stream_error->text
                          : error                            ? strerror(error)
                          : f->connected                     ? "the server closed the stream"
                                                             : "could not connect or log in";
        fprintf(stderr, "flood_strophe: %s after %lu messages: %s\n",
                event == XMPP_CONN_FAIL ? "connection failed" : "disconnected", f->messages, why);
    }
    xmpp_stop(f->ctx);
}

static int flood_on_login_timeout(xmpp_ctx_t *ctx, void *ud)
{
    flood_t *f = ud;
    if (!f->connected) {
        fprintf(stderr, "flood_strophe: not logged in after %d s\n", LOGIN_TIMEOUT_MS / 1000);
        xmpp_stop(ctx);
    }
    return 0; /* once */
}

int main(int argc, char **argv)
{
    cli_t cli;
    cli_parse(&cli, argc, argv, 0, NULL);
    char host[256];
    unsigned short port;
    if (cli.nargs != 0) {
        fprintf(stderr, "usage: %s [--allow-plain] [--mech NAME] SERVICE JID PASSWORD\n", cli.prog);
        return 2;
    }
    if (split_service(cli.service, host, sizeof(host), &port) != 0) {
        fprintf(stderr, "flood_strophe: %s: not a tcp://host[:port] service\n", cli.service);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    xmpp_initialize();
    flood_t f;
    memset(&f, 0, sizeof(f));
    f.exit_code = 1;
    f.ctx = xmpp_ctx_new(NULL, NULL); /* no logger: logging would cost time */
    xmpp_conn_t *conn = xmpp_conn_new(f.ctx);
    xmpp_conn_set_flags(conn, XMPP_CONN_FLAG_DISABLE_TLS);
    xmpp_conn_set_jid(conn, cli.jid);
    xmpp_conn_set_pass(conn, cli.password);
    if (xmpp_connect_client(conn, host, port, flood_on_conn, &f) != XMPP_EOK) {
        fprintf(stderr, "flood_strophe: cannot connect to %s\n", cli.service);
    } else {
        xmpp_global_timed_handler_add(f.ctx, flood_on_login_timeout, LOGIN_TIMEOUT_MS, &f);
        xmpp_run(f.ctx);
        /* xmpp_ctx_free() does not free global handlers still registered. */
        xmpp_global_timed_handler_delete(f.ctx, flood_on_login_timeout);
    }
    xmpp_conn_release(conn);
    xmpp_ctx_free(f.ctx);
    xmpp_shutdown();
    return f.exit_code;
}
