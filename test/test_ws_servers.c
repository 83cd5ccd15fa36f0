/*
 * The WebSocket transport (RFC 7395) against a real Prosody or ejabberd
 * started for this program, on its /xmpp-websocket endpoint over http
 * (ws://) and https (wss://): logins with SCRAM and PLAIN, 10 000 messages,
 * send_iq, graceful disconnect, a stream error, a redirect from a scripted
 * server to the real one, and the server killed under a live session.
 *
 *   test_ws_servers [prosody|ejabberd]
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "fakews.h"
#include "server.h"
#include "tap.h"
#include "uvxmpp.h"

static const char *kind = "prosody";
static test_server_t srv;
static char cafile[512];
static char ws_service[96];
static char wss_service[96];

/* Options for `service`: PLAIN allowed on ws:// (there is no TLS to wait
 * for), the server's certificate trusted on wss://; `mech` NULL: any. */
static void ws_opts(uvx_conn_options_t *o, const char *mechs[2], const char *mech)
{
    tclient_options(o, mechs, mech);
    o->tls_cafile = cafile;
}

static int login_with(loopenv_t *e, tclient_t *c, const char *service, const char *mech,
                      const char *jid, const char *pass)
{
    const char *mechs[2];
    uvx_conn_options_t o;
    ws_opts(&o, mechs, mech);
    return tclient_login(e, c, service, &o, jid, pass);
}

static int login(loopenv_t *e, tclient_t *c, const char *jid, const char *pass)
{
    return login_with(e, c, ws_service, NULL, jid, pass);
}

/* ---- logins ---- */

/* The login cases, one per service and mechanism (tap_run takes no
 * arguments: test_login reads the current one). */
static const struct login_case {
    const char *name;
    const char *service;
    const char *mech; /* NULL: the library's choice */
    int secure;
} login_cases[] = {
    {"ws:// login SCRAM-SHA-1, graceful disconnect", ws_service, "SCRAM-SHA-1", 0},
    {"ws:// login SCRAM-SHA-256", ws_service, "SCRAM-SHA-256", 0},
    {"ws:// login PLAIN", ws_service, "PLAIN", 0},
    {"wss:// login SCRAM-SHA-1", wss_service, "SCRAM-SHA-1", 1},
    {"wss:// login PLAIN", wss_service, "PLAIN", 1},
    {"wss:// login, the library's choice of mechanism", wss_service, NULL, 1},
};
static const struct login_case *current_login;

static void test_login(void)
{
    const struct login_case *lc = current_login;
    loopenv_t e;
    tclient_t c;
    loopenv_init(&e);
    CHECK(login_with(&e, &c, lc->service, lc->mech, "alice@localhost", "alicepass"));
    const char *jid = uvx_conn_jid(c.conn);
    CHECK(jid != NULL && strncmp(jid, "alice@localhost/", 16) == 0);
    CHECK_INT(uvx_conn_secure(c.conn), lc->secure);
    if (lc->mech)
        CHECK_STR(uvx_sasl_mechanism(c.conn), lc->mech);
    tclient_disconnect_and_close(&e, &c);
    /* the server answered our <close/> with its own: no timeout */
    CHECK(!tclient_saw(&c, UVX_STATUS_CONNTIMEOUT));
    CHECK_STR(tclient_condition(&c, UVX_STATUS_DISCONNECTED), "");
    loopenv_done(&e);
}

static void test_wrong_password(void)
{
    loopenv_t e;
    tclient_t c;
    loopenv_init(&e);
    CHECK(!login_with(&e, &c, ws_service, "SCRAM-SHA-1", "alice@localhost", "nope"));
    CHECK_STR(tclient_condition(&c, UVX_STATUS_AUTHFAIL), "not-authorized");
    CHECK(run_until(&e.loop, &c.disconnected, 1, 5000));
    tclient_close(&c, &e.loop);
    loopenv_done(&e);
}

/* ---- messages and IQs ---- */

static void messages_case(const char *service)
{
    loopenv_t e;
    tclient_t a, b;
    loopenv_init(&e);
    CHECK(login_with(&e, &a, service, NULL, "alice@localhost", "alicepass"));
    CHECK(login_with(&e, &b, service, NULL, "bob@localhost/flood", "bobpass"));
    tcounter_t cnt = {0, 0};
    tcount_messages(&b, &cnt, "chat");
    tsend_numbered(&a, uvx_conn_jid(b.conn), "chat", 0, 10000);
    CHECK(run_until(&e.loop, &cnt.n, 10000, 60000));
    CHECK_INT(cnt.n, 10000);
    CHECK_INT(cnt.out_of_order, 0);
    CHECK(!a.disconnected && !b.disconnected);
    tclient_disconnect_and_close(&e, &a);
    tclient_disconnect_and_close(&e, &b);
    loopenv_done(&e);
}

static void test_10000_messages(void)
{
    messages_case(ws_service);
}

static void test_10000_messages_wss(void)
{
    messages_case(wss_service);
}

static void test_send_iq(void)
{
    loopenv_t e;
    tclient_t a;
    loopenv_init(&e);
    CHECK(login(&e, &a, "alice@localhost", "alicepass"));
    tiq_result_t r = {0};
    CHECK(tping(&e, &a, "localhost", &r, 5000));
    CHECK_INT(r.ok, 1);
    tiq_result_t r2 = {0};
    CHECK(tping(&e, &a, "nobody@localhost/x", &r2, 5000));
    CHECK_INT(r2.err, 1);
    tclient_disconnect_and_close(&e, &a);
    loopenv_done(&e);
}

/* ---- endings ---- */

static void test_stream_error_conflict(void)
{
    /* the same full JID twice: the server throws the first one out */
    loopenv_t e;
    tclient_t a, b;
    loopenv_init(&e);
    CHECK(login(&e, &a, "alice@localhost/same", "alicepass"));
    CHECK(login(&e, &b, "alice@localhost/same", "alicepass"));
    CHECK(run_until(&e.loop, &a.disconnected, 1, 10000));
    CHECK_STR(tclient_condition(&a, UVX_STATUS_ERROR), "conflict");
    CHECK(!b.disconnected);
    tclient_close(&a, &e.loop);
    tclient_disconnect_and_close(&e, &b);
    loopenv_done(&e);
}

static void test_ping_interval(void)
{
    /* the server answers the client's pings: nothing happens */
    loopenv_t e;
    tclient_t c;
    loopenv_init(&e);
    uvx_conn_options_t o;
    ws_opts(&o, NULL, NULL);
    o.ws_ping_interval_ms = 20;
    o.ws_pong_timeout_ms = 2000;
    CHECK(tclient_login(&e, &c, ws_service, &o, "alice@localhost", "alicepass"));
    run_for(&e.loop, 300);
    CHECK(!c.disconnected);
    tclient_disconnect_and_close(&e, &c);
    loopenv_done(&e);
}

static void test_redirect_to_server(void)
{
    /* a scripted server sends the client on to the real one, over TLS */
    loopenv_t e;
    tclient_t c;
    loopenv_init(&e);
    char close[256];
    snprintf(close, sizeof(close),
             "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing' see-other-uri='%s'/>",
             wss_service);
    fakews_step_t steps[] = {{"<open", close, NULL, 0, FAKEWS_KEEP}, {NULL, NULL, NULL, 0, 0}};
    int port = 0;
    fakews_t *fw = fakews_start(&e.loop, steps, NULL, &port);
    char service[96];
    snprintf(service, sizeof(service), "ws://127.0.0.1:%d/xmpp-websocket", port);
    CHECK(login_with(&e, &c, service, NULL, "alice@localhost", "alicepass"));
    CHECK_STR(tclient_condition(&c, UVX_STATUS_REDIRECT), wss_service);
    CHECK_INT(uvx_conn_secure(c.conn), 1);
    tclient_disconnect_and_close(&e, &c);
    fakews_stop(fw);
    loopenv_done(&e);
}

static void test_server_killed(void)
{
    loopenv_t e;
    tclient_t a;
    loopenv_init(&e);
    CHECK(login(&e, &a, "alice@localhost", "alicepass"));
    uvx_stanza_t *m = uvx_stanza_fmt("<message to='bob@localhost'><body>x</body></message>");
    uvx_send(a.conn, m);
    uvx_stanza_unref(m);
    CHECK_INT(kill(srv.pid, SIGKILL), 0);
    CHECK(run_until(&e.loop, &a.disconnected, 1, 10000));
    CHECK_STR(tclient_condition(&a, UVX_STATUS_DISCONNECTED), "connection-lost");
    CHECK(!tclient_saw(&a, UVX_STATUS_CONNFAIL));
    tclient_close(&a, &e.loop);
    loopenv_done(&e);
}

int main(int argc, char **argv)
{
    /* a peer that hangs up while our close frame or TLS alert is on its way
     * would otherwise end the program (libuv writes with write(2)) */
    signal(SIGPIPE, SIG_IGN);
    kind = argc > 1 ? argv[1] : "prosody";
    if (!tserver_start(&srv, kind, NULL)) {
        tap_skip(kind, "server not available");
        return tap_done();
    }
    test_server_cert_path(&srv, cafile, sizeof(cafile));
    snprintf(ws_service, sizeof(ws_service), "ws://127.0.0.1:%d/xmpp-websocket", srv.http_port);
    snprintf(wss_service, sizeof(wss_service), "wss://localhost:%d/xmpp-websocket", srv.https_port);
    for (size_t i = 0; i < sizeof(login_cases) / sizeof(login_cases[0]); i++) {
        current_login = &login_cases[i];
        tap_run(current_login->name, test_login);
    }
    tap_run("wrong password -> AUTHFAIL not-authorized", test_wrong_password);
    tap_run("10 000 messages over ws://, none lost, in order", test_10000_messages);
    tap_run("10 000 messages over wss://", test_10000_messages_wss);
    tap_run("send_iq ping result and error", test_send_iq);
    tap_run("stream error (conflict) -> ERROR", test_stream_error_conflict);
    tap_run("client pings answered by the server", test_ping_interval);
    tap_run("see-other-uri from a scripted server to the real one (ws -> wss)",
            test_redirect_to_server);
    tap_run("server killed -> DISCONNECTED connection-lost", test_server_killed);
    test_server_stop(&srv);
    return tap_done();
}
