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
static void ws_opts(uvx_conn_options_t *o, const char **mechs, const char *mech)
{
    uvx_conn_options_init(o);
    o->allow_plain = 1;
    o->tls_cafile = cafile;
    if (mech) {
        mechs[0] = mech;
        mechs[1] = NULL;
        o->mechanisms = mechs;
    }
}

static int login_with(loopenv_t *e, tclient_t *c, const char *service, const char *mech,
                      const char *jid, const char *pass)
{
    const char *mechs[2];
    uvx_conn_options_t o;
    ws_opts(&o, mechs, mech);
    if (tclient_init(c, e->ctx, service, &o) != 0)
        return 0;
    if (tclient_connect(c, jid, pass) != 0)
        return 0;
    for (int i = 0; i < 1000 && !c->connected && !c->disconnected; i++)
        uv_run(&e->loop, UV_RUN_ONCE);
    return c->connected;
}

static int login(loopenv_t *e, tclient_t *c, const char *jid, const char *pass)
{
    return login_with(e, c, ws_service, NULL, jid, pass);
}

static void disconnect_and_close(loopenv_t *e, tclient_t *c)
{
    if (c->conn && c->connected && !c->disconnected) {
        CHECK_INT(uvx_disconnect(c->conn, NULL), 0);
        CHECK(run_until(&e->loop, &c->disconnected, 1, 5000));
    }
    tclient_close(c, &e->loop);
}

/* ---- logins ---- */

static void login_case(const char *service, const char *mech, int secure)
{
    loopenv_t e;
    tclient_t c;
    loopenv_init(&e);
    CHECK(login_with(&e, &c, service, mech, "alice@localhost", "alicepass"));
    const char *jid = uvx_conn_jid(c.conn);
    CHECK(jid != NULL && strncmp(jid, "alice@localhost/", 16) == 0);
    CHECK_INT(uvx_conn_secure(c.conn), secure);
    if (mech)
        CHECK_STR(uvx_sasl_mechanism(c.conn), mech);
    disconnect_and_close(&e, &c);
    /* the server answered our <close/> with its own: no timeout */
    CHECK(!tclient_saw(&c, UVX_STATUS_CONNTIMEOUT));
    CHECK_STR(tclient_condition(&c, UVX_STATUS_DISCONNECTED), "");
    loopenv_done(&e);
}

static void test_ws_scram_sha1(void)
{
    login_case(ws_service, "SCRAM-SHA-1", 0);
}

static void test_ws_scram_sha256(void)
{
    login_case(ws_service, "SCRAM-SHA-256", 0);
}

static void test_ws_plain(void)
{
    login_case(ws_service, "PLAIN", 0);
}

static void test_wss_scram(void)
{
    login_case(wss_service, "SCRAM-SHA-1", 1);
}

static void test_wss_plain(void)
{
    login_case(wss_service, "PLAIN", 1);
}

static void test_wss_default_mechanism(void)
{
    login_case(wss_service, NULL, 1);
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

typedef struct counter {
    int n;
    int out_of_order;
} counter_t;

static int count_message(uvx_conn_t *conn, uvx_stanza_t *s, void *ud)
{
    counter_t *cnt = ud;
    (void)conn;
    uvx_stanza_t *body = uvx_stanza_child(s, "body");
    const char *text = body ? uvx_stanza_text(body) : NULL;
    if (text == NULL || atoi(text) != cnt->n)
        cnt->out_of_order++;
    cnt->n++;
    return 1;
}

static void messages_case(const char *service)
{
    loopenv_t e;
    tclient_t a, b;
    loopenv_init(&e);
    CHECK(login_with(&e, &a, service, NULL, "alice@localhost", "alicepass"));
    CHECK(login_with(&e, &b, service, NULL, "bob@localhost/flood", "bobpass"));
    counter_t cnt = {0, 0};
    uvx_add_handler(b.conn, count_message, &cnt, NULL, "message", "chat", NULL, NULL, 0);
    char num[16];
    for (int i = 0; i < 10000 && a.connected; i++) {
        snprintf(num, sizeof(num), "%d", i);
        uvx_stanza_t *m = uvx_stanza_fmt("<message to='%s' type='chat'><body>%s</body></message>",
                                         uvx_conn_jid(b.conn), num);
        int rc = uvx_send(a.conn, m);
        uvx_stanza_unref(m);
        if (rc != 0) {
            CHECK_INT(rc, 0);
            break;
        }
    }
    CHECK(run_until(&e.loop, &cnt.n, 10000, 60000));
    CHECK_INT(cnt.n, 10000);
    CHECK_INT(cnt.out_of_order, 0);
    CHECK(!a.disconnected && !b.disconnected);
    disconnect_and_close(&e, &a);
    disconnect_and_close(&e, &b);
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

typedef struct iq_result {
    int done, ok, err;
} iq_result_t;

static int iq_ok(uvx_conn_t *conn, uvx_stanza_t *s, void *ud)
{
    iq_result_t *r = ud;
    (void)conn;
    (void)s;
    r->ok++;
    r->done = 1;
    return 0;
}

static int iq_err(uvx_conn_t *conn, uvx_stanza_t *s, void *ud)
{
    iq_result_t *r = ud;
    (void)conn;
    (void)s;
    r->err++;
    r->done = 1;
    return 0;
}

static void test_send_iq(void)
{
    loopenv_t e;
    tclient_t a;
    loopenv_init(&e);
    CHECK(login(&e, &a, "alice@localhost", "alicepass"));
    iq_result_t r = {0, 0, 0};
    uvx_stanza_t *ping = uvx_b_done(uvx_b_c(uvx_iq("type", "get", "to", "localhost", NULL), "ping",
                                            "xmlns", UVX_NS_PING, NULL));
    CHECK_INT(uvx_send_iq(a.conn, ping, iq_ok, iq_err, &r, 5000), 0);
    CHECK(run_until(&e.loop, &r.done, 1, 6000));
    CHECK_INT(r.ok, 1);
    uvx_stanza_unref(ping);
    iq_result_t r2 = {0, 0, 0};
    ping =
        uvx_stanza_fmt("<iq type='get' to='nobody@localhost/x'><ping xmlns='urn:xmpp:ping'/></iq>");
    CHECK_INT(uvx_send_iq(a.conn, ping, iq_ok, iq_err, &r2, 5000), 0);
    CHECK(run_until(&e.loop, &r2.done, 1, 6000));
    CHECK_INT(r2.err, 1);
    uvx_stanza_unref(ping);
    disconnect_and_close(&e, &a);
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
    disconnect_and_close(&e, &b);
    loopenv_done(&e);
}

static void test_ping_interval(void)
{
    /* the server answers the client's pings: nothing happens */
    loopenv_t e;
    tclient_t c;
    loopenv_init(&e);
    uvx_conn_options_t o;
    const char *mechs[2];
    ws_opts(&o, mechs, NULL);
    o.ws_ping_interval_ms = 20;
    o.ws_pong_timeout_ms = 2000;
    CHECK_INT(tclient_init(&c, e.ctx, ws_service, &o), 0);
    CHECK_INT(tclient_connect(&c, "alice@localhost", "alicepass"), 0);
    CHECK(run_until(&e.loop, &c.connected, 1, 10000));
    run_for(&e.loop, 300);
    CHECK(!c.disconnected);
    disconnect_and_close(&e, &c);
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
    disconnect_and_close(&e, &c);
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
    tap_run("ws:// login SCRAM-SHA-1, graceful disconnect", test_ws_scram_sha1);
    tap_run("ws:// login SCRAM-SHA-256", test_ws_scram_sha256);
    tap_run("ws:// login PLAIN", test_ws_plain);
    tap_run("wss:// login SCRAM-SHA-1", test_wss_scram);
    tap_run("wss:// login PLAIN", test_wss_plain);
    tap_run("wss:// login, the library's choice of mechanism", test_wss_default_mechanism);
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
