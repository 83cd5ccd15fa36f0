/* What the libstrophe twins (flood_strophe, send_strophe) share: taking
 * SERVICE apart, setting the connection up the same way and saying why it
 * ended. */
#ifndef UVX_BENCH_STROPHE_COMMON_H
#define UVX_BENCH_STROPHE_COMMON_H

#include <strophe.h>

typedef struct strophe_client {
    const char *prog; /* names the program in its messages */
    const char *service;
    char host[256];
    unsigned short port; /* 0: libstrophe's default */
    xmpp_ctx_t *ctx;
    xmpp_conn_t *conn;
    int connected; /* logged in: the CONNECT event has come */
} strophe_client_t;

/* Takes a "tcp://host[:port]" or "host[:port]" SERVICE apart; prints why
 * and returns -1 when it is something else. */
int strophe_client_init(strophe_client_t *c, const char *prog, const char *service);

/* Starts libstrophe and connects; `on_conn` gets the connection events.
 * Prints why and returns -1 when it cannot even start. Call
 * strophe_client_free() either way. */
int strophe_client_connect(strophe_client_t *c, const char *jid, const char *password,
                           xmpp_conn_handler on_conn, void *ud);
void strophe_client_free(strophe_client_t *c);

/* The initial presence (bench/floodserver's start signal). */
void strophe_send_presence(strophe_client_t *c);

/* For a connection that ended before the benchmark did, prints
 *   PROG: disconnected after DOING N messages: WHY
 * (DOING: "" or e.g. "sending "). */
void strophe_print_end(const strophe_client_t *c, xmpp_conn_event_t event, int error,
                       const xmpp_stream_error_t *stream_error, const char *doing,
                       unsigned long messages);

#endif
