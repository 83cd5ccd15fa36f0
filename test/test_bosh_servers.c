/*
 * BOSH against a real Prosody or ejabberd started for this program
 * (/http-bind on its http and https ports): logins with SCRAM and PLAIN,
 * 10 000 messages, send_iq, pause/resume batching, graceful terminate,
 * attach to a session a second client made, restore from the cache.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "server.h"
#include "tap.h"
#include "uvxmpp.h"

static test_server_t srv;
static char http_service[96], https_service[96], cafile[512];

static void bosh_options(uvx_conn_options_t *o, const char *mech)
{
    static const char *mechs[2];
    uvx_conn_options_init(o);
    o->allow_plain = 1;
    o->tls_cafile = cafile;
    if (mech) {
        mechs[0] = mech;
        mechs[1] = NULL;
        o->mechanisms = mechs;
    }
}

static int login_on(loopenv_t *e, tclient_t *c, const char *service, const char *jid,
                    const char *pass, const uvx_conn_options_t *opts)
{
    uvx_conn_options_t o;
    if (opts == NULL) {
        bosh_options(&o, NULL);
        opts = &o;
    }
    if (tclient_init(c, e->ctx, service, opts) != 0)
        return 0;
    if (tclient_connect(c, jid, pass) != 0)
        return 0;
    return run_until(&e->loop, &c->connected, 1, 15000);
}

static void disconnect_and_close(loopenv_t *e, tclient_t *c)
{
    if (c->conn && c->connected && !c->disconnected) {
        CHECK_INT(uvx_disconnect(c->conn, NULL), 0);
        CHECK(run_until(&e->loop, &c->disconnected, 1, 8000));
        CHECK(!tclient_saw(c, UVX_STATUS_CONNTIMEOUT)); /* the terminate was answered */
    }
    tclient_close(c, &e->loop);
}

/* ---- logins ---- */

static void login_case(const char *service, const char *mech, int secure)
{
    loopenv_t e;
    tclient_t c;
    uvx_conn_options_t o;
    loopenv_init(&e);
    bosh_options(&o, mech);
    CHECK(login_on(&e, &c, service, "alice@localhost", "alicepass", &o));
    CHECK_STR(uvx_sasl_mechanism(c.conn), mech);
    CHECK_INT(uvx_conn_secure(c.conn), secure);
    const char *jid = uvx_conn_jid(c.conn);
    CHECK(jid && strncmp(jid, "alice@localhost/", 16) == 0);
    const char *sid = NULL;
    CHECK_INT(uvx_bosh_session(c.conn, &sid, NULL), 0);
    CHECK(sid && *sid);
    disconnect_and_close(&e, &c);
    loopenv_done(&e);
}

static void test_login_scram_http(void)
{
    login_case(http_service, "SCRAM-SHA-1", 0);
}

static void test_login_plain_http(void)
{
    login_case(http_service, "PLAIN", 0);
}

static void test_login_scram_https(void)
{
    login_case(https_service, "SCRAM-SHA-256", 1);
}

static void test_login_plain_https(void)
{
    login_case(https_service, "PLAIN", 1);
}

static void test_wrong_password(void)
{
    loopenv_t e;
    tclient_t c;
    uvx_conn_options_t o;
    loopenv_init(&e);
    bosh_options(&o, NULL);
    CHECK_INT(tclient_init(&c, e.ctx, http_service, &o), 0);
    CHECK_INT(tclient_connect(&c, "alice@localhost", "wrong"), 0);
    CHECK(run_until(&e.loop, &c.disconnected, 1, 15000));
    CHECK_STR(tclient_condition(&c, UVX_STATUS_AUTHFAIL), "not-authorized");
    tclient_close(&c, &e.loop);
    loopenv_done(&e);
}

/* ---- messaging ---- */

typedef struct counter {
    int n;
    int out_of_order;
} counter_t;

static int count_message(uvx_conn_t *conn, uvx_stanza_t *msg, void *ud)
{
    counter_t *c = ud;
    (void)conn;
    const char *body = uvx_stanza_child_text(msg, "body");
    if (body && atoi(body) != c->n)
        c->out_of_order++;
    c->n++;
    return 1;
}

/* 10 000 messages from a BOSH client to another BOSH client. */
static void test_10000_messages(void)
{
    loopenv_t e;
    tclient_t a, b;
    loopenv_init(&e);
    CHECK(login_on(&e, &a, http_service, "alice@localhost", "alicepass", NULL));
    CHECK(login_on(&e, &b, https_service, "bob@localhost/flood", "bobpass", NULL));
    counter_t cnt = {0, 0};
    uvx_add_handler(b.conn, count_message, &cnt, NULL, "message", "chat", NULL, NULL, 0);
    char num[16];
    for (int i = 0; i < 10000; i++) {
        snprintf(num, sizeof(num), "%d", i);
        uvx_stanza_t *m = uvx_stanza_fmt("<message to='%s' type='chat'><body>%s</body></message>",
                                         uvx_conn_jid(b.conn), num);
        int rc = uvx_send(a.conn, m);
        uvx_stanza_unref(m);
        if (rc != 0) {
            CHECK(!"send failed");
            break;
        }
        if (i % 1000 == 999)
            uv_run(&e.loop, UV_RUN_NOWAIT); /* a few bodies rather than one of 1 MB */
    }
    CHECK(run_until(&e.loop, &cnt.n, 10000, 120000));
    CHECK_INT(cnt.n, 10000);
    CHECK_INT(cnt.out_of_order, 0);
    disconnect_and_close(&e, &a);
    disconnect_and_close(&e, &b);
    loopenv_done(&e);
}

typedef struct iq_result {
    int done, ok, err;
} iq_result_t;

static int iq_ok(uvx_conn_t *conn, uvx_stanza_t *s, void *ud)
{
    (void)conn;
    (void)s;
    ((iq_result_t *)ud)->ok++;
    ((iq_result_t *)ud)->done = 1;
    return 0;
}

static int iq_err(uvx_conn_t *conn, uvx_stanza_t *s, void *ud)
{
    (void)conn;
    (void)s;
    ((iq_result_t *)ud)->err++;
    ((iq_result_t *)ud)->done = 1;
    return 0;
}

static void test_send_iq(void)
{
    loopenv_t e;
    tclient_t a;
    loopenv_init(&e);
    CHECK(login_on(&e, &a, http_service, "alice@localhost", "alicepass", NULL));
    iq_result_t r = {0, 0, 0};
    uvx_stanza_t *ping =
        uvx_stanza_fmt("<iq type='get' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
    CHECK_INT(uvx_send_iq(a.conn, ping, iq_ok, iq_err, &r, 10000), 0);
    CHECK(run_until(&e.loop, &r.done, 1, 11000));
    CHECK_INT(r.ok, 1);
    uvx_stanza_unref(ping);
    iq_result_t r2 = {0, 0, 0};
    ping =
        uvx_stanza_fmt("<iq type='get' to='nobody@localhost/x'><ping xmlns='urn:xmpp:ping'/></iq>");
    CHECK_INT(uvx_send_iq(a.conn, ping, iq_ok, iq_err, &r2, 10000), 0);
    CHECK(run_until(&e.loop, &r2.done, 1, 11000));
    CHECK_INT(r2.err, 1);
    uvx_stanza_unref(ping);
    disconnect_and_close(&e, &a);
    loopenv_done(&e);
}

/* ---- batching ---- */

static int bodies_with_messages;

static void count_bodies_out(uvx_conn_t *conn, const uvx_stanza_t *body, void *ud)
{
    (void)conn;
    (void)ud;
    if (uvx_stanza_child((uvx_stanza_t *)body, "message"))
        bodies_with_messages++;
}

static void test_pause_resume_batching(void)
{
    loopenv_t e;
    tclient_t a, b;
    loopenv_init(&e);
    CHECK(login_on(&e, &a, http_service, "alice@localhost", "alicepass", NULL));
    CHECK(login_on(&e, &b, http_service, "bob@localhost/batch", "bobpass", NULL));
    counter_t cnt = {0, 0};
    uvx_add_handler(b.conn, count_message, &cnt, NULL, "message", "chat", NULL, NULL, 0);
    bodies_with_messages = 0;
    uvx_bosh_set_body_hooks(a.conn, NULL, count_bodies_out, NULL);
    uvx_pause(a.conn);
    char num[16];
    for (int i = 0; i < 50; i++) {
        snprintf(num, sizeof(num), "%d", i);
        uvx_stanza_t *m = uvx_stanza_fmt("<message to='%s' type='chat'><body>%s</body></message>",
                                         uvx_conn_jid(b.conn), num);
        CHECK_INT(uvx_send(a.conn, m), 0);
        uvx_stanza_unref(m);
        if (i % 10 == 0)
            run_for(&e.loop, 10); /* iterations pass; nothing leaves while paused */
    }
    CHECK_INT(bodies_with_messages, 0);
    uvx_resume(a.conn);
    CHECK(run_until(&e.loop, &cnt.n, 50, 10000));
    CHECK_INT(cnt.out_of_order, 0);
    CHECK_INT(bodies_with_messages, 1);
    disconnect_and_close(&e, &a);
    disconnect_and_close(&e, &b);
    loopenv_done(&e);
}

/* ---- attach and restore ---- */

static void attach_status(uvx_conn_t *conn, int status, const char *cond, uvx_stanza_t *el,
                          void *ud)
{
    tclient_t *c = ud;
    (void)conn;
    (void)el;
    if (c->nstatus < TCLIENT_MAX_STATUS) {
        c->status[c->nstatus] = status;
        snprintf(c->condition[c->nstatus], sizeof(c->condition[0]), "%s", cond ? cond : "");
        c->nstatus++;
    }
    if (status == UVX_STATUS_ATTACHED)
        c->connected = 1;
    if (status == UVX_STATUS_DISCONNECTED)
        c->disconnected = 1;
}

/* Sends `text` from bob to `to` and waits until `cnt` has one more. */
static int bob_says(loopenv_t *e, tclient_t *bob, const char *to, counter_t *cnt)
{
    int want = cnt->n + 1;
    uvx_stanza_t *m =
        uvx_stanza_fmt("<message to='%s' type='chat'><body>%d</body></message>", to, cnt->n);
    uvx_send(bob->conn, m);
    uvx_stanza_unref(m);
    return run_until(&e->loop, &cnt->n, want, 10000);
}

static void test_attach_prebound(void)
{
    loopenv_t e;
    tclient_t pre, att, bob;
    loopenv_init(&e);
    /* a second client (the "prebinding backend") makes the session */
    CHECK(login_on(&e, &pre, http_service, "alice@localhost/prebound", "alicepass", NULL));
    CHECK(login_on(&e, &bob, http_service, "bob@localhost", "bobpass", NULL));
    const char *sid0 = NULL;
    uint64_t rid = 0;
    char sid[256], jid[256];
    CHECK_INT(uvx_bosh_session(pre.conn, &sid0, &rid), 0);
    snprintf(sid, sizeof(sid), "%s", sid0 ? sid0 : "");
    snprintf(jid, sizeof(jid), "%s", uvx_conn_jid(pre.conn));
    tclient_close(&pre, &e.loop); /* hands the session over: no terminate */
    uvx_conn_options_t o;
    bosh_options(&o, NULL);
    CHECK_INT(tclient_init(&att, e.ctx, http_service, &o), 0);
    CHECK_INT(uvx_attach(att.conn, jid, sid, rid, attach_status, &att, 0, 0, 0), 0);
    CHECK(att.connected);
    counter_t cnt = {0, 0};
    uvx_add_handler(att.conn, count_message, &cnt, NULL, "message", "chat", NULL, NULL, 0);
    CHECK(bob_says(&e, &bob, jid, &cnt));
    /* and it can talk too */
    iq_result_t r = {0, 0, 0};
    uvx_stanza_t *ping =
        uvx_stanza_fmt("<iq type='get' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
    CHECK_INT(uvx_send_iq(att.conn, ping, iq_ok, iq_err, &r, 10000), 0);
    CHECK(run_until(&e.loop, &r.done, 1, 11000));
    CHECK_INT(r.ok, 1);
    uvx_stanza_unref(ping);
    CHECK_INT(uvx_disconnect(att.conn, NULL), 0);
    CHECK(run_until(&e.loop, &att.disconnected, 1, 8000));
    tclient_close(&att, &e.loop);
    disconnect_and_close(&e, &bob);
    loopenv_done(&e);
}

static void test_restore_from_cache(void)
{
    char path[] = "/tmp/uvx-bosh-cache-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    unlink(path);
    loopenv_t e;
    tclient_t first, again, bob;
    loopenv_init(&e);
    uvx_conn_options_t o;
    bosh_options(&o, NULL);
    o.bosh_keepalive = 1;
    o.bosh_session_file = path;
    CHECK(login_on(&e, &bob, http_service, "bob@localhost", "bobpass", NULL));
    CHECK(login_on(&e, &first, http_service, "alice@localhost/cached", "alicepass", &o));
    counter_t cnt = {0, 0};
    uvx_add_handler(first.conn, count_message, &cnt, NULL, "message", "chat", NULL, NULL, 0);
    CHECK(bob_says(&e, &bob, "alice@localhost/cached", &cnt));
    CHECK(access(path, F_OK) == 0);
    tclient_close(&first, &e.loop); /* "the process exits" */
    /* A message while no process has the session: both servers write it
     * into the dead process's held poll (a restore starting at the next
     * rid lost it every time). The restore asks for that poll's rid again,
     * and both answer a rid they answered already with the same response
     * (XEP-0124 §14; Prosody 0.12 and ejabberd 23.01 keep the last
     * `requests` responses), so the message is not lost. */
    uvx_stanza_t *m =
        uvx_stanza_fmt("<message to='alice@localhost/cached' type='chat'><body>1</body></message>");
    uvx_send(bob.conn, m);
    uvx_stanza_unref(m);
    run_for(&e.loop, 300);
    /* a new connection (as a restarted process makes) resumes the session */
    CHECK_INT(tclient_init(&again, e.ctx, http_service, &o), 0);
    CHECK_INT(uvx_restore(again.conn, "alice@localhost", attach_status, &again), 0);
    CHECK(again.connected);
    CHECK_STR(uvx_conn_jid(again.conn), "alice@localhost/cached");
    uvx_add_handler(again.conn, count_message, &cnt, NULL, "message", "chat", NULL, NULL, 0);
    CHECK(run_until(&e.loop, &cnt.n, 2, 10000));
    /* and at once after the restore: whether bob's message or the resent
     * rid reaches the server first, it comes (no try lost) */
    CHECK(bob_says(&e, &bob, "alice@localhost/cached", &cnt));
    run_for(&e.loop, 200);
    CHECK_INT(cnt.n, 3); /* none twice */
    CHECK_INT(cnt.out_of_order, 0);
    CHECK_INT(uvx_disconnect(again.conn, NULL), 0);
    CHECK(run_until(&e.loop, &again.disconnected, 1, 8000));
    CHECK(access(path, F_OK) != 0); /* the ended session is no longer cached */
    tclient_close(&again, &e.loop);
    /* nothing left to restore */
    CHECK_INT(tclient_init(&again, e.ctx, http_service, &o), 0);
    CHECK_INT(uvx_restore(again.conn, NULL, attach_status, &again), UVX_ENOTFOUND);
    tclient_close(&again, &e.loop);
    disconnect_and_close(&e, &bob);
    loopenv_done(&e);
    unlink(path);
}

int main(int argc, char **argv)
{
    const char *kind = argc > 1 ? argv[1] : "prosody";
    if (!tserver_start(&srv, kind, NULL)) {
        tap_skip(kind, "server not available");
        return tap_done();
    }
    snprintf(http_service, sizeof(http_service), "http://127.0.0.1:%d/http-bind", srv.http_port);
    /* the certificate names localhost */
    snprintf(https_service, sizeof(https_service), "https://localhost:%d/http-bind",
             srv.https_port);
    test_server_cert_path(&srv, cafile, sizeof(cafile));
    tap_run("login SCRAM-SHA-1 over http", test_login_scram_http);
    tap_run("login PLAIN over http", test_login_plain_http);
    tap_run("login SCRAM-SHA-256 over https", test_login_scram_https);
    tap_run("login PLAIN over https", test_login_plain_https);
    tap_run("wrong password: AUTHFAIL", test_wrong_password);
    tap_run("10 000 messages over BOSH, none lost, in order", test_10000_messages);
    tap_run("send_iq result and error", test_send_iq);
    tap_run("pause/resume: one request for 50 sends", test_pause_resume_batching);
    tap_run("attach to a session another client made", test_attach_prebound);
    tap_run("restore from the keepalive cache", test_restore_from_cache);
    test_server_stop(&srv);
    return tap_done();
}
