/*
 * The connection core against a real Prosody started for this program:
 * login, failures, messaging, send_iq, handler matching, timed handlers,
 * batching, hooks, plugins, graceful disconnect. Every case runs its own
 * loop and checks that nothing is left on it afterwards.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "server.h"
#include "tap.h"
#include "uvxmpp.h"

static test_server_t srv;
static int have_server;
static char service[64];

/* Logs a client in over a clear stream and waits for CONNECTED. */
static int login(loopenv_t *e, tclient_t *c, const char *jid, const char *pass)
{
    return tclient_login(e, c, service, NULL, jid, pass);
}

/* Options for a clear stream (no STARTTLS); PLAIN allowed unless changed. */
static void clear_options(uvx_conn_options_t *o, const char *mechs[2], const char *mech)
{
    tclient_options(o, mechs, mech);
    o->tls_disabled = 1;
}

/* ---- login ---- */

static void test_login_plain(void)
{
    loopenv_t e;
    tclient_t c;
    loopenv_init(&e);
    CHECK(login(&e, &c, "alice@localhost", "alicepass"));
    CHECK_INT(c.status[0], UVX_STATUS_CONNECTING);
    CHECK(tclient_saw(&c, UVX_STATUS_AUTHENTICATING));
    CHECK(uvx_conn_authenticated(c.conn));
    const char *jid = uvx_conn_jid(c.conn);
    CHECK(jid != NULL && strncmp(jid, "alice@localhost/", 16) == 0 && strlen(jid) > 16);
    CHECK(uvx_conn_stream_id(c.conn) != NULL);
    tclient_disconnect_and_close(&e, &c);
    CHECK(tclient_saw(&c, UVX_STATUS_DISCONNECTING));
    CHECK(!tclient_saw(&c, UVX_STATUS_CONNTIMEOUT)); /* the server closed its stream */
    loopenv_done(&e);
}

static void test_login_with_resource(void)
{
    loopenv_t e;
    tclient_t c;
    loopenv_init(&e);
    CHECK(login(&e, &c, "bob@localhost/desk", "bobpass"));
    CHECK_STR(uvx_conn_jid(c.conn), "bob@localhost/desk");
    tclient_disconnect_and_close(&e, &c);
    loopenv_done(&e);
}

static void test_login_anonymous(void)
{
    loopenv_t e;
    tclient_t c;
    loopenv_init(&e);
    CHECK(login(&e, &c, "anon.localhost", NULL));
    const char *jid = uvx_conn_jid(c.conn);
    CHECK(jid && strstr(jid, "@anon.localhost/") != NULL);
    tclient_disconnect_and_close(&e, &c);
    loopenv_done(&e);
}

static void test_mech_option(void)
{
    loopenv_t e;
    tclient_t c;
    loopenv_init(&e);
    const char *mechs[2];
    uvx_conn_options_t o;
    clear_options(&o, mechs, "PLAIN");
    CHECK(tclient_login(&e, &c, service, &o, "alice@localhost", "alicepass"));
    CHECK_STR(uvx_sasl_mechanism(c.conn), "PLAIN");
    tclient_disconnect_and_close(&e, &c);
    loopenv_done(&e);
}

/* A login to `to` that must end in DISCONNECTED, never CONNECTED, after
 * `status` with `condition`. */
static void failed_login_case(const char *to, const uvx_conn_options_t *opts, const char *pass,
                              int status, const char *condition)
{
    loopenv_t e;
    tclient_t c;
    loopenv_init(&e);
    CHECK(!tclient_login(&e, &c, to, opts, "alice@localhost", pass));
    CHECK(c.disconnected);
    CHECK(tclient_saw(&c, status));
    CHECK_STR(tclient_condition(&c, status), condition);
    CHECK(!c.connected);
    tclient_close(&c, &e.loop);
    loopenv_done(&e);
}

static void test_wrong_password(void)
{
    failed_login_case(service, NULL, "wrong", UVX_STATUS_AUTHFAIL, "not-authorized");
}

static void test_plain_refused_in_clear(void)
{
    const char *mechs[2];
    uvx_conn_options_t o;
    clear_options(&o, mechs, "PLAIN");
    o.allow_plain = 0; /* on a stream clear_options keeps clear */
    failed_login_case(service, &o, "alicepass", UVX_STATUS_CONNFAIL, "tls-required");
}

static void test_connection_refused(void)
{
    /* nothing listens on port 1 */
    failed_login_case("tcp://127.0.0.1:1", NULL, "alicepass", UVX_STATUS_CONNFAIL,
                      "connection-refused");
}

static void test_unresolvable_host(void)
{
    failed_login_case("tcp://no-such-host.invalid:5222", NULL, "alicepass", UVX_STATUS_CONNFAIL,
                      "host-unresolved");
}

static void test_api_misuse(void)
{
    loopenv_t e;
    uvx_conn_t *conn = NULL;
    loopenv_init(&e);
    CHECK_INT(uvx_conn_new(e.ctx, "gopher://localhost/xmpp", NULL, &conn), UVX_ENOTSUP);
    uvx_conn_options_t o;
    uvx_conn_options_init(&o);
    const char *const smuggling[] = {"X-A: 1\r\nGET / HTTP/1.1", NULL};
    o.http_headers = smuggling;
    CHECK_INT(uvx_conn_new(e.ctx, "localhost", &o, &conn), UVX_EINVAL);
    CHECK_INT(uvx_conn_new(e.ctx, "tcp://host:99999", NULL, &conn), UVX_EINVAL);
    CHECK_INT(uvx_conn_new(NULL, "localhost", NULL, &conn), UVX_EINVAL);
    CHECK_INT(uvx_conn_new(e.ctx, "localhost", NULL, &conn), 0);
    uvx_stanza_t *m = uvx_stanza_new("message");
    CHECK_INT(uvx_send(conn, m), UVX_ESTATE);
    CHECK_INT(uvx_send_iq(conn, m, NULL, NULL, NULL, 0), UVX_EINVAL); /* not an iq */
    CHECK_INT(uvx_disconnect(conn, NULL), UVX_ESTATE);
    CHECK_INT(uvx_connect(conn, "@bad", "x", NULL, NULL, NULL), UVX_EJID);
    CHECK_INT(uvx_bind(conn, "r"), UVX_ESTATE);
    CHECK_INT(uvx_ctx_free(e.ctx), UVX_ESTATE); /* a connection is open */
    uvx_stanza_unref(m);
    uvx_conn_close(conn, NULL);
    loopenv_done(&e);
}

/* ---- messaging ---- */

static void test_10000_messages(void)
{
    loopenv_t e;
    tclient_t a, b;
    loopenv_init(&e);
    CHECK(login(&e, &a, "alice@localhost", "alicepass"));
    CHECK(login(&e, &b, "bob@localhost/flood", "bobpass"));
    tcounter_t cnt = {0, 0};
    tcount_messages(&b, &cnt, "chat");
    tsend_numbered(&a, uvx_conn_jid(b.conn), "chat", 0, 10000);
    CHECK(run_until(&e.loop, &cnt.n, 10000, 60000));
    CHECK_INT(cnt.n, 10000);
    CHECK_INT(cnt.out_of_order, 0);
    tclient_disconnect_and_close(&e, &a);
    tclient_disconnect_and_close(&e, &b);
    loopenv_done(&e);
}

/* ---- send_iq ---- */

static void test_send_iq_ping(void)
{
    loopenv_t e;
    tclient_t a;
    loopenv_init(&e);
    CHECK(login(&e, &a, "alice@localhost", "alicepass"));
    tiq_result_t r = {0};
    CHECK(tping(&e, &a, "localhost", &r, 5000));
    CHECK_INT(r.ok, 1);
    CHECK_STR(r.type, "result");

    /* an error reply goes to errb: ping a user that does not exist */
    tiq_result_t r2 = {0};
    CHECK(tping(&e, &a, "nobody@localhost/x", &r2, 5000));
    CHECK_INT(r2.err, 1);
    CHECK_INT(r2.ok, 0);
    tclient_disconnect_and_close(&e, &a);
    loopenv_done(&e);
}

/* Counts the stanzas it is given into the int at ud, and takes them. */
static int hit(uvx_conn_t *conn, uvx_stanza_t *s, void *ud)
{
    (void)conn;
    (void)s;
    (*(int *)ud)++;
    return 1;
}

static void test_send_iq_timeout(void)
{
    loopenv_t e;
    tclient_t a, b;
    loopenv_init(&e);
    CHECK(login(&e, &a, "alice@localhost", "alicepass"));
    CHECK(login(&e, &b, "bob@localhost/mute", "bobpass"));
    int swallowed = 0;
    /* bob takes the iq and never answers */
    uvx_add_handler(b.conn, hit, &swallowed, UVX_NS_PING, "iq", "get", NULL, NULL, 0);
    tiq_result_t r = {0};
    uvx_stanza_t *ping = uvx_stanza_fmt("<iq type='get' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>",
                                        uvx_conn_jid(b.conn));
    uint64_t t0 = uv_hrtime();
    CHECK_INT(uvx_send_iq(a.conn, ping, tiq_ok, tiq_err, &r, 300), 0);
    CHECK(run_until(&e.loop, &r.done, 1, 5000));
    uint64_t ms = (uv_hrtime() - t0) / 1000000;
    CHECK_INT(r.timeout, 1);
    CHECK_INT(r.ok + r.err, 0);
    CHECK(ms >= 290);
    CHECK_INT(swallowed, 1);
    uvx_stanza_unref(ping);
    tclient_disconnect_and_close(&e, &a);
    tclient_disconnect_and_close(&e, &b);
    loopenv_done(&e);
}

static void test_unhandled_iq_gets_service_unavailable(void)
{
    loopenv_t e;
    tclient_t a, b;
    loopenv_init(&e);
    CHECK(login(&e, &a, "alice@localhost", "alicepass"));
    CHECK(login(&e, &b, "bob@localhost/nohandler", "bobpass"));
    tiq_result_t r = {0};
    uvx_stanza_t *q = uvx_stanza_fmt(
        "<iq type='get' to='%s'><query xmlns='jabber:iq:version'/></iq>", uvx_conn_jid(b.conn));
    CHECK_INT(uvx_send_iq(a.conn, q, tiq_ok, tiq_err, &r, 5000), 0);
    CHECK(run_until(&e.loop, &r.done, 1, 6000));
    CHECK_INT(r.err, 1);
    uvx_stanza_unref(q);
    tclient_disconnect_and_close(&e, &a);
    tclient_disconnect_and_close(&e, &b);
    loopenv_done(&e);
}

/* ---- handler matching ---- */

typedef struct hits {
    int ns, name, type_one, type_many, id, from_full, from_bare, all, removed_once, never;
} hits_t;

static int hit_once(uvx_conn_t *conn, uvx_stanza_t *s, void *ud)
{
    (void)conn;
    (void)s;
    (*(int *)ud)++;
    return 0; /* removed after the first */
}

static void test_handler_matching(void)
{
    loopenv_t e;
    tclient_t a, b;
    loopenv_init(&e);
    CHECK(login(&e, &a, "alice@localhost/match", "alicepass"));
    CHECK(login(&e, &b, "bob@localhost/match", "bobpass"));
    hits_t h = {0};
    uvx_conn_t *bc = b.conn;
    /* ns matches a descendant (the extension), not just the element */
    uvx_add_handler(bc, hit, &h.ns, "urn:x-test", NULL, NULL, NULL, NULL, 0);
    uvx_add_handler(bc, hit, &h.name, NULL, "message", NULL, NULL, NULL, 0);
    uvx_add_handler(bc, hit, &h.type_one, NULL, NULL, "headline", NULL, NULL, 0);
    uvx_add_handler(bc, hit, &h.type_many, NULL, NULL, "chat headline", NULL, NULL, 0);
    uvx_add_handler(bc, hit, &h.id, NULL, NULL, NULL, "m-2", NULL, 0);
    uvx_add_handler(bc, hit, &h.from_full, NULL, NULL, NULL, NULL, "alice@localhost/match", 0);
    uvx_add_handler(bc, hit, &h.from_bare, NULL, "message", NULL, NULL, "alice@localhost",
                    UVX_MATCH_BARE_FROM);
    uvx_add_handler(bc, hit, &h.all, "urn:x-test#frag", "message", "chat", "m-1", "alice@localhost",
                    UVX_MATCH_BARE_FROM | UVX_IGNORE_NS_FRAGMENT);
    uvx_add_handler(bc, hit_once, &h.removed_once, NULL, "message", NULL, NULL, NULL, 0);
    uvx_handler_t *gone = uvx_add_handler(bc, hit, &h.never, NULL, "message", NULL, NULL, NULL, 0);
    CHECK_INT(uvx_delete_handler(bc, gone), 0);

    const char *to = uvx_conn_jid(bc);
    uvx_stanza_t *m1 = uvx_stanza_fmt("<message to='%s' type='chat' id='m-1'><body>1</body>"
                                      "<x xmlns='urn:x-test'/></message>",
                                      to);
    uvx_stanza_t *m2 =
        uvx_stanza_fmt("<message to='%s' type='headline' id='m-2'><body>2</body></message>", to);
    /* type 'normal' is the default: ejabberd drops the attribute */
    uvx_stanza_t *m3 =
        uvx_stanza_fmt("<message to='%s' type='normal' id='m-3'><body>3</body></message>", to);
    uvx_send(a.conn, m1);
    uvx_send(a.conn, m2);
    uvx_send(a.conn, m3);
    CHECK(run_until(&e.loop, &h.name, 3, 20000));
    CHECK_INT(h.ns, 1);
    CHECK_INT(h.name, 3);
    CHECK_INT(h.type_one, 1);
    CHECK_INT(h.type_many, 2);
    CHECK_INT(h.id, 1);
    CHECK_INT(h.from_full, 3);
    CHECK_INT(h.from_bare, 3);
    CHECK_INT(h.all, 1);
    CHECK_INT(h.removed_once, 1);
    CHECK_INT(h.never, 0);
    uvx_stanza_unref(m1);
    uvx_stanza_unref(m2);
    uvx_stanza_unref(m3);
    tclient_disconnect_and_close(&e, &a);
    tclient_disconnect_and_close(&e, &b);
    loopenv_done(&e);
}

/* Handlers added during dispatch see only later stanzas. */
typedef struct adder {
    int first, added_calls;
    uvx_handler_t *added;
} adder_t;

static int added_handler(uvx_conn_t *conn, uvx_stanza_t *s, void *ud)
{
    (void)conn;
    (void)s;
    ((adder_t *)ud)->added_calls++;
    return 1;
}

static int adding_handler(uvx_conn_t *conn, uvx_stanza_t *s, void *ud)
{
    adder_t *a = ud;
    (void)s;
    if (a->first++ == 0)
        a->added = uvx_add_handler(conn, added_handler, a, NULL, "message", NULL, NULL, NULL, 0);
    return 1;
}

static void test_handler_added_during_dispatch(void)
{
    loopenv_t e;
    tclient_t a, b;
    loopenv_init(&e);
    CHECK(login(&e, &a, "alice@localhost", "alicepass"));
    CHECK(login(&e, &b, "bob@localhost/adder", "bobpass"));
    adder_t ad = {0};
    uvx_add_handler(b.conn, adding_handler, &ad, NULL, "message", NULL, NULL, NULL, 0);
    for (int i = 0; i < 2; i++) {
        uvx_stanza_t *m =
            uvx_stanza_fmt("<message to='%s'><body>x</body></message>", uvx_conn_jid(b.conn));
        uvx_send(a.conn, m);
        uvx_stanza_unref(m);
    }
    CHECK(run_until(&e.loop, &ad.first, 2, 5000));
    CHECK_INT(ad.added_calls, 1); /* only the second message */
    tclient_disconnect_and_close(&e, &a);
    tclient_disconnect_and_close(&e, &b);
    loopenv_done(&e);
}

/* ---- timed handlers ---- */

typedef struct ticks {
    int n;
    int stop_at;
} ticks_t;

static int tick(uvx_conn_t *conn, void *ud)
{
    ticks_t *t = ud;
    (void)conn;
    t->n++;
    return t->stop_at == 0 || t->n < t->stop_at;
}

static void test_timed_handlers(void)
{
    loopenv_t e;
    tclient_t a;
    loopenv_init(&e);
    CHECK_INT(tclient_init(&a, e.ctx, service, NULL), 0);
    ticks_t early = {0, 0}, stopper = {0, 3};
    /* added before login: starts only once authenticated */
    uvx_timed_handler_t *th = uvx_add_timed_handler(a.conn, 20, tick, &early);
    CHECK(th != NULL);
    run_for(&e.loop, 100);
    CHECK_INT(early.n, 0);
    CHECK_INT(tclient_connect(&a, "alice@localhost", "alicepass"), 0);
    CHECK(run_until(&e.loop, &a.connected, 1, 10000));
    uvx_add_timed_handler(a.conn, 10, tick, &stopper);
    uint64_t t0 = uv_hrtime();
    run_for(&e.loop, 300);
    double ms = (double)(uv_hrtime() - t0) / 1e6;
    /* a 20 ms period over ~300 ms: about 15 runs; allow for a noisy machine */
    CHECK(early.n >= 5 && early.n <= (int)(ms / 20) + 2);
    CHECK_INT(stopper.n, 3); /* returned 0 on the third run */
    CHECK_INT(uvx_delete_timed_handler(a.conn, th), 0);
    int before = early.n;
    run_for(&e.loop, 100);
    CHECK_INT(early.n, before);
    tclient_disconnect_and_close(&e, &a);
    loopenv_done(&e);
}

/* ---- send path: batching, pause/resume, hooks ---- */

typedef struct io_count {
    int raw_out_calls;
    size_t raw_out_bytes;
    int raw_in_calls;
    int xml_in, xml_out;
    int high, low;
} io_count_t;

static void raw_in(uvx_conn_t *c, const char *d, size_t n, void *ud)
{
    (void)c;
    (void)d;
    (void)n;
    ((io_count_t *)ud)->raw_in_calls++;
}

static void raw_out(uvx_conn_t *c, const char *d, size_t n, void *ud)
{
    (void)c;
    (void)d;
    ((io_count_t *)ud)->raw_out_calls++;
    ((io_count_t *)ud)->raw_out_bytes += n;
}

static void xml_in(uvx_conn_t *c, const uvx_stanza_t *s, void *ud)
{
    (void)c;
    (void)s;
    ((io_count_t *)ud)->xml_in++;
}

static void xml_out(uvx_conn_t *c, const uvx_stanza_t *s, void *ud)
{
    (void)c;
    (void)s;
    ((io_count_t *)ud)->xml_out++;
}

static void on_high_water(uvx_conn_t *c, int above, void *ud)
{
    (void)c;
    if (above)
        ((io_count_t *)ud)->high++;
    else
        ((io_count_t *)ud)->low++;
}

static void test_batching_pause_hooks(void)
{
    loopenv_t e;
    tclient_t a, b;
    loopenv_init(&e);
    CHECK(login(&e, &a, "alice@localhost", "alicepass"));
    CHECK(login(&e, &b, "bob@localhost/batch", "bobpass"));
    tcounter_t cnt = {0, 0};
    tcount_messages(&b, &cnt, NULL);
    io_count_t io = {0};
    uvx_set_raw_hooks(a.conn, raw_in, raw_out, &io);
    uvx_set_xml_hooks(a.conn, xml_in, xml_out, &io);
    uvx_set_high_water(a.conn, 2000, on_high_water, &io);

    /* 100 sends in one loop iteration leave in one write */
    tsend_numbered(&a, uvx_conn_jid(b.conn), NULL, 0, 100);
    CHECK_INT(io.xml_out, 100);
    CHECK_INT(io.raw_out_calls, 0); /* nothing written yet: end of iteration */
    CHECK(uvx_queued_bytes(a.conn) > 2000);
    CHECK_INT(io.high, 1);
    CHECK(run_until(&e.loop, &cnt.n, 100, 20000));
    CHECK_INT(io.raw_out_calls, 1);
    CHECK_INT(io.low, 1);
    CHECK_INT(cnt.out_of_order, 0);

    /* paused: nothing leaves until resume */
    uvx_pause(a.conn);
    tsend_numbered(&a, uvx_conn_jid(b.conn), NULL, 100, 1);
    run_for(&e.loop, 200);
    CHECK_INT(io.raw_out_calls, 1);
    CHECK_INT(cnt.n, 100);
    uvx_resume(a.conn);
    CHECK(run_until(&e.loop, &cnt.n, 101, 5000));
    CHECK_INT(io.raw_out_calls, 2);

    /* flush writes at once */
    tsend_numbered(&a, uvx_conn_jid(b.conn), NULL, 101, 1);
    CHECK_INT(uvx_flush(a.conn), 0);
    CHECK_INT(io.raw_out_calls, 3);
    CHECK_INT(uvx_queued_bytes(a.conn), 0);
    CHECK(run_until(&e.loop, &cnt.n, 102, 5000));

    /* raw input hook saw the server's bytes; xml input counts stanzas */
    tiq_result_t r = {0};
    CHECK(tping(&e, &a, NULL, &r, 5000));
    CHECK(io.raw_in_calls >= 1);
    CHECK(io.xml_in >= 1);

    /* raw sends */
    CHECK_INT(uvx_send_raw(a.conn, " ", 1), 0); /* a whitespace keepalive */
    tclient_disconnect_and_close(&e, &a);
    tclient_disconnect_and_close(&e, &b);
    loopenv_done(&e);
}

/* ---- explicit binding ---- */

static void test_explicit_bind(void)
{
    loopenv_t e;
    tclient_t a;
    loopenv_init(&e);
    uvx_conn_options_t o;
    clear_options(&o, NULL, NULL);
    o.explicit_resource_binding = 1;
    CHECK_INT(tclient_init(&a, e.ctx, service, &o), 0);
    CHECK_INT(tclient_connect(&a, "alice@localhost", "alicepass"), 0);
    int bindreq = 0;
    for (int i = 0; i < 200 && !tclient_saw(&a, UVX_STATUS_BINDREQUIRED) && !a.disconnected; i++)
        run_for(&e.loop, 50);
    bindreq = tclient_saw(&a, UVX_STATUS_BINDREQUIRED);
    CHECK(bindreq);
    CHECK(!a.connected);
    CHECK_INT(uvx_bind(a.conn, "chosen"), 0);
    CHECK(run_until(&e.loop, &a.connected, 1, 5000));
    CHECK_STR(uvx_conn_jid(a.conn), "alice@localhost/chosen");
    tclient_disconnect_and_close(&e, &a);
    loopenv_done(&e);
}

/* ---- plugins ---- */

typedef struct plugin_log {
    int inits, destroys, statuses, connected_seen;
} plugin_log_t;

static void *plug_init(uvx_conn_t *conn, void *ud)
{
    (void)conn;
    ((plugin_log_t *)ud)->inits++;
    return ud;
}

static void plug_status(uvx_conn_t *conn, int status, const char *cond, void *data)
{
    (void)conn;
    (void)cond;
    plugin_log_t *l = data;
    l->statuses++;
    if (status == UVX_STATUS_CONNECTED)
        l->connected_seen++;
}

static void plug_destroy(uvx_conn_t *conn, void *data)
{
    (void)conn;
    ((plugin_log_t *)data)->destroys++;
}

static void test_plugins(void)
{
    loopenv_t e;
    tclient_t a;
    loopenv_init(&e);
    plugin_log_t log = {0};
    uvx_plugin_t p = {"test-plugin", plug_init, plug_status, plug_destroy, &log};
    CHECK_INT(uvx_ctx_add_plugin(e.ctx, &p), 0);
    CHECK_INT(uvx_ctx_add_plugin(e.ctx, &p), UVX_EINVAL); /* name taken */
    CHECK(login(&e, &a, "alice@localhost", "alicepass"));
    CHECK_INT(log.inits, 1);
    CHECK(uvx_plugin_data(a.conn, "test-plugin") == &log);
    CHECK(uvx_plugin_data(a.conn, "other") == NULL);
    CHECK_INT(log.connected_seen, 1);
    CHECK_INT(log.statuses, a.nstatus);
    tclient_disconnect_and_close(&e, &a);
    CHECK_INT(log.destroys, 1);
    loopenv_done(&e);
}

/* ---- reuse ---- */

static void test_reset_and_reconnect(void)
{
    loopenv_t e;
    tclient_t a;
    loopenv_init(&e);
    CHECK(login(&e, &a, "alice@localhost", "alicepass"));
    CHECK_INT(uvx_disconnect(a.conn, "bye"), 0);
    CHECK(run_until(&e.loop, &a.disconnected, 1, 5000));
    CHECK_STR(tclient_condition(&a, UVX_STATUS_DISCONNECTED), "bye");
    CHECK_INT(uvx_reset(a.conn), 0);
    a.connected = a.disconnected = 0;
    CHECK_INT(tclient_connect(&a, "bob@localhost", "bobpass"), 0);
    CHECK(run_until(&e.loop, &a.connected, 1, 10000));
    CHECK(strncmp(uvx_conn_jid(a.conn), "bob@localhost/", 14) == 0);
    tclient_disconnect_and_close(&e, &a);
    loopenv_done(&e);
}

/* close from inside a status callback, in the middle of negotiation */
static void close_on_auth(uvx_conn_t *conn, int status, const char *cond, uvx_stanza_t *el,
                          void *ud)
{
    (void)cond;
    (void)el;
    if (status == UVX_STATUS_AUTHENTICATING) {
        uvx_conn_close(conn, NULL);
        *(int *)ud = 1;
    }
}

static void test_close_inside_callback(void)
{
    loopenv_t e;
    loopenv_init(&e);
    uvx_conn_t *conn;
    uvx_conn_options_t o;
    clear_options(&o, NULL, NULL);
    CHECK_INT(uvx_conn_new(e.ctx, service, &o, &conn), 0);
    int closed = 0;
    CHECK_INT(uvx_connect(conn, "alice@localhost", "alicepass", close_on_auth, &closed, NULL), 0);
    CHECK(run_until(&e.loop, &closed, 1, 10000));
    loopenv_done(&e);
}

int main(int argc, char **argv)
{
    const char *kind = argc > 1 ? argv[1] : "prosody";
    have_server = tserver_start(&srv, kind, NULL);
    if (!have_server) {
        tap_skip(kind, "server not available");
        return tap_done();
    }
    tservice(&srv, service, sizeof(service));
    tap_run("login PLAIN: statuses, bound JID, graceful disconnect", test_login_plain);
    tap_run("login with a chosen resource", test_login_with_resource);
    tap_run("login ANONYMOUS", test_login_anonymous);
    tap_run("mechanisms option restricts SASL", test_mech_option);
    tap_run("wrong password -> AUTHFAIL not-authorized", test_wrong_password);
    tap_run("a clear stream is refused unless allowed (tls-required)", test_plain_refused_in_clear);
    tap_run("connection refused -> CONNFAIL", test_connection_refused);
    tap_run("unresolvable host -> CONNFAIL host-unresolved", test_unresolvable_host);
    tap_run("API misuse gets errors", test_api_misuse);
    tap_run("10 000 messages, none lost, in order", test_10000_messages);
    tap_run("send_iq ping round trip and error reply", test_send_iq_ping);
    tap_run("send_iq timeout calls errb with NULL", test_send_iq_timeout);
    tap_run("unhandled iq get -> service-unavailable", test_unhandled_iq_gets_service_unavailable);
    tap_run("handler matching rules", test_handler_matching);
    tap_run("handler added during dispatch sees the next stanza",
            test_handler_added_during_dispatch);
    tap_run("timed handlers", test_timed_handlers);
    tap_run("batching, pause/resume, flush, hooks, high water", test_batching_pause_hooks);
    tap_run("explicit resource binding", test_explicit_bind);
    tap_run("plugins", test_plugins);
    tap_run("reset and reconnect", test_reset_and_reconnect);
    tap_run("close inside a status callback", test_close_inside_callback);
    test_server_stop(&srv);
    return tap_done();
}
