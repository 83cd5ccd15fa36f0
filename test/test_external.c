/*
 * SASL EXTERNAL with a TLS client certificate (XEP-0178) against a real
 * ejabberd. The test makes a CA and client certificates carrying the JID
 * as an id-on-xmppAddr otherName (1.3.6.1.5.5.7.8.5) with openssl, and
 * starts ejabberd with UVX_EJABBERD_CLIENT_CA (test/servers/ejabberd.sh),
 * which turns on tls_verify and cafile for its c2s listeners and makes it
 * offer EXTERNAL. Prosody 0.12 offers EXTERNAL on c2s only with community
 * modules (its own mod_saslauth uses it for outgoing s2s), so only ejabberd
 * runs this.
 *
 * ejabberd 23.01's rules (xmpp_stream_pkix:authenticate/2): the chain must
 * verify against the CA; an empty authzid takes the only xmppAddr of the
 * certificate; an authzid must be one of the certificate's xmppAddrs (or
 * anything at all when the certificate has none: test_no_xmppaddr). The
 * failures are <not-authorized/> with a text saying why, which the cases
 * below check so that "no certificate reached the server" cannot pass for
 * "the server compared the JIDs".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "tap.h"
#include "uvxmpp.h"

static test_server_t srv;
static char server_ca[512]; /* the server's self-signed certificate */
static char tls_service[64];
static char starttls_service[64];

/* ---- certificates ---- */

static char certdir[64];

/* DIR/NAME.EXT into buf */
static const char *cert_file(char *buf, size_t len, const char *name, const char *ext)
{
    snprintf(buf, len, "%s/%s.%s", certdir, name, ext);
    return buf;
}

/* A client certificate NAME with the xmppAddrs in `jids` (comma-separated,
 * NULL for none), issued by the CA named `issuer`. */
static int make_client_cert(const char *name, const char *jids, const char *issuer)
{
    char addext[512] = "", crt[160], key[160], ca_crt[160], ca_key[160], cmd[2048];
    if (jids) {
        char list[256], *save = NULL;
        const char *sep = "";
        snprintf(list, sizeof(list), "%s", jids);
        snprintf(addext, sizeof(addext), "-addext 'subjectAltName=");
        for (char *j = strtok_r(list, ",", &save); j; j = strtok_r(NULL, ",", &save), sep = ",") {
            size_t used = strlen(addext);
            snprintf(addext + used, sizeof(addext) - used, "%sotherName:1.3.6.1.5.5.7.8.5;UTF8:%s",
                     sep, j);
        }
        size_t used = strlen(addext);
        snprintf(addext + used, sizeof(addext) - used, "'");
    }
    cert_file(crt, sizeof(crt), name, "crt");
    cert_file(key, sizeof(key), name, "key");
    cert_file(ca_crt, sizeof(ca_crt), issuer, "crt");
    cert_file(ca_key, sizeof(ca_key), issuer, "key");
    snprintf(cmd, sizeof(cmd),
             "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-subj /CN=%s %s -keyout %s 2>/dev/null | "
             "openssl x509 -req -copy_extensions copyall -CA %s -CAkey %s -days 2 "
             "-out %s >/dev/null 2>&1",
             name, addext, key, ca_crt, ca_key, crt);
    return system(cmd) == 0;
}

/* A self-signed CA certificate NAME. */
static int make_ca(const char *name)
{
    char crt[160], key[160], cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-days 2 -subj '/CN=uvxmpp test %s' -keyout %s -out %s >/dev/null 2>&1",
             name, cert_file(key, sizeof(key), name, "key"),
             cert_file(crt, sizeof(crt), name, "crt"));
    return system(cmd) == 0;
}

static const char *const cert_names[] = {"ca", "otherca", "alice", "bob", "both", "nojid", "rogue"};

/* "ca" is the one the server trusts; "rogue" has alice's JID but comes
 * from "otherca", which the server does not know. */
static int make_certs(void)
{
    snprintf(certdir, sizeof(certdir), "/tmp/uvx-external-XXXXXX");
    if (mkdtemp(certdir) == NULL) {
        certdir[0] = '\0';
        return 0;
    }
    return make_ca("ca") && make_ca("otherca") &&
           make_client_cert("alice", "alice@localhost", "ca") &&
           make_client_cert("bob", "bob@localhost", "ca") &&
           make_client_cert("both", "alice@localhost,bob@localhost", "ca") &&
           make_client_cert("nojid", NULL, "ca") &&
           make_client_cert("rogue", "alice@localhost", "otherca");
}

static void remove_certs(void)
{
    char path[160];
    if (certdir[0] == '\0')
        return;
    for (size_t i = 0; i < sizeof(cert_names) / sizeof(cert_names[0]); i++) {
        unlink(cert_file(path, sizeof(path), cert_names[i], "crt"));
        unlink(cert_file(path, sizeof(path), cert_names[i], "key"));
    }
    rmdir(certdir);
}

/* ---- one login ---- */

typedef struct login {
    uv_loop_t loop;
    uvx_ctx_t *ctx;
    uvx_conn_t *conn;
    int connected, ended, closed;
    int authfail, connfail;
    char condition[64];    /* of AUTHFAIL or CONNFAIL */
    char server_text[128]; /* the <text/> of the server's SASL <failure/> */
    char mech[32];         /* the mechanism in use when the login ended */
    char jid[128];         /* the bound JID */
    char auth_payload[256];
    int auth_seen;
} login_t;

static void on_status(uvx_conn_t *conn, int status, const char *condition, uvx_stanza_t *elem,
                      void *ud)
{
    login_t *l = ud;
    if (status == UVX_STATUS_CONNECTED || status == UVX_STATUS_AUTHFAIL) {
        const char *m = uvx_sasl_mechanism(conn);
        snprintf(l->mech, sizeof(l->mech), "%s", m ? m : "");
    }
    if (status == UVX_STATUS_AUTHFAIL || status == UVX_STATUS_CONNFAIL) {
        l->authfail |= status == UVX_STATUS_AUTHFAIL;
        l->connfail |= status == UVX_STATUS_CONNFAIL;
        snprintf(l->condition, sizeof(l->condition), "%s", condition ? condition : "");
        const char *text = elem ? uvx_stanza_child_text(elem, "text") : NULL;
        snprintf(l->server_text, sizeof(l->server_text), "%s", text ? text : "");
    }
    if (status == UVX_STATUS_CONNECTED) {
        l->connected = 1;
        snprintf(l->jid, sizeof(l->jid), "%s", uvx_conn_jid(conn));
    }
    if (status == UVX_STATUS_CONNECTED || status == UVX_STATUS_DISCONNECTED)
        l->ended = 1;
}

/* Keeps the payload of the first <auth/> (the hook sees the bytes before TLS). */
static void on_output(uvx_conn_t *conn, const char *data, size_t len, void *ud)
{
    login_t *l = ud;
    char text[2048];
    (void)conn;
    snprintf(text, sizeof(text), "%.*s", (int)len, data);
    const char *a = strstr(text, "<auth ");
    const char *gt = a ? strchr(a, '>') : NULL;
    const char *end = gt ? strstr(gt, "</auth>") : NULL;
    if (end && !l->auth_seen) {
        l->auth_seen = 1;
        snprintf(l->auth_payload, sizeof(l->auth_payload), "%.*s", (int)(end - gt - 1), gt + 1);
    }
}

static void on_closed(uvx_conn_t *conn)
{
    login_t *l = uvx_conn_get_data(conn);
    l->closed = 1;
}

typedef struct attempt {
    const char *service; /* tls_service (default) or starttls_service */
    const char *cert;    /* client certificate name, NULL for none */
    const char *jid;     /* default "alice@localhost" */
    const char *pass;    /* NULL: EXTERNAL needs none */
    const char *authcid; /* the bare JID here leaves the authzid out ("=") */
    int any_mechanism;   /* 0: mechanisms = {"EXTERNAL"} */
} attempt_t;

/* Logs in as `a` says and waits for CONNECTED or DISCONNECTED. */
static void login_run(login_t *l, const attempt_t *a)
{
    static const char *const external_only[] = {"EXTERNAL", NULL};
    uvx_conn_options_t o;
    uvx_connect_args_t args;
    char crt[160], key[160];

    memset(l, 0, sizeof(*l));
    uv_loop_init(&l->loop);
    l->ctx = uvx_ctx_new(&l->loop);
    uvx_conn_options_init(&o); /* no allow_plain: everything here runs inside TLS */
    o.tls_cafile = server_ca;
    o.mechanisms = a->any_mechanism ? NULL : external_only;
    o.tls_cert_file = a->cert ? cert_file(crt, sizeof(crt), a->cert, "crt") : NULL;
    o.tls_key_file = a->cert ? cert_file(key, sizeof(key), a->cert, "key") : NULL;
    memset(&args, 0, sizeof(args));
    args.authcid = a->authcid;

    CHECK_INT(uvx_conn_new(l->ctx, a->service ? a->service : tls_service, &o, &l->conn), 0);
    if (l->conn == NULL)
        return;
    uvx_conn_set_data(l->conn, l);
    uvx_set_raw_hooks(l->conn, NULL, on_output, l);
    CHECK_INT(
        uvx_connect(l->conn, a->jid ? a->jid : "alice@localhost", a->pass, on_status, l, &args), 0);
    CHECK(run_until(&l->loop, &l->ended, 1, 20000));
}

static void login_done(login_t *l)
{
    if (l->conn) {
        uvx_conn_close(l->conn, on_closed);
        CHECK(run_until(&l->loop, &l->closed, 1, 5000));
    }
    for (int i = 0; i < 10; i++)
        uv_run(&l->loop, UV_RUN_NOWAIT);
    CHECK_INT(uvx_ctx_free(l->ctx), 0);
    CHECK_INT(loop_finish(&l->loop), 0);
}

/* The login succeeds with EXTERNAL and binds a resource of `bare`. */
static void expect_connected(const attempt_t *a, const char *bare)
{
    login_t l;
    login_run(&l, a);
    CHECK(l.connected);
    CHECK_STR(l.mech, "EXTERNAL");
    size_t n = strlen(bare);
    if (strncmp(l.jid, bare, n) != 0 || l.jid[n] != '/' || l.jid[n + 1] == '\0')
        tap_fail(__FILE__, __LINE__, "bound JID \"%s\", expected %s/...", l.jid, bare);
    if (l.connected) {
        CHECK(uvx_conn_authenticated(l.conn));
        CHECK(uvx_conn_secure(l.conn));
    }
    login_done(&l);
}

/* The server refuses EXTERNAL: AUTHFAIL not-authorized with a text
 * containing `why`, and no CONNECTED. */
static void expect_refused(const attempt_t *a, const char *why)
{
    login_t l;
    login_run(&l, a);
    CHECK(!l.connected);
    CHECK(l.authfail);
    CHECK_STR(l.condition, "not-authorized");
    CHECK_STR(l.mech, "EXTERNAL");
    printf("# %s said: %s\n", srv.kind, l.server_text);
    if (strstr(l.server_text, why) == NULL)
        tap_fail(__FILE__, __LINE__, "server said \"%s\", expected \"%s\"", l.server_text, why);
    login_done(&l);
}

/* ---- cases ---- */

static void test_direct_tls(void)
{
    expect_connected(&(attempt_t){.cert = "alice"}, "alice@localhost");
}

static void test_starttls(void)
{
    expect_connected(&(attempt_t){.service = starttls_service, .cert = "alice"}, "alice@localhost");
}

/* The library sends the bare JID as authzid unless the authcid is that JID. */
static void test_authzid_sent_or_not(void)
{
    login_t l;
    login_run(&l, &(attempt_t){.cert = "alice"});
    CHECK(l.connected);
    CHECK_STR(l.auth_payload, "YWxpY2VAbG9jYWxob3N0"); /* base64("alice@localhost") */
    login_done(&l);

    login_run(&l, &(attempt_t){.cert = "alice", .authcid = "alice@localhost"});
    CHECK(l.connected); /* the server takes the JID from the certificate */
    CHECK_STR(l.auth_payload, "=");
    CHECK(strncmp(l.jid, "alice@localhost/", 16) == 0);
    login_done(&l);
}

/* Without a mechanisms list and without a password EXTERNAL is what is left. */
static void test_default_choice(void)
{
    expect_connected(&(attempt_t){.cert = "alice", .any_mechanism = 1}, "alice@localhost");
}

static void test_other_jid(void)
{
    expect_refused(&(attempt_t){.cert = "bob"}, "Certificate JID mismatch");
    /* and bob's certificate is good for bob */
    expect_connected(&(attempt_t){.cert = "bob", .jid = "bob@localhost"}, "bob@localhost");
}

static void test_no_certificate(void)
{
    expect_refused(&(attempt_t){.cert = NULL}, "Failed to get peer certificate");
}

/* The right xmppAddr, issued by a CA the server does not know: the server
 * reports OpenSSL's verify error. */
static void test_unknown_issuer(void)
{
    expect_refused(&(attempt_t){.cert = "rogue"}, "unable to verify the first certificate");
}

/* A certificate for two JIDs: the authzid picks one; without one the
 * server cannot choose. */
static void test_authzid_selects(void)
{
    expect_connected(&(attempt_t){.cert = "both"}, "alice@localhost");
    expect_connected(&(attempt_t){.cert = "both", .jid = "bob@localhost"}, "bob@localhost");
    expect_refused(&(attempt_t){.cert = "both", .authcid = "alice@localhost"},
                   "Certificate JID mismatch");
}

/* The opt-in asks every client for a certificate but does not demand one:
 * password logins on the same listeners still work. */
static void test_password_still_works(void)
{
    const char *services[] = {tls_service, starttls_service};
    for (int i = 0; i < 2; i++) {
        login_t l;
        login_run(&l,
                  &(attempt_t){.service = services[i], .pass = "alicepass", .any_mechanism = 1});
        CHECK(l.connected);
        CHECK(strcmp(l.mech, "EXTERNAL") != 0);
        login_done(&l);
    }
}

/* ejabberd 23.01 lets a CA-signed certificate without any xmppAddr log in
 * as whichever user the authzid names (get_username/3 with no JIDs). This
 * pins what the server does so that a change shows up here; the library
 * only reports it. */
static void test_no_xmppaddr(void)
{
    login_t l;
    login_run(&l, &(attempt_t){.cert = "nojid", .jid = "bob@localhost"});
    printf("# ejabberd: a certificate without xmppAddr, authzid bob@localhost: %s\n",
           l.connected ? "accepted" : "refused");
    CHECK(l.connected);
    CHECK(strncmp(l.jid, "bob@localhost/", 14) == 0);
    login_done(&l);
    /* without an authzid there is nothing to go by */
    expect_refused(&(attempt_t){.cert = "nojid", .authcid = "alice@localhost"},
                   "Certificate JID mismatch");
}

int main(int argc, char **argv)
{
    const char *kind = argc > 1 ? argv[1] : "ejabberd";
    if (strcmp(kind, "ejabberd") != 0) {
        tap_skip(kind, "no SASL EXTERNAL for c2s without community modules");
        return tap_done();
    }
    if (!make_certs()) {
        tap_fail(__FILE__, __LINE__, "openssl could not make the certificates");
        remove_certs();
        return tap_done();
    }
    char ca[160];
    setenv("UVX_EJABBERD_CLIENT_CA", cert_file(ca, sizeof(ca), "ca", "crt"), 1);
    int started = tserver_start(&srv, kind, NULL);
    unsetenv("UVX_EJABBERD_CLIENT_CA");
    if (!started) {
        tap_skip(kind, "server not available");
        remove_certs();
        return tap_done();
    }
    test_server_cert_path(&srv, server_ca, sizeof(server_ca));
    snprintf(tls_service, sizeof(tls_service), "xmpps://127.0.0.1:%d", srv.tls_port);
    snprintf(starttls_service, sizeof(starttls_service), "tcp://127.0.0.1:%d", srv.c2s_port);

    tap_run("direct TLS: alice's certificate -> CONNECTED as alice", test_direct_tls);
    tap_run("STARTTLS: alice's certificate -> CONNECTED as alice", test_starttls);
    tap_run("authzid: the bare JID, or '=' when the authcid is that JID", test_authzid_sent_or_not);
    tap_run("no mechanisms list, no password: EXTERNAL is chosen", test_default_choice);
    tap_run("bob's certificate, logging in as alice -> AUTHFAIL not-authorized", test_other_jid);
    tap_run("no certificate -> AUTHFAIL not-authorized", test_no_certificate);
    tap_run("certificate from an unknown issuer -> AUTHFAIL not-authorized", test_unknown_issuer);
    tap_run("certificate for two JIDs: the authzid picks one", test_authzid_selects);
    tap_run("password logins still work on the same listeners", test_password_still_works);
    tap_run("certificate without xmppAddr: ejabberd 23.01 trusts the authzid", test_no_xmppaddr);
    test_server_stop(&srv);
    remove_certs();
    return tap_done();
}
