#include "strophe_common.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int strophe_client_init(strophe_client_t *c, const char *prog, const char *service)
{
    memset(c, 0, sizeof(*c));
    c->prog = prog;
    c->service = service;
    if (split_service(service, c->host, sizeof(c->host), &c->port) != 0) {
        fprintf(stderr, "%s: %s: not a tcp://host[:port] service\n", prog, service);
        return -1;
    }
    return 0;
}

int strophe_client_connect(strophe_client_t *c, const char *jid, const char *password,
                           xmpp_conn_handler on_conn, void *ud)
{
    signal(SIGPIPE, SIG_IGN);
    xmpp_initialize();
    c->ctx = xmpp_ctx_new(NULL, NULL); /* no logger: logging would cost time */
    c->conn = xmpp_conn_new(c->ctx);
    xmpp_conn_set_flags(c->conn, XMPP_CONN_FLAG_DISABLE_TLS);
    xmpp_conn_set_jid(c->conn, jid);
    xmpp_conn_set_pass(c->conn, password);
    if (xmpp_connect_client(c->conn, c->host, c->port, on_conn, ud) != XMPP_EOK) {
        fprintf(stderr, "%s: cannot connect to %s\n", c->prog, c->service);
        return -1;
    }
    return 0;
}

void strophe_client_free(strophe_client_t *c)
{
    xmpp_conn_release(c->conn);
    xmpp_ctx_free(c->ctx);
    xmpp_shutdown();
}

void strophe_send_presence(strophe_client_t *c)
{
    xmpp_stanza_t *pres = xmpp_presence_new(c->ctx);
    xmpp_send(c->conn, pres);
    xmpp_stanza_release(pres);
}

void strophe_print_end(const strophe_client_t *c, xmpp_conn_event_t event, int error,
                       const xmpp_stream_error_t *stream_error, const char *doing,
                       unsigned long messages)
{
    const char *why = stream_error && stream_error->text ? stream_error->text
                      : error                            ? strerror(error)
                      : c->connected                     ? "the server closed the stream"
                                                         : "could not connect or log in";
    fprintf(stderr, "%s: %s after %s%lu messages: %s\n", c->prog,
            event == XMPP_CONN_FAIL ? "connection failed" : "disconnected", doing, messages, why);
}
