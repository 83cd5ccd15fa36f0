/*
 * SASL against a real server (argv[1]: "prosody" or "ejabberd", started by
 * the harness): every SCRAM variant the server offers, PLAIN and
 * ANONYMOUS, a wrong password per mechanism, the key cache, a user
 * mechanism (synchronous and asynchronous), and fallback after a failure.
 * Over TLS (direct TLS and STARTTLS): every SCRAM -PLUS variant with
 * tls-unique channel binding, the default choice, and plain SCRAM beside an
 * offered -PLUS.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "sasl.h"
#include "tap.h"
#include "uvxmpp.h"

static test_server_t srv;
static char service[64];
static char tls_service[64]; /* direct TLS (XEP-0368) */
static char cafile[512];
static const char *kind;

typedef struct lenv {
    uv_loop_t loop;
    uvx_ctx_t *ctx;
} lenv_t;

typedef struct login {
    uvx_conn_t *conn;
    int status[32];
    char cond[32][64];
    int n;
    int connected, ended, closed;
    char mech[32];         /* the mechanism in use when the login ended */
    char auths[256];       /* the mechanisms of every <auth/> sent, space-separated */
    char first_auth[1024]; /* the first <auth/>'s base64 payload */
} login_t;

static void env_init(lenv_t *e)
{
    uv_loop_init(&e->loop);
    e->ctx = uvx_ctx_new(&e->loop);
}

static void env_done(lenv_t *e)
{
    for (int i = 0; i < 10; i++)
        uv_run(&e->loop, UV_RUN_NOWAIT);
    CHECK_INT(uvx_ctx_free(e->ctx), 0);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    CHECK_INT(loop_finish(&e->loop), 0);
}

static void on_status(uvx_conn_t *conn, int status, const char *condition, uvx_stanza_t *elem,
                      void *ud)
{
    login_t *l = ud;
    (void)elem;
    if (l->n < 32) {
        l->status[l->n] = status;
        snprintf(l->cond[l->n], sizeof(l->cond[0]), "%s", condition ? condition : "");
        l->n++;
    }
    if (status == UVX_STATUS_CONNECTED || status == UVX_STATUS_AUTHFAIL ||
        status == UVX_STATUS_CONNFAIL) {
        const char *m = uvx_sasl_mechanism(conn);
        snprintf(l->mech, sizeof(l->mech), "%s", m ? m : "");
    }
    if (status == UVX_STATUS_CONNECTED)
        l->connected = 1;
    if (status == UVX_STATUS_CONNECTED || status == UVX_STATUS_DISCONNECTED)
        l->ended = 1;
}

static const char *cond_of(const login_t *l, int status)
{
    for (int i = l->n - 1; i >= 0; i--)
        if (l->status[i] == status)
            return l->cond[i];
    return NULL;
}

/* Output hook: notes each <auth/> (the hook sees the bytes before TLS). */
static void on_output(uvx_conn_t *conn, const char *data, size_t len, void *ud)
{
    login_t *l = ud;
    char text[2048];
    (void)conn;
    snprintf(text, sizeof(text), "%.*s", (int)len, data);
    for (const char *a = strstr(text, "<auth "); a; a = strstr(a + 1, "<auth ")) {
        const char *m = strstr(a, "mechanism='");
        const char *q = m ? strchr(m + 11, '\'') : NULL;
        if (q == NULL)
            continue;
        size_t used = strlen(l->auths);
        snprintf(l->auths + used, sizeof(l->auths) - used, "%s%.*s", used ? " " : "",
                 (int)(q - m - 11), m + 11);
        const char *gt = strchr(q, '>');
        const char *end = gt ? strstr(gt, "</auth>") : NULL;
        if (l->first_auth[0] == '\0' && end)
            snprintf(l->first_auth, sizeof(l->first_auth), "%.*s", (int)(end - gt - 1), gt + 1);
    }
}

static void on_closed(uvx_conn_t *conn)
{
    login_t *l = uvx_conn_get_data(conn);
    l->closed = 1;
}

/* How a login reaches the server. */
enum { VIA_CLEAR, VIA_DIRECT_TLS, VIA_STARTTLS };

/* Logs in with only `mech` allowed (NULL: any), waits for the outcome. */
static void login_via(lenv_t *e, login_t *l, int via, const char *mech, const char *jid,
                      const char *pass, const uvx_connect_args_t *args)
{
    const char *only[] = {mech, NULL};
    uvx_conn_options_t o;
    memset(l, 0, sizeof(*l));
    uvx_conn_options_init(&o);
    o.allow_plain = 1;
    o.tls_disabled = via == VIA_CLEAR;
    o.tls_cafile = via == VIA_CLEAR ? NULL : cafile;
    o.mechanisms = mech ? only : NULL;
    CHECK_INT(uvx_conn_new(e->ctx, via == VIA_DIRECT_TLS ? tls_service : service, &o, &l->conn), 0);
    if (l->conn == NULL)
        return;
    uvx_conn_set_data(l->conn, l);
    uvx_set_raw_hooks(l->conn, NULL, on_output, l);
    CHECK_INT(uvx_connect(l->conn, jid, pass, on_status, l, args), 0);
    CHECK(run_until(&e->loop, &l->ended, 1, 15000));
}

static void do_login(lenv_t *e, login_t *l, const char *mech, const char *jid, const char *pass,
                     const uvx_connect_args_t *args)
{
    login_via(e, l, VIA_CLEAR, mech, jid, pass, args);
}

static void close_login(lenv_t *e, login_t *l)
{
    if (l->conn == NULL)
        return;
    uvx_conn_close(l->conn, on_closed);
    CHECK(run_until(&e->loop, &l->closed, 1, 5000));
    l->conn = NULL;
}

static int offered(const char *mech)
{
    if (strcmp(kind, "prosody") == 0)
        return strcmp(mech, "SCRAM-SHA-512") != 0;
    return 1; /* ejabberd with auth_password_format: plain offers all three */
}

/* The -PLUS forms each server offers over TLS 1.2 (mbedtls 2.28 has no
 * TLS 1.3): Prosody 0.12 SHA-1 and SHA-256, ejabberd also SHA-512. */
static int plus_offered(const char *mech)
{
    return offered(mech);
}

static void login_with(const char *mech)
{
    lenv_t e;
    login_t l;
    env_init(&e);
    do_login(&e, &l, mech, "alice@localhost", "alicepass", NULL);
    CHECK(l.connected);
    CHECK_STR(l.mech, mech);
    if (strncmp(mech, "SCRAM", 5) == 0) {
        uvx_scram_keys_t k;
        CHECK_INT(uvx_conn_scram_keys(l.conn, &k), 0);
        CHECK_INT(k.iterations, strcmp(kind, "prosody") == 0 ? 10000 : 4096);
        CHECK_STR(k.hash, mech + 6);
        CHECK_INT(sasl_ctx_pbkdf2_count(e.ctx), 1);
    } else {
        CHECK_INT(uvx_conn_scram_keys(l.conn, &(uvx_scram_keys_t){0}), UVX_ENOTFOUND);
    }
    close_login(&e, &l);
    do_login(&e, &l, mech, "alice@localhost", "wrongpass", NULL);
    CHECK(!l.connected);
    CHECK_STR(cond_of(&l, UVX_STATUS_AUTHFAIL), "not-authorized");
    CHECK_STR(l.mech, mech);
    close_login(&e, &l);
    env_done(&e);
}

static void test_scram_sha1(void)
{
    login_with("SCRAM-SHA-1");
}

static void test_scram_sha256(void)
{
    login_with("SCRAM-SHA-256");
}

static void test_scram_sha512(void)
{
    login_with("SCRAM-SHA-512");
}

static void test_plain(void)
{
    login_with("PLAIN");
}

static void test_default_choice(void)
{
    lenv_t e;
    login_t l;
    env_init(&e);
    do_login(&e, &l, NULL, "bob@localhost", "bobpass", NULL);
    CHECK(l.connected);
    CHECK_STR(l.mech, offered("SCRAM-SHA-512") ? "SCRAM-SHA-512" : "SCRAM-SHA-256");
    close_login(&e, &l);
    env_done(&e);
}

static void test_anonymous(void)
{
    lenv_t e;
    login_t l;
    env_init(&e);
    do_login(&e, &l, "ANONYMOUS", "anon.localhost", NULL, NULL);
    CHECK(l.connected);
    CHECK_STR(l.mech, "ANONYMOUS");
    CHECK(strstr(uvx_conn_jid(l.conn), "@anon.localhost/") != NULL);
    close_login(&e, &l);
    env_done(&e);
}

/* Keys from a first login, then keys (+ password) and keys alone. Both
 * servers here store plaintext passwords and pick a fresh salt per login,
 * so the keys only help when the salt repeats; either way the outcome
 * must match what the salts say. */
static void cached_case(const char *mech)
{
    lenv_t e;
    login_t l;
    uvx_scram_keys_t k1, k2;
    env_init(&e);
    do_login(&e, &l, mech, "alice@localhost", "alicepass", NULL);
    CHECK(l.connected);
    CHECK_INT(uvx_conn_scram_keys(l.conn, &k1), 0);
    close_login(&e, &l);

    uvx_connect_args_t args;
    memset(&args, 0, sizeof(args));
    args.scram_keys = &k1;
    unsigned long before = sasl_ctx_pbkdf2_count(e.ctx);
    do_login(&e, &l, mech, "alice@localhost", "alicepass", &args);
    CHECK(l.connected);
    CHECK_INT(uvx_conn_scram_keys(l.conn, &k2), 0);
    int same_salt = k1.salt_len == k2.salt_len && memcmp(k1.salt, k2.salt, k1.salt_len) == 0;
    CHECK_INT(sasl_ctx_pbkdf2_count(e.ctx) - before, same_salt ? 0 : 1);
    printf("# %s %s: salt %s between logins\n", kind, mech, same_salt ? "kept" : "changed");
    close_login(&e, &l);

    args.scram_keys = &k2;
    before = sasl_ctx_pbkdf2_count(e.ctx);
    do_login(&e, &l, mech, "alice@localhost", NULL, &args);
    CHECK_INT(sasl_ctx_pbkdf2_count(e.ctx) - before, 0);
    uvx_scram_keys_t k3;
    if (l.connected) {
        /* the server salted as last time: the cached keys did it alone */
        CHECK_INT(uvx_conn_scram_keys(l.conn, &k3), 0);
        CHECK(memcmp(k3.client_key, k2.client_key, k2.key_len) == 0);
    } else {
        CHECK_STR(cond_of(&l, UVX_STATUS_AUTHFAIL), "scram-keys-stale");
    }
    CHECK(l.connected == same_salt || !same_salt);
    close_login(&e, &l);

    /* Keys for the right salt but a wrong key: the server refuses. */
    args.scram_keys = &k2;
    k2.client_key[0] ^= 1;
    do_login(&e, &l, mech, "alice@localhost", same_salt ? NULL : "alicepass", &args);
    CHECK(same_salt ? !l.connected : l.connected); /* a new salt ignores the bad keys */
    close_login(&e, &l);
    env_done(&e);
}

static void test_cached_keys(void)
{
    cached_case("SCRAM-SHA-1");
    cached_case("SCRAM-SHA-256");
}

/* ---- user mechanisms ---- */

typedef struct uplain {
    const char *password;
    int async;
    int started, failures;
    char failure[64];
    uv_timer_t timer;
    uvx_conn_t *conn;
} uplain_t;

static void uplain_payload(uvx_conn_t *conn, const char *password, char *out, size_t *len)
{
    const char *user = uvx_sasl_authcid(conn);
    size_t ul = strlen(user), pl = strlen(password);
    out[0] = '\0';
    memcpy(out + 1, user, ul);
    out[1 + ul] = '\0';
    memcpy(out + 2 + ul, password, pl);
    *len = 2 + ul + pl;
}

static void uplain_timer(uv_timer_t *t)
{
    uplain_t *u = t->data;
    char buf[256];
    size_t len;
    uplain_payload(u->conn, u->password, buf, &len);
    CHECK_INT(uvx_sasl_respond(u->conn, buf, len), 0);
}

static int uplain_start(uvx_conn_t *conn, void *ud)
{
    uplain_t *u = ud;
    char buf[256];
    size_t len;
    u->started++;
    if (u->async) {
        u->conn = conn;
        uv_timer_start(&u->timer, uplain_timer, 20, 0);
        return UVX_SASL_PENDING;
    }
    uplain_payload(conn, u->password, buf, &len);
    return uvx_sasl_respond(conn, buf, len);
}

static void uplain_failure(uvx_conn_t *conn, const char *condition, void *ud)
{
    uplain_t *u = ud;
    (void)conn;
    u->failures++;
    snprintf(u->failure, sizeof(u->failure), "%s", condition ? condition : "");
}

static void user_case(int async, const char *password, int expect_fallback)
{
    lenv_t e;
    login_t l;
    uplain_t u;
    env_init(&e);
    memset(&u, 0, sizeof(u));
    u.password = password;
    u.async = async;
    uv_timer_init(&e.loop, &u.timer);
    u.timer.data = &u;
    /* A user PLAIN above every built-in. */
    uvx_sasl_mechanism_t m = {"PLAIN", 100, NULL, uplain_start, NULL, NULL, uplain_failure, &u};
    CHECK_INT(uvx_ctx_register_sasl_mechanism(e.ctx, &m), 0);
    do_login(&e, &l, NULL, "alice@localhost", "alicepass", NULL);
    CHECK(l.connected);
    CHECK_INT(u.started, 1);
    if (expect_fallback) {
        CHECK_INT(u.failures, 1);
        CHECK_STR(u.failure, "not-authorized");
        CHECK_STR(l.mech, offered("SCRAM-SHA-512") ? "SCRAM-SHA-512" : "SCRAM-SHA-256");
    } else {
        CHECK_INT(u.failures, 0);
        CHECK_STR(l.mech, "PLAIN");
    }
    close_login(&e, &l);
    uv_close((uv_handle_t *)&u.timer, NULL);
    env_done(&e);
}

static void test_user_mechanism(void)
{
    user_case(0, "alicepass", 0);
}

static void test_user_mechanism_async(void)
{
    user_case(1, "alicepass", 0);
}

static void test_fallback_after_forced_failure(void)
{
    user_case(0, "not-the-password", 1);
}

/* Every mechanism refused: the last failure's condition. */
static void test_all_wrong(void)
{
    lenv_t e;
    login_t l;
    env_init(&e);
    do_login(&e, &l, NULL, "alice@localhost", "wrong", NULL);
    CHECK(!l.connected);
    CHECK_STR(cond_of(&l, UVX_STATUS_AUTHFAIL), "not-authorized");
    CHECK_STR(l.mech, "PLAIN"); /* the last one tried */
    close_login(&e, &l);
    env_done(&e);
}

/* ---- channel binding (-PLUS) over TLS ---- */

/* Logs in over TLS with only `mech` allowed: the binding must be accepted,
 * and a wrong password refused by that very mechanism. */
static void plus_login_with(int via, const char *mech)
{
    lenv_t e;
    login_t l;
    char plus[64];
    snprintf(plus, sizeof(plus), "%s-PLUS", mech);
    env_init(&e);
    login_via(&e, &l, via, plus, "alice@localhost", "alicepass", NULL);
    CHECK(l.connected);
    CHECK_STR(l.mech, plus);
    CHECK_STR(l.auths, plus);
    /* base64("p=tls-unique,,n=alice,r="): GS2 header with the binding type */
    CHECK(strncmp(l.first_auth, "cD10bHMtdW5pcXVlLCxuPWFsaWNlLHI9", 32) == 0);
    uvx_scram_keys_t k;
    CHECK_INT(uvx_conn_scram_keys(l.conn, &k), 0);
    CHECK_STR(k.hash, mech + 6); /* the -PLUS form derives the same keys */
    close_login(&e, &l);
    login_via(&e, &l, via, plus, "alice@localhost", "wrongpass", NULL);
    CHECK(!l.connected);
    CHECK_STR(cond_of(&l, UVX_STATUS_AUTHFAIL), "not-authorized");
    CHECK_STR(l.mech, plus);
    close_login(&e, &l);
    env_done(&e);
}

static void test_plus_sha1(void)
{
    plus_login_with(VIA_DIRECT_TLS, "SCRAM-SHA-1");
}

static void test_plus_sha256(void)
{
    plus_login_with(VIA_DIRECT_TLS, "SCRAM-SHA-256");
}

static void test_plus_sha512(void)
{
    plus_login_with(VIA_DIRECT_TLS, "SCRAM-SHA-512");
}

static void test_plus_starttls(void)
{
    plus_login_with(VIA_STARTTLS, "SCRAM-SHA-256");
}

/* With no `mechanisms` option a TLS login binds: the strongest -PLUS. */
static void test_plus_default_choice(void)
{
    lenv_t e;
    login_t l;
    env_init(&e);
    login_via(&e, &l, VIA_DIRECT_TLS, NULL, "bob@localhost", "bobpass", NULL);
    CHECK(l.connected);
    CHECK_STR(l.mech, plus_offered("SCRAM-SHA-512") ? "SCRAM-SHA-512-PLUS" : "SCRAM-SHA-256-PLUS");
    CHECK_STR(uvx_sasl_mechanism(l.conn), l.mech);
    close_login(&e, &l);
    env_done(&e);
}

/* Plain SCRAM chosen by the caller while the server offers -PLUS and we
 * could bind: GS2 "n" keeps the login working ("y" would be refused). */
static void test_plain_scram_beside_plus(void)
{
    lenv_t e;
    login_t l;
    env_init(&e);
    login_via(&e, &l, VIA_DIRECT_TLS, "SCRAM-SHA-256", "alice@localhost", "alicepass", NULL);
    CHECK(l.connected);
    CHECK_STR(l.mech, "SCRAM-SHA-256");
    CHECK(strncmp(l.first_auth, "biwsbj1hbGljZSxy", 16) == 0); /* base64("n,,n=alice,r") */
    close_login(&e, &l);
    env_done(&e);
}

/* Every mechanism refused over TLS: one -PLUS (Prosody 0.12 never answers
 * a second -PLUS on the same stream), then the plain ones, and the last
 * failure is reported. */
static void test_plus_all_wrong(void)
{
    lenv_t e;
    login_t l;
    env_init(&e);
    login_via(&e, &l, VIA_DIRECT_TLS, NULL, "alice@localhost", "wrong", NULL);
    CHECK(!l.connected);
    CHECK_STR(cond_of(&l, UVX_STATUS_AUTHFAIL), "not-authorized");
    CHECK_STR(l.mech, "PLAIN");
    CHECK_STR(l.auths, plus_offered("SCRAM-SHA-512")
                           ? "SCRAM-SHA-512-PLUS SCRAM-SHA-512 SCRAM-SHA-256 SCRAM-SHA-1 PLAIN"
                           : "SCRAM-SHA-256-PLUS SCRAM-SHA-256 SCRAM-SHA-1 PLAIN");
    close_login(&e, &l);
    env_done(&e);
}

int main(int argc, char **argv)
{
    kind = argc > 1 ? argv[1] : "prosody";
    if (!tserver_start(&srv, kind, NULL)) {
        tap_skip(kind, "server not available");
        return tap_done();
    }
    tservice(&srv, service, sizeof(service));
    tap_run("SCRAM-SHA-1 login; wrong password", test_scram_sha1);
    tap_run("SCRAM-SHA-256 login; wrong password", test_scram_sha256);
    if (offered("SCRAM-SHA-512"))
        tap_run("SCRAM-SHA-512 login; wrong password", test_scram_sha512);
    else
        tap_skip("SCRAM-SHA-512 login; wrong password", "not offered by this server");
    tap_run("PLAIN login; wrong password", test_plain);
    tap_run("ANONYMOUS login", test_anonymous);
    tap_run("default choice is the strongest offered", test_default_choice);
    tap_run("cached SCRAM keys", test_cached_keys);
    tap_run("user-registered mechanism", test_user_mechanism);
    tap_run("user-registered mechanism, asynchronous answer", test_user_mechanism_async);
    tap_run("fallback after a forced failure", test_fallback_after_forced_failure);
    tap_run("wrong password on every mechanism", test_all_wrong);
    test_server_cert_path(&srv, cafile, sizeof(cafile));
    snprintf(tls_service, sizeof(tls_service), "xmpps://127.0.0.1:%d", srv.tls_port);
    tap_run("direct TLS: SCRAM-SHA-1-PLUS login; wrong password", test_plus_sha1);
    tap_run("direct TLS: SCRAM-SHA-256-PLUS login; wrong password", test_plus_sha256);
    if (plus_offered("SCRAM-SHA-512"))
        tap_run("direct TLS: SCRAM-SHA-512-PLUS login; wrong password", test_plus_sha512);
    else
        tap_skip("direct TLS: SCRAM-SHA-512-PLUS login; wrong password",
                 "not offered by this server");
    tap_run("STARTTLS: SCRAM-SHA-256-PLUS login; wrong password", test_plus_starttls);
    tap_run("direct TLS: default choice is the strongest -PLUS", test_plus_default_choice);
    tap_run("direct TLS: plain SCRAM beside an offered -PLUS", test_plain_scram_beside_plus);
    tap_run("direct TLS: wrong password on every mechanism", test_plus_all_wrong);
    test_server_stop(&srv);
    return tap_done();
}
