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
    loopenv_t base; /* the loop and the context */
    fake_server_t *fs;
    tclient_t c;
    char service[64];
} fenv_t;

/* The loop, the context, the scripted server and a client for it (`opts`
 * NULL: test/client.c's defaults). */
static int fenv_listen(fenv_t *e, const fake_step_t *steps, const uvx_conn_options_t *opts)
{
    int port = 0;
    loopenv_init(&e->base);
    e->fs = fake_server_start(&e->base.loop, steps, &port);
    CHECK(e->fs != NULL);
    if (e->fs == NULL)
        return 0;
    snprintf(e->service, sizeof(e->service), "tcp://127.0.0.1:%d", port);
    CHECK_INT(tclient_init(&e->c, e->base.ctx, e->service, opts), 0);
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

/* Runs the loop until the client has reported what `flag` counts. */
static int fenv_wait(fenv_t *e, const int *flag)
{
    return run_until(&e->base.loop, flag, 1, 5000);
}

/* fenv_connect, then the client must reach CONNECTED. 0: no environment. */
static int fenv_login(fenv_t *e, const fake_step_t *steps)
{
    if (!fenv_connect(e, steps, NULL))
        return 0;
    CHECK(fenv_wait(e, &e->c.connected));
    return 1;
}

/* fenv_connect, then the client must give up, its last report of `status`
 * naming `condition`. The environment stays for the case's own checks
 * (0: there is none). */
static int fenv_fail(fenv_t *e, const fake_step_t *steps, const uvx_conn_options_t *opts,
                     int status, const char *condition)
{
    if (!fenv_connect(e, steps, opts))
        return 0;
    CHECK(fenv_wait(e, &e->c.disconnected));
    CHECK_STR(tclient_condition(&e->c, status), condition);
    return 1;
}

static void fenv_done(fenv_t *e)
{
    tclient_close(&e->c, &e->base.loop);
    fake_server_stop(e->fs);
    loopenv_done(&e->base);
}

/* fenv_fail for a case whose only other check is a status the client
 * must never have reported on its way to the failure. */
static void failure_case(const fake_step_t *steps, int status, const char *condition, int never)
{
    fenv_t e;
    if (!fenv_fail(&e, steps, NULL, status, condition))
        return;
    CHECK(!tclient_saw(&e.c, never));
    fenv_done(&e);
}

/* 1 when the client sent `text` to the scripted server. */
static int server_got(const fenv_t *e, const char *text)
{
    return strstr(fake_server_received(e->fs), text) != NULL;
}

/* The server's answer to a stream header: its own and `features` (or
 * whatever else a case sends in their place). */
#define STEP_STREAM(features)                                                                      \
    {                                                                                              \
        "<stream:stream", FAKE_STREAM_HEADER features, 0                                           \
    }

/* The four steps of a plain login, as initialisers. */
#define STEP_OPEN STEP_STREAM(FAKE_FEATURES_PLAIN)
#define STEP_AUTH                                                                                  \
    {                                                                                              \
        "<auth", FAKE_SUCCESS, 0                                                                   \
    }
#define STEP_RESTART STEP_STREAM(FAKE_FEATURES_BIND)
#define STEP_BIND                                                                                  \
    {                                                                                              \
        "<bind", FAKE_BIND_RESULT, 0                                                               \
    }
#define STEPS_LOGIN STEP_OPEN, STEP_AUTH, STEP_RESTART, STEP_BIND

/* The server's error reply to the IQ `id`: a stanza error of `type`. */
#define IQ_ERROR(id, type, condition)                                                              \
    "<iq type='error' id='" id "'><error type='" type "'><" condition                              \
    " xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"

static void test_stream_error_before_connected(void)
{
    static const fake_step_t steps[] = {
        STEP_STREAM("<stream:error><host-unknown "
                    "xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"
                    "</stream:stream>"),
        {NULL, NULL, 0},
    };
    /* CONNFAIL, not the ERROR of an established stream */
    failure_case(steps, UVX_STATUS_CONNFAIL, "host-unknown", UVX_STATUS_ERROR);
}

static void test_stream_error_after_connected(void)
{
    static const fake_step_t steps[] = {
        STEPS_LOGIN,
        {"<presence",
         "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
         "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>Replaced</text></stream:error>",
         0},
        {NULL, NULL, 0},
    };
    fenv_t e;
    if (!fenv_login(&e, steps))
        return;
    CHECK_STR(uvx_conn_jid(e.c.conn), "alice@localhost/fake");
    uvx_stanza_t *p = uvx_b_done(uvx_pres(NULL));
    uvx_send(e.c.conn, p);
    uvx_stanza_unref(p);
    CHECK(fenv_wait(&e, &e.c.disconnected));
    CHECK_STR(tclient_condition(&e.c, UVX_STATUS_ERROR), "conflict");
    CHECK(server_got(&e, "</stream:stream>")); /* we closed our side too */
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
    char expect[128];
    snprintf(expect, sizeof(expect), "x-uvx-parsererror: %s", condition);
    fenv_t e;
    if (!fenv_fail(&e, steps, NULL, UVX_STATUS_CONNFAIL, expect))
        return;
    /* RFC 6120 §4.9: we told the server why */
    run_for(&e.base.loop, 50);
    snprintf(expect, sizeof(expect), "<%s xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>",
             condition);
    CHECK(server_got(&e, expect));
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
        STEP_OPEN,
        {"<auth", NULL, 1}, /* hang up on the auth */
        {NULL, NULL, 0},
    };
    fenv_t e;
    if (!fenv_fail(&e, steps, NULL, UVX_STATUS_CONNFAIL, "connection-lost"))
        return;
    CHECK(tclient_saw(&e.c, UVX_STATUS_AUTHENTICATING));
    fenv_done(&e);
}

static void test_silent_peer_disconnect_timeout(void)
{
    static const fake_step_t steps[] = {
        STEPS_LOGIN, {NULL, NULL, 0}, /* never answers the stream close */
    };
    fenv_t e;
    if (!fenv_login(&e, steps))
        return;
    uint64_t t0 = uv_hrtime();
    CHECK_INT(uvx_disconnect(e.c.conn, NULL), 0);
    CHECK(run_until(&e.base.loop, &e.c.disconnected, 1, 6000));
    uint64_t ms = (uv_hrtime() - t0) / 1000000;
    CHECK(tclient_saw(&e.c, UVX_STATUS_CONNTIMEOUT));
    CHECK(ms >= 2900); /* the default disconnection_timeout is 3000 ms */
    CHECK(server_got(&e, "<presence type='unavailable'/></stream:stream>"));
    fenv_done(&e);
}

/* fenv_start set no status callback: polls for `status` (2 s at most). */
static void poll_status(fenv_t *e, int status)
{
    for (int i = 0; i < 100 && uvx_conn_status(e->c.conn) != status; i++)
        run_for(&e->base.loop, 20);
    CHECK_INT(uvx_conn_status(e->c.conn), status);
}

static void test_disconnection_timeout_option(void)
{
    static const fake_step_t steps[] = {
        STEPS_LOGIN,
        {NULL, NULL, 0},
    };
    fenv_t e;
    uvx_connect_args_t args = {0};
    args.disconnection_timeout_ms = 200;
    if (!fenv_start(&e, steps, &args))
        return;
    poll_status(&e, UVX_STATUS_CONNECTED);
    uint64_t t0 = uv_hrtime();
    CHECK_INT(uvx_disconnect(e.c.conn, NULL), 0);
    poll_status(&e, UVX_STATUS_DISCONNECTED);
    uint64_t ms = (uv_hrtime() - t0) / 1000000;
    CHECK(ms >= 190 && ms < 2000);
    fenv_done(&e);
}

static void test_required_session(void)
{
    static const fake_step_t steps[] = {
        STEP_OPEN,
        STEP_AUTH,
        STEP_STREAM("<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"
                    "<session xmlns='urn:ietf:params:xml:ns:xmpp-session'/>"
                    "</stream:features>"),
        STEP_BIND,
        {"<session", "<iq type='result' id='_session_auth_2'/>", 0},
        {NULL, NULL, 0},
    };
    fenv_t e;
    if (!fenv_login(&e, steps))
        return;
    CHECK_INT(fake_server_steps_done(e.fs), 5);
    fenv_done(&e);
}

static void test_optional_session_skipped(void)
{
    static const fake_step_t steps[] = {
        STEP_OPEN,
        STEP_AUTH,
        STEP_STREAM("<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"
                    "<session xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/>"
                    "</session></stream:features>"),
        STEP_BIND,
        {NULL, NULL, 0},
    };
    fenv_t e;
    if (!fenv_login(&e, steps))
        return;
    CHECK(!server_got(&e, "<session"));
    fenv_done(&e);
}

static void test_bind_conflict(void)
{
    static const fake_step_t steps[] = {
        STEP_OPEN,       STEP_AUTH,
        STEP_RESTART,    {"<bind", IQ_ERROR("_bind_auth_2", "cancel", "conflict"), 0},
        {NULL, NULL, 0},
    };
    failure_case(steps, UVX_STATUS_CONNFAIL, "conflict", UVX_STATUS_CONNECTED);
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
    if (fenv_login(&e, steps))
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
        STEP_STREAM("<stream:features><auth "
                    "xmlns='http://jabber.org/features/iq-auth'/></stream:features>"),
        {"<username>alice</username>",
         "<iq type='result' id='_auth_1'><query xmlns='jabber:iq:auth'><username/><password/>"
         "<digest/><resource/></query></iq>",
         0},
        {expect, "<iq type='result' id='_auth_2'/>", 0},
        {NULL, NULL, 0},
    };
    fenv_t e;
    if (!fenv_login(&e, steps))
        return;
    CHECK(tclient_saw(&e.c, UVX_STATUS_AUTHENTICATING));
    CHECK(uvx_conn_authenticated(e.c.conn));
    CHECK_INT(fake_server_steps_done(e.fs), 3);
    CHECK(!server_got(&e, "<password>")); /* digest only */
    fenv_done(&e);
}

static void test_legacy_auth_failure(void)
{
    static const fake_step_t steps[] = {
        STEP_STREAM("<stream:features/>"),
        {"<username>alice</username>",
         "<iq type='result' id='_auth_1'><query xmlns='jabber:iq:auth'><username/><password/>"
         "<resource/></query></iq>",
         0},
        {"<password>alicepass</password>", IQ_ERROR("_auth_2", "auth", "not-authorized"), 0},
        {NULL, NULL, 0},
    };
    failure_case(steps, UVX_STATUS_AUTHFAIL, "not-authorized", UVX_STATUS_CONNECTED);
}

static void test_no_mechanism(void)
{
    static const fake_step_t steps[] = {
        STEP_STREAM("<stream:features><mechanisms "
                    "xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>X-UNKNOWN"
                    "</mechanism></mechanisms></stream:features>"),
        {NULL, NULL, 0},
    };
    failure_case(steps, UVX_STATUS_CONNFAIL, "no-auth-mech", UVX_STATUS_CONNECTED);
}

/* A spoofed reply (wrong from) must not complete a send_iq. */
static int iq_done(uvx_conn_t *conn, uvx_stanza_t *s, void *ud)
{
    (void)conn;
    *(int *)ud = s ? 1 : 2;
    return 0;
}

/* Sends `iq` (taking the reference); *done becomes 1 on the reply, 2 on
 * an error or a timeout. */
static void send_tracked_iq(fenv_t *e, uvx_stanza_t *iq, unsigned timeout_ms, int *done)
{
    *done = 0;
    CHECK_INT(uvx_send_iq(e->c.conn, iq, iq_done, iq_done, done, timeout_ms), 0);
    uvx_stanza_unref(iq);
}

static void test_send_iq_ignores_spoofed_reply(void)
{
    static const fake_step_t steps[] = {
        STEPS_LOGIN,
        {"id='q1'",
         "<iq type='result' id='q1' from='mallory@evil'/>"
         "<iq type='result' id='q1' from='bob@localhost/x'/>",
         0},
        {NULL, NULL, 0},
    };
    fenv_t e;
    if (!fenv_login(&e, steps))
        return;
    int done;
    send_tracked_iq(&e,
                    uvx_stanza_fmt("<iq type='get' id='q1' to='bob@localhost/x'>"
                                   "<ping xmlns='urn:xmpp:ping'/></iq>"),
                    2000, &done);
    CHECK(run_until(&e.base.loop, &done, 1, 3000));
    CHECK_INT(done, 1); /* the genuine reply, not a timeout */
    fenv_done(&e);
}

/* Pending IQs hear about a disconnection. */
static void test_pending_iq_on_disconnect(void)
{
    static const fake_step_t steps[] = {
        STEPS_LOGIN,
        {"id='q2'", NULL, 1}, /* the server hangs up instead of answering */
        {NULL, NULL, 0},
    };
    fenv_t e;
    if (!fenv_login(&e, steps))
        return;
    int done;
    send_tracked_iq(&e, uvx_stanza_fmt("<iq type='get' id='q2'><ping xmlns='urn:xmpp:ping'/></iq>"),
                    0, &done);
    CHECK(fenv_wait(&e, &e.c.disconnected));
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
    if (!fenv_fail(&e, steps, &o, UVX_STATUS_CONNFAIL, "login-timeout"))
        return;
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
