/*
 * The connection core against a scripted server (test/fakeserver.c) for
 * what a real server will not do on demand: broken XML, stream errors at
 * chosen moments, a connection dropped mid-negotiation, a silent peer,
 * legacy auth, a required session, a restart in the same write.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/sha1.h>

#include "client.h"
#include "fakeserver.h"
#include "tap.h"
#include "uvxmpp.h"

typedef struct fenv {
    uv_loop_t loop;
    uvx_ctx_t *ctx;
    fake_server_t *fs;
    tclient_t c;
    char service[64];
} fenv_t;

/* The loop, the context, the scripted server and a client for it (`opts`
 * NULL: test/client.c's defaults). */
static int fenv_listen(fenv_t *e, const fake_step_t *steps, const uvx_conn_options_t *opts)
{
    int port = 0;
    uv_loop_init(&e->loop);
    e->ctx = uvx_ctx_new(&e->loop);
    e->fs = fake_server_start(&e->loop, steps, &port);
    CHECK(e->fs != NULL);
    if (e->fs == NULL)
        return 0;
    snprintf(e->service, sizeof(e->service), "tcp://127.0.0.1:%d", port);
    CHECK_INT(tclient_init(&e->c, e->ctx, e->service, opts), 0);
    return 1;
}

/* uvx_connect with connect() arguments and no status callback. */
static int fenv_start(fenv_t *e, const fake_step_t *steps, const uvx_connect_args_t *args)
{
    if (!fenv_listen(e, steps, NULL))
        return 0;
    CHECK_INT(uvx_connect(e->c.conn, "alice@localhost", "alicepass", NULL, NULL, args), 0);
    return 1;
}

/* uvx_connect with the recording callback of test/client.c */
static int fenv_connect(fenv_t *e, const fake_step_t *steps, const uvx_conn_options_t *opts)
{
    if (!fenv_listen(e, steps, opts))
        return 0;
    CHECK_INT(tclient_connect(&e->c, "alice@localhost", "alicepass"), 0);
    return 1;
}

static void fenv_done(fenv_t *e)
{
    tclient_close(&e->c, &e->loop);
    fake_server_stop(e->fs);
    for (int i = 0; i < 10; i++)
        uv_run(&e->loop, UV_RUN_NOWAIT);
    CHECK_INT(uvx_ctx_free(e->ctx), 0);
    CHECK_INT(loop_finish(&e->loop), 0);
}

/* The four steps of a plain login, as initialisers. */
#define STEP_OPEN                                                                                  \
    {                                                                                              \
        "<stream:stream", FAKE_STREAM_HEADER FAKE_FEATURES_PLAIN, 0                                \
    }
#define STEP_AUTH                                                                                  \
    {                                                                                              \
        "<auth", FAKE_SUCCESS, 0                                                                   \
    }
#define STEP_RESTART                                                                               \
    {                                                                                              \
        "<stream:stream", FAKE_STREAM_HEADER FAKE_FEATURES_BIND, 0                                 \
    }
#define STEP_BIND                                                                                  \
    {                                                                                              \
        "<bind", FAKE_BIND_RESULT, 0                                                               \
    }

static void test_stream_error_before_connected(void)
{
    static const fake_step_t steps[] = {
        {"<stream:stream",
         FAKE_STREAM_HEADER "<stream:error><host-unknown "
                            "xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"
                            "</stream:stream>",
         0},
        {NULL, NULL, 0},
    };
    fenv_t e;
    if (!fenv_connect(&e, steps, NULL))
        return;
    CHECK(run_until(&e.loop, &e.c.disconnected, 1, 5000));
    CHECK_STR(tclient_condition(&e.c, UVX_STATUS_CONNFAIL), "host-unknown");
    CHECK(!tclient_saw(&e.c, UVX_STATUS_ERROR));
    fenv_done(&e);
}

static void test_stream_error_after_connected(void)
{
    static const fake_step_t steps[] = {
        STEP_OPEN,
        STEP_AUTH,
        STEP_RESTART,
        STEP_BIND,
        {"<presence",
         "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
         "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>Replaced</text></stream:error>",
         0},
        {NULL, NULL, 0},
    };
    fenv_t e;
    if (!fenv_connect(&e, steps, NULL))
        return;
    CHECK(run_until(&e.loop, &e.c.connected, 1, 5000));
    CHECK_STR(uvx_conn_jid(e.c.conn), "alice@localhost/fake");
    uvx_stanza_t *p = uvx_b_done(uvx_pres(NULL));
    uvx_send(e.c.conn, p);
    uvx_stanza_unref(p);
    CHECK(run_until(&e.loop, &e.c.disconnected, 1, 5000));
    CHECK_STR(tclient_condition(&e.c, UVX_STATUS_ERROR), "conflict");
    /* we closed our side of the stream too */
    CHECK(strstr(fake_server_received(e.fs), "</stream:stream>") != NULL);
    fenv_done(&e);
}

static void parser_error_case(const char *bad, const char *condition)
{
    fake_step_t steps[] = {
        {"<stream:stream", NULL, 0},
        {NULL, NULL, 0},
    };
    char reply[512];
    snprintf(reply, sizeof(reply), "%s%s", FAKE_STREAM_HEADER, bad);
    steps[0].reply = reply;
    fenv_t e;
    if (!fenv_connect(&e, steps, NULL))
        return;
    CHECK(run_until(&e.loop, &e.c.disconnected, 1, 5000));
    char expect[128];
    snprintf(expect, sizeof(expect), "x-uvx-parsererror: %s", condition);
    CHECK_STR(tclient_condition(&e.c, UVX_STATUS_CONNFAIL), expect);
    /* RFC 6120 §4.9: we told the server why */
    run_for(&e.loop, 50);
    snprintf(expect, sizeof(expect), "<%s xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>",
             condition);
    CHECK(strstr(fake_server_received(e.fs), expect) != NULL);
    fenv_done(&e);
}

static void test_bad_xml(void)
{
    parser_error_case("<stream:features><a></b>", "not-well-formed");
}

static void test_restricted_xml(void)
{
    parser_error_case("<!-- a comment --><stream:features/>", "restricted-xml");
}

static void test_undeclared_entity(void)
{
    parser_error_case("<message><body>&xxe;</body></message>", "not-well-formed");
}

static void test_dropped_mid_negotiation(void)
{
    static const fake_step_t steps[] = {
        {"<stream:stream", FAKE_STREAM_HEADER FAKE_FEATURES_PLAIN, 0},
        {"<auth", NULL, 1}, /* hang up on the auth */
        {NULL, NULL, 0},
    };
    fenv_t e;
    if (!fenv_connect(&e, steps, NULL))
        return;
    CHECK(run_until(&e.loop, &e.c.disconnected, 1, 5000));
    CHECK(tclient_saw(&e.c, UVX_STATUS_AUTHENTICATING));
    CHECK_STR(tclient_condition(&e.c, UVX_STATUS_CONNFAIL), "connection-lost");
    fenv_done(&e);
}

static void test_silent_peer_disconnect_timeout(void)
{
    static const fake_step_t steps[] = {
        STEP_OPEN, STEP_AUTH,       STEP_RESTART,
        STEP_BIND, {NULL, NULL, 0}, /* never answers the stream close */
    };
    fenv_t e;
    if (!fenv_connect(&e, steps, NULL))
        return;
    CHECK(run_until(&e.loop, &e.c.connected, 1, 5000));
    uint64_t t0 = uv_hrtime();
    CHECK_INT(uvx_disconnect(e.c.conn, NULL), 0);
    CHECK(run_until(&e.loop, &e.c.disconnected, 1, 6000));
    uint64_t ms = (uv_hrtime() - t0) / 1000000;
    CHECK(tclient_saw(&e.c, UVX_STATUS_CONNTIMEOUT));
    CHECK(ms >= 2900); /* the default disconnection_timeout is 3000 ms */
    CHECK(strstr(fake_server_received(e.fs), "<presence type='unavailable'/></stream:stream>") !=
          NULL);
    fenv_done(&e);
}

static void test_disconnection_timeout_option(void)
{
    static const fake_step_t steps[] = {
        STEP_OPEN, STEP_AUTH, STEP_RESTART, STEP_BIND, {NULL, NULL, 0},
    };
    fenv_t e;
    uvx_connect_args_t args = {0};
    args.disconnection_timeout_ms = 200;
    if (!fenv_start(&e, steps, &args))
        return;
    /* fenv_start used no status callback: poll the status */
    for (int i = 0; i < 100 && uvx_conn_status(e.c.conn) != UVX_STATUS_CONNECTED; i++)
        run_for(&e.loop, 20);
    CHECK_INT(uvx_conn_status(e.c.conn), UVX_STATUS_CONNECTED);
    uint64_t t0 = uv_hrtime();
    CHECK_INT(uvx_disconnect(e.c.conn, NULL), 0);
    for (int i = 0; i < 100 && uvx_conn_status(e.c.conn) != UVX_STATUS_DISCONNECTED; i++)
        run_for(&e.loop, 20);
    uint64_t ms = (uv_hrtime() - t0) / 1000000;
    CHECK_INT(uvx_conn_status(e.c.conn), UVX_STATUS_DISCONNECTED);
    CHECK(ms >= 190 && ms < 2000);
    fenv_done(&e);
}

static void test_required_session(void)
{
    static const fake_step_t steps[] = {
        STEP_OPEN,
        STEP_AUTH,
        {"<stream:stream",
         FAKE_STREAM_HEADER "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"
                            "<session xmlns='urn:ietf:params:xml:ns:xmpp-session'/>"
                            "</stream:features>",
         0},
        STEP_BIND,
        {"<session", "<iq type='result' id='_session_auth_2'/>", 0},
        {NULL, NULL, 0},
    };
    fenv_t e;
    if (!fenv_connect(&e, steps, NULL))
        return;
    CHECK(run_until(&e.loop, &e.c.connected, 1, 5000));
    CHECK_INT(fake_server_steps_done(e.fs), 5);
    fenv_done(&e);
}

static void test_optional_session_skipped(void)
{
    static const fake_step_t steps[] = {
        STEP_OPEN,
        STEP_AUTH,
        {"<stream:stream",
         FAKE_STREAM_HEADER "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"
                            "<session xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/>"
                            "</session></stream:features>",
         0},
        STEP_BIND,
        {NULL, NULL, 0},
    };
    fenv_t e;
    if (!fenv_connect(&e, steps, NULL))
        return;
    CHECK(run_until(&e.loop, &e.c.connected, 1, 5000));
    CHECK(strstr(fake_server_received(e.fs), "<session") == NULL);
    fenv_done(&e);
}

static void test_bind_conflict(void)
{
    static const fake_step_t steps[] = {
        STEP_OPEN,
        STEP_AUTH,
        STEP_RESTART,
        {"<bind",
         "<iq type='error' id='_bind_auth_2'><error type='cancel'><conflict "
         "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
         0},
        {NULL, NULL, 0},
    };
    fenv_t e;
    if (!fenv_connect(&e, steps, NULL))
        return;
    CHECK(run_until(&e.loop, &e.c.disconnected, 1, 5000));
    CHECK_STR(tclient_condition(&e.c, UVX_STATUS_CONNFAIL), "conflict");
    CHECK(!e.c.connected);
    fenv_done(&e);
}

/* The server's success, new stream header and features in one write: the
 * parser restarts in the middle of a chunk. */
static void test_restart_in_same_chunk(void)
{
    static const fake_step_t steps[] = {
        STEP_OPEN,
        {"<auth", FAKE_SUCCESS FAKE_STREAM_HEADER FAKE_FEATURES_BIND, 0},
        STEP_BIND,
        {NULL, NULL, 0},
    };
    fenv_t e;
    if (!fenv_connect(&e, steps, NULL))
        return;
    CHECK(run_until(&e.loop, &e.c.connected, 1, 5000));
    fenv_done(&e);
}

static void test_legacy_auth_digest(void)
{
    unsigned char hash[20];
    char hex[41], expect[128];
    mbedtls_sha1_ret((const unsigned char *)"fake-1alicepass", 15, hash);
    for (int i = 0; i < 20; i++)
        snprintf(hex + 2 * i, 3, "%02x", hash[i]);
    snprintf(expect, sizeof(expect), "<digest>%s</digest>", hex);
    fake_step_t steps[] = {
        {"<stream:stream",
         FAKE_STREAM_HEADER "<stream:features><auth "
                            "xmlns='http://jabber.org/features/iq-auth'/></stream:features>",
         0},
        {"<username>alice</username>",
         "<iq type='result' id='_auth_1'><query xmlns='jabber:iq:auth'><username/><password/>"
         "<digest/><resource/></query></iq>",
         0},
        {expect, "<iq type='result' id='_auth_2'/>", 0},
        {NULL, NULL, 0},
    };
    fenv_t e;
    if (!fenv_connect(&e, steps, NULL))
        return;
    CHECK(run_until(&e.loop, &e.c.connected, 1, 5000));
    CHECK(tclient_saw(&e.c, UVX_STATUS_AUTHENTICATING));
    CHECK(uvx_conn_authenticated(e.c.conn));
    CHECK_INT(fake_server_steps_done(e.fs), 3);
    CHECK(strstr(fake_server_received(e.fs), "<password>") == NULL); /* digest only */
    fenv_done(&e);
}

static void test_legacy_auth_failure(void)
{
    static const fake_step_t steps[] = {
        {"<stream:stream", FAKE_STREAM_HEADER "<stream:features/>", 0},
        {"<username>alice</username>",
         "<iq type='result' id='_auth_1'><query xmlns='jabber:iq:auth'><username/><password/>"
         "<resource/></query></iq>",
         0},
        {"<password>alicepass</password>",
         "<iq type='error' id='_auth_2'><error type='auth'><not-authorized "
         "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
         0},
        {NULL, NULL, 0},
    };
    fenv_t e;
    if (!fenv_connect(&e, steps, NULL))
        return;
    CHECK(run_until(&e.loop, &e.c.disconnected, 1, 5000));
    CHECK_STR(tclient_condition(&e.c, UVX_STATUS_AUTHFAIL), "not-authorized");
    fenv_done(&e);
}

static void test_no_mechanism(void)
{
    static const fake_step_t steps[] = {
        {"<stream:stream",
         FAKE_STREAM_HEADER "<stream:features><mechanisms "
                            "xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>X-UNKNOWN"
                            "</mechanism></mechanisms></stream:features>",
         0},
        {NULL, NULL, 0},
    };
    fenv_t e;
    if (!fenv_connect(&e, steps, NULL))
        return;
    CHECK(run_until(&e.loop, &e.c.disconnected, 1, 5000));
    CHECK_STR(tclient_condition(&e.c, UVX_STATUS_CONNFAIL), "no-auth-mech");
    fenv_done(&e);
}

/* A spoofed reply (wrong from) must not complete a send_iq. */
static int iq_done(uvx_conn_t *conn, uvx_stanza_t *s, void *ud)
{
    (void)conn;
    *(int *)ud = s ? 1 : 2;
    return 0;
}

static void test_send_iq_ignores_spoofed_reply(void)
{
    static const fake_step_t steps[] = {
        STEP_OPEN,
        STEP_AUTH,
        STEP_RESTART,
        STEP_BIND,
        {"id='q1'",
         "<iq type='result' id='q1' from='mallory@evil'/>"
         "<iq type='result' id='q1' from='bob@localhost/x'/>",
         0},
        {NULL, NULL, 0},
    };
    fenv_t e;
    if (!fenv_connect(&e, steps, NULL))
        return;
    CHECK(run_until(&e.loop, &e.c.connected, 1, 5000));
    int done = 0;
    uvx_stanza_t *iq = uvx_stanza_fmt(
        "<iq type='get' id='q1' to='bob@localhost/x'><ping xmlns='urn:xmpp:ping'/></iq>");
    CHECK_INT(uvx_send_iq(e.c.conn, iq, iq_done, iq_done, &done, 2000), 0);
    uvx_stanza_unref(iq);
    CHECK(run_until(&e.loop, &done, 1, 3000));
    CHECK_INT(done, 1); /* the genuine reply, not a timeout */
    fenv_done(&e);
}

/* Pending IQs hear about a disconnection. */
static void test_pending_iq_on_disconnect(void)
{
    static const fake_step_t steps[] = {
        STEP_OPEN,
        STEP_AUTH,
        STEP_RESTART,
        STEP_BIND,
        {"id='q2'", NULL, 1}, /* the server hangs up instead of answering */
        {NULL, NULL, 0},
    };
    fenv_t e;
    if (!fenv_connect(&e, steps, NULL))
        return;
    CHECK(run_until(&e.loop, &e.c.connected, 1, 5000));
    int done = 0;
    uvx_stanza_t *iq = uvx_stanza_fmt("<iq type='get' id='q2'><ping xmlns='urn:xmpp:ping'/></iq>");
    CHECK_INT(uvx_send_iq(e.c.conn, iq, iq_done, iq_done, &done, 0), 0);
    uvx_stanza_unref(iq);
    CHECK(run_until(&e.loop, &e.c.disconnected, 1, 5000));
    CHECK_INT(done, 2); /* errb with NULL */
    CHECK_STR(tclient_condition(&e.c, UVX_STATUS_DISCONNECTED), "connection-lost");
    fenv_done(&e);
}

/* A server that accepts and then says nothing: the login gives up. */
static void test_login_timeout(void)
{
    static const fake_step_t steps[] = {
        {"<stream:stream", NULL, 0}, /* never answers */
        {NULL, NULL, 0},
    };
    fenv_t e;
    uvx_conn_options_t o;
    uvx_conn_options_init(&o);
    o.allow_plain = 1;
    o.login_timeout_ms = 300;
    if (!fenv_connect(&e, steps, &o))
        return;
    CHECK(run_until(&e.loop, &e.c.disconnected, 1, 5000));
    CHECK_STR(tclient_condition(&e.c, UVX_STATUS_CONNFAIL), "login-timeout");
    CHECK_INT(fake_server_steps_done(e.fs), 1); /* it did get our stream header */
    fenv_done(&e);
}

int main(void)
{
    tap_run("stream error before CONNECTED -> CONNFAIL condition",
            test_stream_error_before_connected);
    tap_run("stream error after CONNECTED -> ERROR condition", test_stream_error_after_connected);
    tap_run("malformed XML -> parser error, stream error sent", test_bad_xml);
    tap_run("comment from the server -> restricted-xml", test_restricted_xml);
    tap_run("undeclared entity -> not-well-formed", test_undeclared_entity);
    tap_run("connection dropped during SASL -> CONNFAIL", test_dropped_mid_negotiation);
    tap_run("silent peer: disconnect -> CONNTIMEOUT after 3 s",
            test_silent_peer_disconnect_timeout);
    tap_run("disconnection_timeout option", test_disconnection_timeout_option);
    tap_run("required RFC 3921 session", test_required_session);
    tap_run("optional session skipped", test_optional_session_skipped);
    tap_run("bind conflict -> CONNFAIL conflict", test_bind_conflict);
    tap_run("stream restart in the middle of a chunk", test_restart_in_same_chunk);
    tap_run("legacy auth (XEP-0078) with digest", test_legacy_auth_digest);
    tap_run("legacy auth failure -> AUTHFAIL", test_legacy_auth_failure);
    tap_run("no usable mechanism -> CONNFAIL no-auth-mech", test_no_mechanism);
    tap_run("send_iq ignores a spoofed reply", test_send_iq_ignores_spoofed_reply);
    tap_run("pending send_iq gets errb(NULL) on disconnect", test_pending_iq_on_disconnect);
    tap_run("a server that stalls -> CONNFAIL login-timeout", test_login_timeout);
    return tap_done();
}
