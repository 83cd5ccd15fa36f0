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

/* The server's certificate trusted for https://. */
static void bosh_options(uvx_conn_options_t *o, const char *mechs[2], const char *mech)
{
    tclient_options(o, mechs, mech);
    o->tls_cafile = cafile;
}

static int login_on(loopenv_t *e, tclient_t *c, const char *service, const char *jid,
                    const char *pass)
{
    uvx_conn_options_t o;
    bosh_options(&o, NULL, NULL);
    return tclient_login(e, c, service, &o, jid, pass);
}

/* ---- logins ---- */

/* The login cases, one per service and mechanism (tap_run takes no
 * arguments: test_login reads the current one). */
static const struct login_case {
    const char *name;
    const char *service;
    const char *mech;
    int secure;
} login_cases[] = {
    {"login SCRAM-SHA-1 over http", http_service, "SCRAM-SHA-1", 0},
    {"login PLAIN over http", http_service, "PLAIN", 0},
    {"login SCRAM-SHA-256 over https", https_service, "SCRAM-SHA-256", 1},
    {"login PLAIN over https", https_service, "PLAIN", 1},
};
static const struct login_case *current_login;

static void test_login(void)
{
    const struct login_case *lc = current_login;
    loopenv_t e;
    tclient_t c;
    uvx_conn_options_t o;
    const char *mechs[2];
    loopenv_init(&e);
    bosh_options(&o, mechs, lc->mech);
    CHECK(tclient_login(&e, &c, lc->service, &o, "alice@localhost", "alicepass"));
    CHECK_STR(uvx_sasl_mechanism(c.conn), lc->mech);
    CHECK_INT(uvx_conn_secure(c.conn), lc->secure);
    const char *jid = uvx_conn_jid(c.conn);
    CHECK(jid && strncmp(jid, "alice@localhost/", 16) == 0);
    const char *sid = NULL;
    CHECK_INT(uvx_bosh_session(c.conn, &sid, NULL), 0);
    CHECK(sid && *sid);
    tclient_disconnect_and_close(&e, &c);
    loopenv_done(&e);
}

static void test_wrong_password(void)
{
    loopenv_t e;
    tclient_t c;
    loopenv_init(&e);
    CHECK(!login_on(&e, &c, http_service, "alice@localhost", "wrong"));
    CHECK(c.disconnected);
    CHECK_STR(tclient_condition(&c, UVX_STATUS_AUTHFAIL), "not-authorized");
    tclient_close(&c, &e.loop);
    loopenv_done(&e);
}

/* ---- messaging ---- */

/* 10 000 messages from a BOSH client to another BOSH client. */
static void test_10000_messages(void)
{
    loopenv_t e;
    tclient_t a, b;
    loopenv_init(&e);
    CHECK(login_on(&e, &a, http_service, "alice@localhost", "alicepass"));
    CHECK(login_on(&e, &b, https_service, "bob@localhost/flood", "bobpass"));
    tcounter_t cnt = {0, 0};
    tcount_messages(&b, &cnt, "chat");
    /* a few bodies rather than one of 1 MB */
    for (int i = 0; i < 10000; i += 1000) {
        if (!tsend_numbered(&a, uvx_conn_jid(b.conn), "chat", i, 1000))
            break;
        uv_run(&e.loop, UV_RUN_NOWAIT);
    }
    CHECK(run_until(&e.loop, &cnt.n, 10000, 120000));
    CHECK_INT(cnt.n, 10000);
    CHECK_INT(cnt.out_of_order, 0);
    tclient_disconnect_and_close(&e, &a);
    tclient_disconnect_and_close(&e, &b);
    loopenv_done(&e);
}

static void test_send_iq(void)
{
    loopenv_t e;
    tclient_t a;
    loopenv_init(&e);
    CHECK(login_on(&e, &a, http_service, "alice@localhost", "alicepass"));
    tiq_result_t r = {0};
    CHECK(tping(&e, &a, "localhost", &r, 10000));
    CHECK_INT(r.ok, 1);
    tiq_result_t r2 = {0};
    CHECK(tping(&e, &a, "nobody@localhost/x", &r2, 10000));
    CHECK_INT(r2.err, 1);
    tclient_disconnect_and_close(&e, &a);
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
    CHECK(login_on(&e, &a, http_service, "alice@localhost", "alicepass"));
    CHECK(login_on(&e, &b, http_service, "bob@localhost/batch", "bobpass"));
    tcounter_t cnt = {0, 0};
    tcount_messages(&b, &cnt, "chat");
    bodies_with_messages = 0;
    uvx_bosh_set_body_hooks(a.conn, NULL, count_bodies_out, NULL);
    uvx_pause(a.conn);
    for (int i = 0; i < 50; i += 10) {
        tsend_numbered(&a, uvx_conn_jid(b.conn), "chat", i, 10);
        run_for(&e.loop, 10); /* iterations pass; nothing leaves while paused */
    }
    CHECK_INT(bodies_with_messages, 0);
    uvx_resume(a.conn);
    CHECK(run_until(&e.loop, &cnt.n, 50, 10000));
    CHECK_INT(cnt.out_of_order, 0);
    CHECK_INT(bodies_with_messages, 1);
    tclient_disconnect_and_close(&e, &a);
    tclient_disconnect_and_close(&e, &b);
    loopenv_done(&e);
}

/* ---- attach and restore ---- */

/* Sends the next number from bob to `to` and waits until `cnt` has it. */
static int bob_says(loopenv_t *e, tclient_t *bob, const char *to, tcounter_t *cnt)
{
    int want = cnt->n + 1;
    tsend_numbered(bob, to, "chat", cnt->n, 1);
    return run_until(&e->loop, &cnt->n, want, 10000);
}

static void test_attach_prebound(void)
{
    loopenv_t e;
    tclient_t pre, att, bob;
    loopenv_init(&e);
    /* a second client (the "prebinding backend") makes the session */
    CHECK(login_on(&e, &pre, http_service, "alice@localhost/prebound", "alicepass"));
    CHECK(login_on(&e, &bob, http_service, "bob@localhost", "bobpass"));
    const char *sid0 = NULL;
    uint64_t rid = 0;
    char sid[256], jid[256];
    CHECK_INT(uvx_bosh_session(pre.conn, &sid0, &rid), 0);
    snprintf(sid, sizeof(sid), "%s", sid0 ? sid0 : "");
    snprintf(jid, sizeof(jid), "%s", uvx_conn_jid(pre.conn));
    tclient_close(&pre, &e.loop); /* hands the session over: no terminate */
    uvx_conn_options_t o;
    bosh_options(&o, NULL, NULL);
    CHECK_INT(tclient_init(&att, e.ctx, http_service, &o), 0);
    CHECK_INT(uvx_attach(att.conn, jid, sid, rid, tclient_on_status, &att, 0, 0, 0), 0);
    CHECK(att.connected);
    tcounter_t cnt = {0, 0};
    tcount_messages(&att, &cnt, "chat");
    CHECK(bob_says(&e, &bob, jid, &cnt));
    /* and it can talk too */
    tiq_result_t r = {0};
    CHECK(tping(&e, &att, "localhost", &r, 10000));
    CHECK_INT(r.ok, 1);
    CHECK_INT(uvx_disconnect(att.conn, NULL), 0);
    CHECK(run_until(&e.loop, &att.disconnected, 1, 8000));
    tclient_close(&att, &e.loop);
    tclient_disconnect_and_close(&e, &bob);
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
    bosh_options(&o, NULL, NULL);
    o.bosh_keepalive = 1;
    o.bosh_session_file = path;
    CHECK(login_on(&e, &bob, http_service, "bob@localhost", "bobpass"));
    CHECK(tclient_login(&e, &first, http_service, &o, "alice@localhost/cached", "alicepass"));
    tcounter_t cnt = {0, 0};
    tcount_messages(&first, &cnt, "chat");
    CHECK(bob_says(&e, &bob, "alice@localhost/cached", &cnt));
    CHECK(access(path, F_OK) == 0);
    tclient_close(&first, &e.loop); /* "the process exits" */
    /* A message while no process has the session: both servers write it
     * into the dead process's held poll (a restore starting at the next
     * rid lost it every time). The restore asks for that poll's rid again,
     * and both answer a rid they answered already with the same response
     * (XEP-0124 §14; Prosody 0.12 and ejabberd 23.01 keep the last
     * `requests` responses), so the message is not lost. */
    tsend_numbered(&bob, "alice@localhost/cached", "chat", 1, 1);
    run_for(&e.loop, 300);
    /* a new connection (as a restarted process makes) resumes the session */
    CHECK_INT(tclient_init(&again, e.ctx, http_service, &o), 0);
    CHECK_INT(uvx_restore(again.conn, "alice@localhost", tclient_on_status, &again), 0);
    CHECK(again.connected);
    CHECK_STR(uvx_conn_jid(again.conn), "alice@localhost/cached");
    tcount_messages(&again, &cnt, "chat");
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
    CHECK_INT(uvx_restore(again.conn, NULL, tclient_on_status, &again), UVX_ENOTFOUND);
    tclient_close(&again, &e.loop);
    tclient_disconnect_and_close(&e, &bob);
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
    for (size_t i = 0; i < sizeof(login_cases) / sizeof(login_cases[0]); i++) {
        current_login = &login_cases[i];
        tap_run(current_login->name, test_login);
    }
    tap_run("wrong password: AUTHFAIL", test_wrong_password);
    tap_run("10 000 messages over BOSH, none lost, in order", test_10000_messages);
    tap_run("send_iq result and error", test_send_iq);
    tap_run("pause/resume: one request for 50 sends", test_pause_resume_batching);
    tap_run("attach to a session another client made", test_attach_prebound);
    tap_run("restore from the keepalive cache", test_restore_from_cache);
    test_server_stop(&srv);
    return tap_done();
}
