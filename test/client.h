/*
 * Helpers for the integration tests: a client that records its status
 * changes, and a bounded way to run a loop until something happens.
 */
#ifndef UVX_TEST_CLIENT_H
#define UVX_TEST_CLIENT_H

#include "server.h"
#include "uvxmpp.h"

#define TCLIENT_MAX_STATUS 32

typedef struct tclient {
    uvx_conn_t *conn;
    int status[TCLIENT_MAX_STATUS];
    char condition[TCLIENT_MAX_STATUS][96];
    int nstatus;
    int connected;    /* CONNECTED seen */
    int disconnected; /* DISCONNECTED seen */
    int closed;       /* close callback ran */
    int close_on_disconnect;
    void *data;
} tclient_t;

/* "tcp://127.0.0.1:PORT" for the server's c2s port. */
void tservice(const test_server_t *srv, char *buf, size_t len);

/* Creates the connection (allow_plain set unless opts given). 0 or error. */
int tclient_init(tclient_t *c, uvx_ctx_t *ctx, const char *service, const uvx_conn_options_t *opts);
int tclient_connect(tclient_t *c, const char *jid, const char *pass);
/* Closes the connection and waits for its close callback. */
void tclient_close(tclient_t *c, uv_loop_t *loop);
/* 1 if `status` was reported. */
int tclient_saw(const tclient_t *c, int status);
/* The condition of the last report of `status`, or NULL. */
const char *tclient_condition(const tclient_t *c, int status);

/* Runs the loop until *flag becomes >= target or timeout_ms pass. 1 when
 * reached, 0 on timeout. */
int run_until(uv_loop_t *loop, const int *flag, int target, unsigned timeout_ms);
/* Runs the loop for `ms` milliseconds. */
void run_for(uv_loop_t *loop, unsigned ms);
/* Runs until no handles are left (bounded), then closes the loop: 0 when
 * the loop closed cleanly (nothing of ours left behind). */
int loop_finish(uv_loop_t *loop);

/* A loop and a context on it, for one test case. */
typedef struct loopenv {
    uv_loop_t loop;
    uvx_ctx_t *ctx;
} loopenv_t;

void loopenv_init(loopenv_t *e);
/* Lets the asynchronous closes finish (as in libuv), then checks that the
 * context and the loop end with nothing left open. */
void loopenv_done(loopenv_t *e);

/* Starts a Prosody or skips the case (returns 0) when servers are not
 * available; fails the case when UVX_REQUIRE_SERVERS=1. */
int tserver_start(test_server_t *srv, const char *kind, const char *extra_users);

#endif
