/*
 * Real XMPP servers for the integration tests: a throwaway Prosody or
 * ejabberd per test, in its own temporary directory and on its own ports,
 * bound to 127.0.0.1. The work is done by test/servers/{prosody,ejabberd}.sh;
 * this is the C face of those scripts.
 *
 * Every server has the host "localhost" with the users alice/alicepass and
 * bob/bobpass, the anonymous host "anon.localhost" and the MUC service
 * "conference.localhost". PLAIN in the clear is allowed, STARTTLS is offered
 * but not required. The certificate is self-signed (see test_server_cert_path).
 *
 * Environment:
 *   UVX_TEST_SERVERS_DIR   where prosody.sh and ejabberd.sh live (overrides
 *                          the TEST_SERVERS_DIR the build passes in)
 *   UVX_KEEP_SERVER_DIR    keep the server directory (config, logs) on stop
 *   UVX_SERVER_LOGLEVEL    server log level, "info" by default ("debug" logs
 *                          every stanza)
 *   UVX_SKIP_SERVER_TESTS  make test_server_available() say no
 */
#ifndef UVX_TEST_SERVER_H
#define UVX_TEST_SERVER_H

#include <stddef.h>

typedef struct test_server {
    char kind[16];    /* "prosody" or "ejabberd" */
    char dir[256];    /* config, certs, data and logs of this instance */
    int pid;          /* the server process (beam.smp for ejabberd); 0 when stopped */
    int c2s_port;     /* RFC 6120 c2s, STARTTLS offered but optional */
    int tls_port;     /* XEP-0368 direct TLS */
    int http_port;    /* /http-bind (BOSH) and /xmpp-websocket */
    int https_port;   /* the same over TLS */
    int port_lock_fd; /* keeps other test programs off these ports */
} test_server_t;

/*
 * Starts a server of the given kind ("prosody" or "ejabberd") and returns
 * once all its ports accept connections. extra_users is NULL or a
 * space-separated list of "user:password" accounts to create on "localhost"
 * besides alice and bob. Picks a free port range and retries with another
 * one if the start fails. Returns 0, or -1 with the reason on stderr.
 */
int test_server_start(test_server_t *s, const char *kind, const char *extra_users);

/*
 * Stops the server (SIGTERM, bounded wait, then SIGKILL), waits until the
 * process is gone and removes its directory unless UVX_KEEP_SERVER_DIR is
 * set. Safe to call on a server that failed to start or is already stopped.
 */
void test_server_stop(test_server_t *s);

/* 1 when the server of that kind and its script are installed, else 0. */
int test_server_available(const char *kind);

/*
 * Creates the accounts prefix1 .. prefixN on "localhost", all with the same
 * password, as fast as the server allows: Prosody's account files are
 * written directly (microseconds each; works whether or not it runs), while
 * ejabberd gets one HTTP API request per account over a keep-alive
 * connection (about 2 ms each). Returns 0, or -1 with the reason on stderr.
 */
int test_server_register_many(test_server_t *s, const char *prefix, int n, const char *password);

/* 1 while the process runs (a zombie counts as gone), else 0. */
int test_server_pid_alive(int pid);

/* Writes the path of the server's self-signed PEM certificate into buf. */
int test_server_cert_path(const test_server_t *s, char *buf, size_t len);

/* Writes the path of the start/stop script for `kind` into buf. */
void test_server_script(const char *kind, char *buf, size_t len);

#endif
