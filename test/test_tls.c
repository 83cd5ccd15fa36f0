/*
 * TLS: direct TLS (xmpps://) against a real server with its own
 * self-signed certificate, verification failures and the caller's verify
 * callback, and broken handshakes from a scripted peer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "fakeserver.h"
#include "server.h"
#include "tap.h"
#include "uvxmpp.h"

static test_server_t srv;
static char cafile[512];
static char tls_service[64];
static char c2s_service[64];

typedef struct tenv {
    uv_loop_t loop;
    uvx_ctx_t *ctx;
    tclient_t c;
} tenv_t;

static void env_init(tenv_t *e)
{
    uv_loop_init(&e->loop);
    e->ctx = uvx_ctx_new(&e->loop);
}

static void env_done(tenv_t *e)
{
    if (e->c.conn && e->c.connected && !e->c.disconnected) {
        CHECK_INT(uvx_disconnect(e->c.conn, NULL), 0);
        CHECK(run_until(&e->loop, &e->c.disconnected, 1, 5000));
    }
    tclient_close(&e->c, &e->loop);
    for (int i = 0; i < 10; i++)
        uv_run(&e->loop, UV_RUN_NOWAIT);
    CHECK_INT(uvx_ctx_free(e->ctx), 0);
    CHECK_INT(loop_finish(&e->loop), 0);
}

static void opts_base(uvx_conn_options_t *o)
{
    uvx_conn_options_init(o);
    o->allow_plain = 1; /* PLAIN is fine inside TLS anyway */
}

static int run_login(tenv_t *e, const char *service, const uvx_conn_options_t *o)
{
    CHECK_INT(tclient_init(&e->c, e->ctx, service, o), 0);
    CHECK_INT(tclient_connect(&e->c, "alice@localhost", "alicepass"), 0);
    int done = 0;
    for (int i = 0; i < 300 && !e->c.connected && !e->c.disconnected; i++)
        run_for(&e->loop, 20);
    done = e->c.connected || e->c.disconnected;
    return done;
}

static void test_direct_tls_with_ca(void)
{
    tenv_t e;
    uvx_conn_options_t o;
    env_init(&e);
    opts_base(&o);
    o.tls_cafile = cafile;
    CHECK(run_login(&e, tls_service, &o));
    CHECK(e.c.connected);
    CHECK(strncmp(uvx_conn_jid(e.c.conn), "alice@localhost/", 16) == 0);
    env_done(&e);
}

static void test_direct_tls_untrusted(void)
{
    tenv_t e;
    uvx_conn_options_t o;
    env_init(&e);
    opts_base(&o); /* the system bundle does not know the test CA */
    CHECK(run_login(&e, tls_service, &o));
    CHECK(!e.c.connected);
    CHECK_STR(tclient_condition(&e.c, UVX_STATUS_CONNFAIL), "tls-cert-invalid");
    CHECK(run_until(&e.loop, &e.c.disconnected, 1, 5000));
    env_done(&e);
}

typedef struct seen_cert {
    int calls;
    int accept;
    char reason[64];
    char subject[128];
    char fp[100];
    int has_localhost_san;
} seen_cert_t;

static int verify_cb(uvx_conn_t *conn, const uvx_tls_cert_info_t *cert, void *ud)
{
    seen_cert_t *s = ud;
    (void)conn;
    s->calls++;
    snprintf(s->reason, sizeof(s->reason), "%s", cert->reason);
    snprintf(s->subject, sizeof(s->subject), "%s", cert->subject);
    snprintf(s->fp, sizeof(s->fp), "%s", cert->sha256);
    for (const char *const *san = cert->sans; san && *san; san++)
        if (strcmp(*san, "localhost") == 0)
            s->has_localhost_san = 1;
    return s->accept;
}

static void test_verify_callback(void)
{
    for (int accept = 0; accept <= 1; accept++) {
        tenv_t e;
        uvx_conn_options_t o;
        seen_cert_t seen = {0};
        seen.accept = accept;
        env_init(&e);
        opts_base(&o);
        o.tls_verify_cb = verify_cb;
        o.tls_verify_ud = &seen;
        CHECK(run_login(&e, tls_service, &o));
        CHECK_INT(seen.calls, 1);
        CHECK_STR(seen.reason, "not trusted");
        CHECK_STR(seen.subject, "CN=localhost");
        CHECK(seen.has_localhost_san);
        CHECK_INT((int)strlen(seen.fp), 95); /* 32 bytes as XX: */
        CHECK_INT(e.c.connected, accept);
        env_done(&e);
    }
}

static void test_insecure_option(void)
{
    tenv_t e;
    uvx_conn_options_t o;
    env_init(&e);
    opts_base(&o);
    o.tls_insecure = 1;
    CHECK(run_login(&e, tls_service, &o));
    CHECK(e.c.connected);
    env_done(&e);
}

static void test_bad_cafile(void)
{
    tenv_t e;
    uvx_conn_options_t o;
    env_init(&e);
    opts_base(&o);
    o.tls_cafile = "/nonexistent/ca.pem";
    CHECK(run_login(&e, tls_service, &o));
    CHECK_STR(tclient_condition(&e.c, UVX_STATUS_CONNFAIL), "tls-bad-ca");
    env_done(&e);
}

/* messages flow inside TLS: a second client over TLS exchanges with the first */
static int count_msg(uvx_conn_t *c, uvx_stanza_t *s, void *ud)
{
    (void)c;
    (void)s;
    (*(int *)ud)++;
    return 1;
}

static void test_messages_over_tls(void)
{
    tenv_t e;
    tclient_t bob;
    uvx_conn_options_t o;
    env_init(&e);
    opts_base(&o);
    o.tls_cafile = cafile;
    CHECK(run_login(&e, tls_service, &o));
    CHECK_INT(tclient_init(&bob, e.ctx, tls_service, &o), 0);
    CHECK_INT(tclient_connect(&bob, "bob@localhost/tls", "bobpass"), 0);
    CHECK(run_until(&e.loop, &bob.connected, 1, 10000));
    int got = 0;
    uvx_add_handler(bob.conn, count_msg, &got, NULL, "message", NULL, NULL, NULL, 0);
    for (int i = 0; i < 1000; i++) {
        uvx_stanza_t *m =
            uvx_stanza_fmt("<message to='bob@localhost/tls'><body>%d</body></message>", i);
        uvx_send(e.c.conn, m);
        uvx_stanza_unref(m);
    }
    CHECK(run_until(&e.loop, &got, 1000, 20000));
    CHECK_INT(got, 1000);
    CHECK_INT(uvx_disconnect(bob.conn, NULL), 0);
    CHECK(run_until(&e.loop, &bob.disconnected, 1, 5000));
    CHECK(!tclient_saw(&bob, UVX_STATUS_CONNTIMEOUT));
    tclient_close(&bob, &e.loop);
    env_done(&e);
}

/* STARTTLS on the c2s port (tcp://): TLS is negotiated whenever offered. */
static void test_starttls(void)
{
    tenv_t e;
    uvx_conn_options_t o;
    env_init(&e);
    opts_base(&o);
    o.tls_cafile = cafile;
    CHECK(run_login(&e, c2s_service, &o));
    CHECK(e.c.connected);
    CHECK(uvx_conn_secure(e.c.conn));
    env_done(&e);
}

static void test_starttls_untrusted(void)
{
    tenv_t e;
    uvx_conn_options_t o;
    env_init(&e);
    opts_base(&o);
    CHECK(run_login(&e, c2s_service, &o));
    CHECK(!e.c.connected);
    CHECK_STR(tclient_condition(&e.c, UVX_STATUS_CONNFAIL), "tls-cert-invalid");
    env_done(&e);
}

/* tls_disabled + allow_plain: a clear stream on purpose */
static void test_tls_disabled(void)
{
    tenv_t e;
    uvx_conn_options_t o;
    env_init(&e);
    opts_base(&o);
    o.tls_disabled = 1;
    CHECK(run_login(&e, c2s_service, &o));
    CHECK(e.c.connected);
    CHECK(!uvx_conn_secure(e.c.conn));
    env_done(&e);
}

static void fake_case(const fake_step_t *steps, int allow_plain, const char *condition)
{
    tenv_t e;
    int port;
    env_init(&e);
    fake_server_t *fs = fake_server_start(&e.loop, steps, &port);
    char service[64];
    snprintf(service, sizeof(service), "tcp://127.0.0.1:%d", port);
    uvx_conn_options_t o;
    uvx_conn_options_init(&o);
    o.allow_plain = allow_plain;
    CHECK(run_login(&e, service, &o));
    CHECK(run_until(&e.loop, &e.c.disconnected, 1, 5000));
    CHECK_STR(tclient_condition(&e.c, UVX_STATUS_CONNFAIL), condition);
    CHECK(strstr(fake_server_received(fs), "<auth") == NULL); /* no credentials in the clear */
    fake_server_stop(fs);
    env_done(&e);
}

static void test_no_starttls_offered(void)
{
    static const fake_step_t steps[] = {
        {"<stream:stream", FAKE_STREAM_HEADER FAKE_FEATURES_PLAIN, 0},
        {NULL, NULL, 0},
    };
    fake_case(steps, 0, "tls-required");
}

static void test_starttls_refused(void)
{
    static const fake_step_t steps[] = {
        {"<stream:stream",
         FAKE_STREAM_HEADER "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
                            "</stream:features>",
         0},
        {"<starttls", "<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:stream>", 0},
        {NULL, NULL, 0},
    };
    fake_case(steps, 1, "tls-failed");
}

/* A peer that answers the ClientHello with something that is not TLS. */
static void test_garbage_handshake(void)
{
    static const fake_step_t steps[] = {
        {NULL, "HTTP/1.1 400 Bad Request\r\n\r\n", 0},
        {NULL, NULL, 0},
    };
    tenv_t e;
    int port;
    env_init(&e);
    fake_server_t *fs = fake_server_start(&e.loop, steps, &port);
    char service[64];
    snprintf(service, sizeof(service), "xmpps://127.0.0.1:%d", port);
    uvx_conn_options_t o;
    opts_base(&o);
    o.tls_insecure = 1;
    CHECK(run_login(&e, service, &o));
    CHECK(run_until(&e.loop, &e.c.disconnected, 1, 5000));
    const char *cond = tclient_condition(&e.c, UVX_STATUS_CONNFAIL);
    CHECK(cond && strncmp(cond, "tls-", 4) == 0);
    fake_server_stop(fs);
    env_done(&e);
}

/* A peer that hangs up in the middle of the handshake. */
static void test_dropped_handshake(void)
{
    static const fake_step_t steps[] = {
        {NULL, NULL, 1},
        {NULL, NULL, 0},
    };
    tenv_t e;
    int port;
    env_init(&e);
    fake_server_t *fs = fake_server_start(&e.loop, steps, &port);
    char service[64];
    snprintf(service, sizeof(service), "xmpps://127.0.0.1:%d", port);
    uvx_conn_options_t o;
    opts_base(&o);
    o.tls_insecure = 1;
    CHECK(run_login(&e, service, &o));
    CHECK(run_until(&e.loop, &e.c.disconnected, 1, 5000));
    CHECK_STR(tclient_condition(&e.c, UVX_STATUS_CONNFAIL), "connection-lost");
    fake_server_stop(fs);
    env_done(&e);
}

int main(int argc, char **argv)
{
    const char *kind = argc > 1 ? argv[1] : "prosody";
    tap_run("handshake with non-TLS bytes -> CONNFAIL tls-*", test_garbage_handshake);
    tap_run("peer hangs up mid-handshake -> CONNFAIL connection-lost", test_dropped_handshake);
    tap_run("no STARTTLS offered, clear stream not allowed -> tls-required",
            test_no_starttls_offered);
    tap_run("server refuses STARTTLS -> CONNFAIL tls-failed", test_starttls_refused);
    if (!tserver_start(&srv, kind, NULL)) {
        tap_skip(kind, "server not available");
        return tap_done();
    }
    test_server_cert_path(&srv, cafile, sizeof(cafile));
    snprintf(tls_service, sizeof(tls_service), "xmpps://127.0.0.1:%d", srv.tls_port);
    snprintf(c2s_service, sizeof(c2s_service), "tcp://127.0.0.1:%d", srv.c2s_port);
    tap_run("STARTTLS with the server's CA", test_starttls);
    tap_run("STARTTLS, unknown CA -> CONNFAIL tls-cert-invalid", test_starttls_untrusted);
    tap_run("tls_disabled: a clear stream on purpose", test_tls_disabled);
    tap_run("direct TLS with the server's CA", test_direct_tls_with_ca);
    tap_run("direct TLS, unknown CA -> CONNFAIL tls-cert-invalid", test_direct_tls_untrusted);
    tap_run("verify callback sees the certificate and decides", test_verify_callback);
    tap_run("tls_insecure accepts any certificate", test_insecure_option);
    tap_run("unreadable CA file -> CONNFAIL tls-bad-ca", test_bad_cafile);
    tap_run("1 000 messages over TLS", test_messages_over_tls);
    test_server_stop(&srv);
    return tap_done();
}
