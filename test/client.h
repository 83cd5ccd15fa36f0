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

/* Options the tests log in with: PLAIN allowed; `mech`, when not NULL, the
 * only mechanism offered (kept in the caller's `mechs`, which must live as
 * long as *o). */
void tclient_options(uvx_conn_options_t *o, const char *mechs[2], const char *mech);

/* Creates the connection (allow_plain set unless opts given). 0 or error. */
int tclient_init(tclient_t *c, uvx_ctx_t *ctx, const char *service, const uvx_conn_options_t *opts);
int tclient_connect(tclient_t *c, const char *jid, const char *pass);
/* The status callback tclient_connect uses (ud is the tclient_t), for
 * uvx_attach() and uvx_restore() too: ATTACHED counts as connected. */
void tclient_on_status(uvx_conn_t *conn, int status, const char *condition, uvx_stanza_t *elem,
                       void *ud);
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

/* Creates the connection and logs in as `jid`, running the loop until
 * CONNECTED or DISCONNECTED (at most 15 s). Fails the case when the
 * connection or the login cannot even start. 1 when connected. */
int tclient_login(loopenv_t *e, tclient_t *c, const char *service, const uvx_conn_options_t *opts,
                  const char *jid, const char *pass);
/* When the client is logged in: uvx_disconnect(), DISCONNECTED within 8 s
 * and no CONNTIMEOUT (the server answered our close). Then closes it. */
void tclient_disconnect_and_close(loopenv_t *e, tclient_t *c);

/* Messages whose bodies count 0, 1, 2 ...: any other body (or none) is out
 * of order. */
typedef struct tcounter {
    int n;
    int out_of_order;
} tcounter_t;

/* Counts the messages of `type` (NULL: any) that reach `c` into `cnt`. */
void tcount_messages(tclient_t *c, tcounter_t *cnt, const char *type);
/* Sends `count` messages with bodies first, first+1 ... to `to`, typed
 * `type` (NULL: no type). Fails the case at the first send that fails;
 * 1 when all were sent. */
int tsend_numbered(tclient_t *from, const char *to, const char *type, int first, int count);

/* What became of an IQ: tiq_ok and tiq_err record it (pass the
 * tiq_result_t as their ud). */
typedef struct tiq_result {
    int done;
    int ok;
    int err;
    int timeout; /* the error callback without a stanza */
    char type[16];
} tiq_result_t;

int tiq_ok(uvx_conn_t *conn, uvx_stanza_t *s, void *ud);
int tiq_err(uvx_conn_t *conn, uvx_stanza_t *s, void *ud);
/* Sends an XEP-0199 ping to `to` (NULL: the client's own server) with an
 * IQ timeout of timeout_ms and runs the loop until the answer or the
 * timeout is recorded in *r. 1 when it was. */
int tping(loopenv_t *e, tclient_t *c, const char *to, tiq_result_t *r, unsigned timeout_ms);

#endif
