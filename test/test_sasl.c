/*
 * SASL without a real server: the RFC 5802 / RFC 7677 vectors replayed on
 * the wire through the scripted server (test/fakeserver.c) with a fixed
 * client nonce, every malformed server-first / server-final message, the
 * parsers on their own, selection by priority and the `mechanisms` option,
 * fallback after <failure/>, the payloads of PLAIN / OAUTHBEARER / X-OAUTH2 /
 * EXTERNAL / ANONYMOUS, user mechanisms (synchronous and asynchronous), the
 * key cache, and PBKDF2 on the thread pool (no loop stall, cancel-safe).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/base64.h>

#include "client.h"
#include "fakeserver.h"
#include "sasl.h"
#include "tap.h"
#include "uvxmpp.h"

#define NS_SASL_Q "xmlns='urn:ietf:params:xml:ns:xmpp-sasl'"

/* ---- helpers ---- */

static char *b64(const void *data, size_t len)
{
    size_t need = 0;
    mbedtls_base64_encode(NULL, 0, &need, data, len);
    char *out = malloc(need + 1);
    size_t olen = 0;
    mbedtls_base64_encode((unsigned char *)out, need + 1, &olen, data, len);
    out[olen] = '\0';
    return out;
}

/* "<name xmlns=SASL[ mechanism='m']>b64(data)</name>" (malloc'd). */
static char *sasl_elem(const char *name, const char *mech, const void *data, size_t len)
{
    char *enc = len ? b64(data, len) : strdup("=");
    char *out = malloc(strlen(enc) + 256);
    if (mech)
        sprintf(out, "<%s " NS_SASL_Q " mechanism='%s'>%s</%s>", name, mech, enc, name);
    else
        sprintf(out, "<%s " NS_SASL_Q ">%s</%s>", name, enc, name);
    free(enc);
    return out;
}

static char *sasl_elem_str(const char *name, const char *mech, const char *data)
{
    return sasl_elem(name, mech, data, strlen(data));
}

static char *features(const char *mechs_csv)
{
    char *out = malloc(strlen(mechs_csv) * 3 + 512);
    strcpy(out, FAKE_STREAM_HEADER "<stream:features><mechanisms " NS_SASL_Q ">");
    char *copy = strdup(mechs_csv);
    for (char *tok = strtok(copy, ","); tok; tok = strtok(NULL, ","))
        sprintf(out + strlen(out), "<mechanism>%s</mechanism>", tok);
    strcat(out, "</mechanisms></stream:features>");
    free(copy);
    return out;
}

#define FAILURE_NA "<failure " NS_SASL_Q "><not-authorized/></failure>"
/* A step that waits for `expect` and answers `reply`. */
#define STEP(expect, reply)                                                                        \
    {                                                                                              \
        expect, reply, 0                                                                           \
    }
/* The stream header with the features offering `mechs_csv` (env e owns it). */
#define STEP_OFFER(e, mechs_csv) STEP("<stream:stream", own(e, features(mechs_csv)))
#define STEP_RESTART STEP("<stream:stream", FAKE_STREAM_HEADER FAKE_FEATURES_BIND)
#define STEP_BIND STEP("<bind", FAKE_BIND_RESULT)
#define STEP_END STEP(NULL, NULL)
/* After <success/>: the stream restart and resource binding, to CONNECTED. */
#define STEPS_TO_CONNECTED STEP_RESTART, STEP_BIND, STEP_END

/* Strings the steps point at; freed by senv_done. */
#define MAX_OWNED 32

typedef struct senv {
    uv_loop_t loop;
    uvx_ctx_t *ctx;
    fake_server_t *fs;
    uvx_conn_t *conn;
    int status[64];
    char cond[64][64];
    int n;
    int connected, disconnected, closed;
    char *owned[MAX_OWNED];
    int nowned;
    fake_step_t steps[10]; /* a script built by scram_env or capture_auth */
} senv_t;

static char *own(senv_t *e, char *s)
{
    if (e->nowned < MAX_OWNED)
        e->owned[e->nowned++] = s;
    return s;
}

static void on_status(uvx_conn_t *conn, int status, const char *condition, uvx_stanza_t *elem,
                      void *ud)
{
    senv_t *e = ud;
    (void)conn;
    (void)elem;
    if (e->n < 64) {
        e->status[e->n] = status;
        snprintf(e->cond[e->n], sizeof(e->cond[0]), "%s", condition ? condition : "");
        e->n++;
    }
    if (status == UVX_STATUS_CONNECTED)
        e->connected = 1;
    if (status == UVX_STATUS_DISCONNECTED)
        e->disconnected = 1;
}

static int saw(const senv_t *e, int status)
{
    for (int i = 0; i < e->n; i++)
        if (e->status[i] == status)
            return 1;
    return 0;
}

static const char *cond_of(const senv_t *e, int status)
{
    for (int i = e->n - 1; i >= 0; i--)
        if (e->status[i] == status)
            return e->cond[i];
    return NULL;
}

static void senv_init(senv_t *e)
{
    memset(e, 0, sizeof(*e));
    uv_loop_init(&e->loop);
    e->ctx = uvx_ctx_new(&e->loop);
}

/* Starts a scripted server on e's loop and a connection to it (allow_plain
 * unless opts), not yet connecting. 0 when either could not start. */
static int start_server_and_conn(senv_t *e, const fake_step_t *steps,
                                 const uvx_conn_options_t *opts, fake_server_t **fs,
                                 uvx_conn_t **conn)
{
    int port = 0;
    char service[64];
    uvx_conn_options_t o;
    *fs = fake_server_start(&e->loop, steps, &port);
    CHECK(*fs != NULL);
    if (*fs == NULL)
        return 0;
    snprintf(service, sizeof(service), "tcp://127.0.0.1:%d", port);
    if (opts == NULL) {
        uvx_conn_options_init(&o);
        o.allow_plain = 1;
        opts = &o;
    }
    CHECK_INT(uvx_conn_new(e->ctx, service, opts, conn), 0);
    return *conn != NULL;
}

/* Starts the scripted server and the connection (allow_plain unless opts). */
static int senv_connect(senv_t *e, const fake_step_t *steps, const uvx_conn_options_t *opts,
                        const char *jid, const char *pass, const uvx_connect_args_t *args)
{
    if (!start_server_and_conn(e, steps, opts, &e->fs, &e->conn))
        return 0;
    CHECK_INT(uvx_connect(e->conn, jid, pass, on_status, e, args), 0);
    return 1;
}

static void on_closed(uvx_conn_t *conn)
{
    int *closed = uvx_conn_get_data(conn);
    *closed = 1;
}

/* Closes *conn, if any, and waits until its close callback sets *closed. */
static void close_conn(uv_loop_t *loop, uvx_conn_t **conn, int *closed)
{
    if (*conn == NULL)
        return;
    uvx_conn_set_data(*conn, closed);
    uvx_conn_close(*conn, on_closed);
    CHECK(run_until(loop, closed, 1, 5000));
    *conn = NULL;
}

static void senv_close_conn(senv_t *e)
{
    close_conn(&e->loop, &e->conn, &e->closed);
}

static void senv_done(senv_t *e)
{
    senv_close_conn(e);
    fake_server_stop(e->fs);
    for (int i = 0; i < 10; i++)
        uv_run(&e->loop, UV_RUN_NOWAIT);
    CHECK_INT(uvx_ctx_free(e->ctx), 0);
    /* A detached PBKDF2 may still run on the pool: its after-work callback
     * is the last thing the loop waits for. */
    uv_run(&e->loop, UV_RUN_DEFAULT);
    CHECK_INT(loop_finish(&e->loop), 0);
    for (int i = 0; i < e->nowned; i++)
        free(e->owned[i]);
}

/* Runs until CONNECTED or DISCONNECTED. */
static void senv_wait_end(senv_t *e, unsigned ms)
{
    uint64_t deadline = uv_hrtime() + (uint64_t)ms * 1000000;
    while (!e->connected && !e->disconnected && uv_hrtime() < deadline)
        run_for(&e->loop, 5);
}

/* senv_connect, then runs the login to its end (5 s at most). 0 when it
 * could not start. */
static int senv_login(senv_t *e, const fake_step_t *steps, const uvx_conn_options_t *opts,
                      const char *jid, const char *pass, const uvx_connect_args_t *args)
{
    if (!senv_connect(e, steps, opts, jid, pass, args))
        return 0;
    senv_wait_end(e, 5000);
    return 1;
}

/* Logs in with `steps` and expects AUTHFAIL with `condition`, never
 * CONNECTED. 0 when the login could not start. */
static int senv_authfail(senv_t *e, const fake_step_t *steps, const char *jid, const char *pass,
                         const char *condition)
{
    if (!senv_login(e, steps, NULL, jid, pass, NULL))
        return 0;
    CHECK(!e->connected);
    CHECK_STR(cond_of(e, UVX_STATUS_AUTHFAIL), condition);
    return 1;
}

/* The base64 payload of the first <auth/> the client sent, decoded. */
static char *sent_auth_payload(senv_t *e, size_t *len)
{
    const char *rx = fake_server_received(e->fs);
    const char *a = strstr(rx, "<auth ");
    const char *gt = a ? strchr(a, '>') : NULL;
    const char *end = gt ? strstr(gt, "</auth>") : NULL;
    *len = 0;
    if (gt == NULL || gt[-1] == '/' || end == NULL)
        return NULL;
    unsigned char *out = malloc((size_t)(end - gt) + 1);
    size_t olen = 0;
    if ((size_t)(end - gt - 1) == 1 && gt[1] == '=') {
        out[0] = '\0';
        return (char *)out;
    }
    if (mbedtls_base64_decode(out, (size_t)(end - gt), &olen, (const unsigned char *)gt + 1,
                              (size_t)(end - gt - 1)) != 0) {
        free(out);
        return NULL;
    }
    out[olen] = '\0';
    *len = olen;
    return (char *)out;
}

/* Logs in to a server that offers `offered` and hangs up on the client's
 * first <auth/>; *payload is what that carried (see sent_auth_payload). 0
 * when the login could not start. */
static int capture_auth(senv_t *e, const char *offered, const char *jid, const char *pass,
                        const uvx_connect_args_t *args, char **payload, size_t *len)
{
    e->steps[0] = (fake_step_t)STEP_OFFER(e, offered);
    e->steps[1] = (fake_step_t){"<auth", NULL, 1};
    e->steps[2] = (fake_step_t)STEP_END;
    if (!senv_login(e, e->steps, NULL, jid, pass, args))
        return 0;
    *payload = sent_auth_payload(e, len);
    return 1;
}

/* ---- RFC vectors on the wire ---- */

typedef struct vector {
    const char *mech, *cnonce, *client_first, *server_first, *client_final, *server_final;
} vector_t;

static const vector_t rfc5802 = {
    "SCRAM-SHA-1",
    "fyko+d2lbbFgONRv9qkxdawL",
    "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
    "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
    "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
    "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
};

static const vector_t rfc7677 = {
    "SCRAM-SHA-256",
    "rOprNGfwEbeRWgbNEkqO",
    "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
};

/* Fills steps[] for a SCRAM login replaying `v`; server_first / server_final
 * override the vector's (for the malformed cases; NULL: the vector's). With
 * stop_after_first the script ends after the challenge. */
static void scram_script(senv_t *e, fake_step_t *steps, const vector_t *v, const char *offered,
                         const char *server_first, const char *server_final_elem,
                         int stop_after_first)
{
    int i = 0;
    steps[i++] = (fake_step_t)STEP_OFFER(e, offered);
    steps[i++] = (fake_step_t){
        own(e, sasl_elem_str("auth", v->mech, v->client_first)),
        own(e, sasl_elem_str("challenge", NULL, server_first ? server_first : v->server_first)), 0};
    if (!stop_after_first) {
        steps[i++] = (fake_step_t){own(e, sasl_elem_str("response", NULL, v->client_final)),
                                   server_final_elem
                                       ? server_final_elem
                                       : own(e, sasl_elem_str("success", NULL, v->server_final)),
                                   0};
        steps[i++] = (fake_step_t)STEP_RESTART;
        steps[i++] = (fake_step_t)STEP_BIND;
    }
    steps[i] = (fake_step_t)STEP_END;
}

/* A fresh env with v's client nonce and, in e->steps, the script of
 * scram_script. */
static void scram_env(senv_t *e, const vector_t *v, const char *offered, const char *server_first,
                      const char *server_final_elem, int stop_after_first)
{
    senv_init(e);
    CHECK_INT(sasl_ctx_set_test_nonce(e->ctx, v->cnonce), 0);
    scram_script(e, e->steps, v, offered, server_first, server_final_elem, stop_after_first);
}

static void vector_login(const vector_t *v)
{
    senv_t e;
    scram_env(&e, v, v->mech, NULL, NULL, 0);
    unsigned long before = sasl_ctx_pbkdf2_count(e.ctx);
    if (!senv_login(&e, e.steps, NULL, "user@localhost", "pencil", NULL))
        return;
    CHECK(e.connected);
    CHECK_INT(fake_server_steps_done(e.fs), 5);
    CHECK_INT(sasl_ctx_pbkdf2_count(e.ctx) - before, 1);
    CHECK_STR(uvx_sasl_mechanism(e.conn), v->mech);

    /* The key cache: a second login with the keys and no password replays
     * the same vector without PBKDF2. */
    uvx_scram_keys_t keys;
    CHECK_INT(uvx_conn_scram_keys(e.conn, &keys), 0);
    CHECK_INT(keys.iterations, 4096);
    CHECK_STR(keys.hash, strcmp(v->mech, "SCRAM-SHA-1") == 0 ? "SHA-1" : "SHA-256");
    unsigned char ck[64], sk[64];
    size_t klen = 0;
    CHECK_INT(scram_derive_keys(keys.hash, "pencil", keys.salt, keys.salt_len, 4096, ck, sk, &klen),
              0);
    CHECK_INT(keys.key_len, klen);
    CHECK(memcmp(keys.client_key, ck, klen) == 0 && memcmp(keys.server_key, sk, klen) == 0);
    senv_close_conn(&e);
    fake_server_stop(e.fs);

    e.connected = e.disconnected = e.closed = 0;
    e.n = 0;
    uvx_connect_args_t args;
    memset(&args, 0, sizeof(args));
    args.scram_keys = &keys;
    before = sasl_ctx_pbkdf2_count(e.ctx);
    if (!senv_login(&e, e.steps, NULL, "user@localhost", NULL, &args))
        return;
    CHECK(e.connected);
    CHECK_INT(sasl_ctx_pbkdf2_count(e.ctx) - before, 0);
    senv_done(&e);
}

static void test_rfc5802_vector(void)
{
    vector_login(&rfc5802);
}

static void test_rfc7677_vector(void)
{
    vector_login(&rfc7677);
}

/* ---- malformed server messages ---- */

static void malformed_first(const char *server_first, const char *condition)
{
    senv_t e;
    scram_env(&e, &rfc5802, "SCRAM-SHA-1,PLAIN", server_first, NULL, 1);
    if (!senv_authfail(&e, e.steps, "user@localhost", "pencil", condition))
        return;
    run_for(&e.loop, 20);
    CHECK(strstr(fake_server_received(e.fs), "<abort " NS_SASL_Q "/>") != NULL);
    /* no fallback to PLAIN after a server that talks nonsense */
    CHECK(strstr(fake_server_received(e.fs), "mechanism='PLAIN'") == NULL);
    senv_done(&e);
}

#define NONCE_OK "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j"

static void test_malformed_server_first(void)
{
    static const struct {
        const char *msg, *cond;
    } cases[] = {
        {"", "bad-challenge"},
        {"garbage", "bad-challenge"},
        {NONCE_OK, "bad-challenge"},                             /* no salt */
        {NONCE_OK ",s=QSXCR+Q6sek8bf92", "bad-challenge"},       /* no iterations */
        {NONCE_OK ",i=4096", "bad-challenge"},                   /* no salt */
        {"s=QSXCR+Q6sek8bf92,i=4096", "bad-challenge"},          /* no nonce */
        {NONCE_OK ",s=,i=4096", "bad-challenge"},                /* empty salt */
        {NONCE_OK ",s=!!!notbase64!!!,i=4096", "bad-challenge"}, /* bad base64 */
        {NONCE_OK ",s=QSXCR+Q6sek8bf9,i=4096", "bad-challenge"}, /* bad base64 length */
        {"r=fyko+d2lbbFgONRv9qkxdawL,s=QSXCR+Q6sek8bf92,i=4096", "scram-nonce-mismatch"},
        {"r=fyko+d2lbbFgONRv9qkxda,s=QSXCR+Q6sek8bf92,i=4096", "scram-nonce-mismatch"},
        {"r=XXXX+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=4096", "scram-nonce-mismatch"},
        {NONCE_OK ",s=QSXCR+Q6sek8bf92,i=0", "scram-iterations"},
        {NONCE_OK ",s=QSXCR+Q6sek8bf92,i=1", "scram-iterations"},
        {NONCE_OK ",s=QSXCR+Q6sek8bf92,i=4095", "scram-iterations"},
        {NONCE_OK ",s=QSXCR+Q6sek8bf92,i=4000000000", "scram-iterations"},
        {NONCE_OK ",s=QSXCR+Q6sek8bf92,i=99999999999999999999", "bad-challenge"},
        {NONCE_OK ",s=QSXCR+Q6sek8bf92,i=-5", "bad-challenge"},
        {NONCE_OK ",s=QSXCR+Q6sek8bf92,i=4096x", "bad-challenge"},
        {NONCE_OK ",s=QSXCR+Q6sek8bf92,i=", "bad-challenge"},
        {NONCE_OK ",s=QSXCR+Q6sek8bf92,i=4096,", "bad-challenge"},
        {NONCE_OK ",s=QSXCR+Q6sek8bf92,i=4096,junk", "bad-challenge"},
        {"m=ext," NONCE_OK ",s=QSXCR+Q6sek8bf92,i=4096", "scram-extension"},
        {NONCE_OK ",i=4096,s=QSXCR+Q6sek8bf92", "bad-challenge"}, /* order */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int before = tap_case_failed;
        malformed_first(cases[i].msg, cases[i].cond);
        if (tap_case_failed && !before)
            printf("# ... with server-first \"%s\"\n", cases[i].msg);
    }
}

static void malformed_final(const char *success_elem, const char *condition)
{
    senv_t e;
    scram_env(&e, &rfc5802, "SCRAM-SHA-1", NULL, success_elem, 0);
    if (!senv_authfail(&e, e.steps, "user@localhost", "pencil", condition))
        return;
    CHECK(!saw(&e, UVX_STATUS_CONNECTED));
    CHECK(saw(&e, UVX_STATUS_AUTHFAIL));
    CHECK(!uvx_conn_authenticated(e.conn));
    CHECK_INT(uvx_conn_scram_keys(e.conn, &(uvx_scram_keys_t){0}), UVX_ENOTFOUND);
    senv_done(&e);
}

static void test_malformed_server_final(void)
{
    static const struct {
        const char *data, *cond;
    } cases[] = {
        {"v=AAAAAAAAAAAAAAAAAAAAAAAAAAA=", "server-signature-mismatch"},     /* wrong signature */
        {"v=rmF9pqV8S7suAoZWja4dJRkFsKQ", "server-signature-mismatch"},      /* bad base64 */
        {"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=,x=1", "server-signature-mismatch"}, /* garbage */
        {"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=garbage", "server-signature-mismatch"},
        {"v=rmF9pqV8S7suAoZWja4dJRkF", "server-signature-mismatch"}, /* short */
        {"v=", "server-signature-mismatch"},
        {"", "server-signature-mismatch"}, /* <success/> without a verifier */
        {"x=rmF9pqV8S7suAoZWja4dJRkFsKQ=", "server-signature-mismatch"},
        {"e=invalid-proof", "scram-server-error"},
    };
    char elem[256];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *enc = b64(cases[i].data, strlen(cases[i].data));
        snprintf(elem, sizeof(elem), "<success " NS_SASL_Q ">%s</success>", enc);
        free(enc);
        malformed_final(elem, cases[i].cond);
    }
    /* Success text that is not base64 at all. */
    malformed_final("<success " NS_SASL_Q ">*** not base64 ***</success>", "bad-success");
}

/* A server that skips our proof and says success at once. */
static void test_success_without_proof(void)
{
    senv_t e;
    senv_init(&e);
    sasl_ctx_set_test_nonce(e.ctx, rfc5802.cnonce);
    fake_step_t steps[] = {
        STEP_OFFER(&e, "SCRAM-SHA-1"),
        STEP("<auth", FAKE_SUCCESS),
        STEPS_TO_CONNECTED,
    };
    if (!senv_authfail(&e, steps, "user@localhost", "pencil", "server-signature-mismatch"))
        return;
    senv_done(&e);
}

/* The verifier in a challenge, then an empty <success/> (RFC 6120 §6.3.10). */
static void test_verifier_in_challenge(void)
{
    senv_t e;
    scram_env(&e, &rfc5802, "SCRAM-SHA-1", NULL, NULL, 0);
    /* the verifier in a challenge where the success was */
    e.steps[2].reply = own(&e, sasl_elem_str("challenge", NULL, rfc5802.server_final));
    /* insert: our empty response -> empty success */
    memmove(&e.steps[4], &e.steps[3], 3 * sizeof(e.steps[0]));
    e.steps[3] = (fake_step_t)STEP("<response " NS_SASL_Q ">=</response>", FAKE_SUCCESS);
    if (!senv_login(&e, e.steps, NULL, "user@localhost", "pencil", NULL))
        return;
    CHECK(e.connected);
    senv_done(&e);
}

/* ---- the parsers alone ---- */

static void test_parse_server_first(void)
{
    scram_server_first_t sf;
    const char *cond = NULL;
    const char *ok = NONCE_OK ",s=QSXCR+Q6sek8bf92,i=4096";
    CHECK_INT(scram_parse_server_first(ok, strlen(ok), rfc5802.cnonce, &sf, &cond), 0);
    CHECK_INT(sf.iterations, 4096);
    CHECK_INT(sf.salt_len, 12);
    CHECK_INT(sf.nonce_len, strlen(NONCE_OK) - 2);
    const char *ext = NONCE_OK ",s=QSXCR+Q6sek8bf92,i=4096,x=whatever";
    CHECK_INT(scram_parse_server_first(ext, strlen(ext), rfc5802.cnonce, &sf, &cond), 0);
    /* an embedded NUL */
    char nul[] = NONCE_OK ",s=QSXCR+Q6sek8bf92,i=4096";
    nul[5] = '\0';
    CHECK_INT(scram_parse_server_first(nul, sizeof(nul) - 1, rfc5802.cnonce, &sf, &cond),
              UVX_EAUTH);
    CHECK_STR(cond, "bad-challenge");
    /* a salt longer than the key cache holds is refused later, not here */
    unsigned char v[64];
    size_t vlen = 0;
    CHECK_INT(
        scram_parse_server_final("v=rmF9pqV8S7suAoZWja4dJRkFsKQ=", 30, v, sizeof(v), &vlen, &cond),
        0);
    CHECK_INT(vlen, 20);
    CHECK_INT(scram_parse_server_final("e=other-error", 13, v, sizeof(v), &vlen, &cond), UVX_EAUTH);
    CHECK_STR(cond, "scram-server-error");
}

static void test_saslname_escaping(void)
{
    senv_t e;
    senv_init(&e);
    sasl_ctx_set_test_nonce(e.ctx, "abc");
    uvx_connect_args_t args;
    memset(&args, 0, sizeof(args));
    args.authcid = "we,ird=name";
    char *p;
    size_t len;
    if (!capture_auth(&e, "SCRAM-SHA-1", "alice@localhost", "pw", &args, &p, &len))
        return;
    /* an authcid that differs from the JID's node: the authzid goes too */
    CHECK_STR(p, "n,a=alice@localhost,n=we=2Cird=3Dname,r=abc");
    free(p);
    senv_done(&e);
}

/* ---- selection, priorities, fallback ---- */

static void test_priority_and_fallback(void)
{
    senv_t e;
    senv_init(&e);
    fake_step_t steps[] = {
        STEP_OFFER(&e, "PLAIN,SCRAM-SHA-1,X-OAUTH2,SCRAM-SHA-256,SCRAM-SHA-512,ANONYMOUS"),
        STEP("mechanism='SCRAM-SHA-512'", FAILURE_NA),
        STEP("mechanism='SCRAM-SHA-256'", FAILURE_NA),
        STEP("mechanism='SCRAM-SHA-1'",
             "<failure " NS_SASL_Q "><temporary-auth-failure/></failure>"),
        STEP("mechanism='PLAIN'", FAKE_SUCCESS),
        STEPS_TO_CONNECTED,
    };
    if (!senv_login(&e, steps, NULL, "alice@localhost", "alicepass", NULL))
        return;
    CHECK(e.connected);
    CHECK(!saw(&e, UVX_STATUS_AUTHFAIL));
    CHECK_STR(uvx_sasl_mechanism(e.conn), "PLAIN");
    /* SCRAM aborted nothing: each failure came from the server */
    CHECK(strstr(fake_server_received(e.fs), "<abort") == NULL);
    CHECK(strstr(fake_server_received(e.fs), "X-OAUTH2") == NULL);
    senv_done(&e);
}

static void test_all_fail_authfail(void)
{
    senv_t e;
    senv_init(&e);
    fake_step_t steps[] = {
        STEP_OFFER(&e, "PLAIN,SCRAM-SHA-1"),
        STEP("mechanism='SCRAM-SHA-1'", FAILURE_NA),
        STEP("mechanism='PLAIN'", "<failure " NS_SASL_Q "><account-disabled/></failure>"),
        STEP_END,
    };
    if (!senv_authfail(&e, steps, "alice@localhost", "alicepass", "account-disabled"))
        return;
    senv_done(&e);
}

static void test_mechanisms_option(void)
{
    senv_t e;
    senv_init(&e);
    fake_step_t steps[] = {
        STEP_OFFER(&e, "PLAIN,SCRAM-SHA-1,SCRAM-SHA-256"),
        STEP("mechanism='PLAIN'", FAILURE_NA),
        STEP("mechanism='SCRAM-SHA-1'", FAILURE_NA),
        STEP_END,
    };
    static const char *const order[] = {"PLAIN", "SCRAM-SHA-1", "NOT-A-MECH", NULL};
    uvx_conn_options_t o;
    uvx_conn_options_init(&o);
    o.allow_plain = 1;
    o.mechanisms = order;
    if (!senv_login(&e, steps, &o, "alice@localhost", "alicepass", NULL))
        return;
    CHECK_STR(cond_of(&e, UVX_STATUS_AUTHFAIL), "not-authorized");
    CHECK(strstr(fake_server_received(e.fs), "SCRAM-SHA-256") == NULL);
    CHECK_INT(fake_server_steps_done(e.fs), 3);
    senv_done(&e);
}

static void test_plain_needs_permission(void)
{
    senv_t e;
    senv_init(&e);
    fake_step_t steps[] = {
        STEP_OFFER(&e, "PLAIN,X-OAUTH2,OAUTHBEARER,SCRAM-SHA-1"),
        STEP("mechanism='SCRAM-SHA-1'", FAILURE_NA),
        STEP_END,
    };
    uvx_conn_options_t o;
    uvx_conn_options_init(&o); /* no allow_plain, no TLS */
    if (!senv_login(&e, steps, &o, "alice@localhost", "alicepass", NULL))
        return;
    /* no TLS and no permission for a clear stream: nothing is sent at all */
    CHECK_STR(cond_of(&e, UVX_STATUS_CONNFAIL), "tls-required");
    const char *rx = fake_server_received(e.fs);
    CHECK(strstr(rx, "<auth") == NULL);
    senv_done(&e);
}

static void test_anonymous_only_without_node(void)
{
    for (int with_node = 0; with_node < 2; with_node++) {
        senv_t e;
        senv_init(&e);
        fake_step_t steps[] = {
            STEP_OFFER(&e, "ANONYMOUS,PLAIN"),
            STEP(with_node ? "mechanism='PLAIN'" : "<auth " NS_SASL_Q " mechanism='ANONYMOUS'/>",
                 FAKE_SUCCESS),
            STEPS_TO_CONNECTED,
        };
        if (!senv_login(&e, steps, NULL, with_node ? "alice@localhost" : "localhost",
                        with_node ? "alicepass" : NULL, NULL))
            return;
        CHECK(e.connected);
        CHECK_STR(uvx_sasl_mechanism(e.conn), with_node ? "PLAIN" : "ANONYMOUS");
        senv_done(&e);
    }
}

static void test_gs2_y_flag(void)
{
    for (int plus = 0; plus < 2; plus++) {
        senv_t e;
        senv_init(&e);
        sasl_ctx_set_test_nonce(e.ctx, "n0nce");
        char *p;
        size_t len;
        if (!capture_auth(&e, plus ? "SCRAM-SHA-1-PLUS,SCRAM-SHA-1" : "SCRAM-SHA-1",
                          "alice@localhost", "alicepass", NULL, &p, &len))
            return;
        /* no TLS, so no binding data: "n" whether or not -PLUS is offered */
        CHECK_STR(p, "n,,n=alice,r=n0nce");
        CHECK_STR(uvx_sasl_mechanism(e.conn), "SCRAM-SHA-1"); /* no TLS: no -PLUS */
        free(p);
        senv_done(&e);
    }
}

/* Without TLS there is no tls-unique data: the -PLUS mechanisms are never
 * eligible, by priority or when the caller names them. */
static void test_plus_needs_tls(void)
{
    static const char *const only_plus[] = {"SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS", NULL};
    for (int named = 0; named < 2; named++) {
        senv_t e;
        senv_init(&e);
        fake_step_t steps[] = {
            STEP_OFFER(&e, "SCRAM-SHA-256-PLUS,SCRAM-SHA-1-PLUS"),
            STEP_END,
        };
        uvx_conn_options_t o;
        uvx_conn_options_init(&o);
        o.allow_plain = 1;
        o.mechanisms = named ? only_plus : NULL;
        if (!senv_login(&e, steps, &o, "alice@localhost", "alicepass", NULL))
            return;
        CHECK(!e.connected);
        CHECK_STR(cond_of(&e, UVX_STATUS_CONNFAIL), "no-auth-mech");
        CHECK(strstr(fake_server_received(e.fs), "<auth") == NULL);
        senv_done(&e);
    }
}

/* The initial response each simple mechanism sends. */
static void payload_case(const char *mech, const char *jid, const char *authcid, const char *expect,
                         size_t expect_len)
{
    senv_t e;
    senv_init(&e);
    uvx_connect_args_t args;
    memset(&args, 0, sizeof(args));
    args.authcid = authcid;
    char *p;
    size_t len = 0;
    if (!capture_auth(&e, mech, jid, "s3cret", &args, &p, &len))
        return;
    CHECK(p != NULL);
    CHECK_INT(len, expect_len);
    if (p && len == expect_len && memcmp(p, expect, len) != 0)
        tap_fail(__FILE__, __LINE__, "%s payload differs", mech);
    free(p);
    senv_done(&e);
}

#define PAYLOAD(mech, jid, authcid, lit) payload_case(mech, jid, authcid, lit, sizeof(lit) - 1)

static void test_payloads(void)
{
    PAYLOAD("PLAIN", "alice@localhost", NULL, "\0alice\0s3cret");
    PAYLOAD("PLAIN", "alice@localhost", "admin", "alice@localhost\0admin\0s3cret");
    PAYLOAD("X-OAUTH2", "alice@localhost", NULL, "\0alice@localhost\0s3cret");
    PAYLOAD("OAUTHBEARER", "alice@localhost", NULL,
            "n,a=alice@localhost,\001auth=Bearer s3cret\001\001");
    PAYLOAD("EXTERNAL", "alice@localhost", NULL, "alice@localhost");
    PAYLOAD("EXTERNAL", "alice@localhost", "alice@localhost", "");
}

/* RFC 7628 §3.2.3: an error challenge is answered with a kvsep, then the
 * next mechanism follows the failure. */
static void test_oauthbearer_error(void)
{
    senv_t e;
    senv_init(&e);
    fake_step_t steps[] = {
        STEP_OFFER(&e, "OAUTHBEARER,X-OAUTH2"),
        STEP("mechanism='OAUTHBEARER'",
             own(&e, sasl_elem_str("challenge", NULL, "{\"status\":\"invalid_token\"}"))),
        STEP("<response " NS_SASL_Q ">AQ==</response>", FAILURE_NA),
        STEP("mechanism='X-OAUTH2'", FAKE_SUCCESS),
        STEPS_TO_CONNECTED,
    };
    if (!senv_login(&e, steps, NULL, "alice@localhost", "tok", NULL))
        return;
    CHECK(e.connected);
    senv_done(&e);
}

/* ---- user mechanisms ---- */

typedef struct umech {
    senv_t *e;
    int started, challenges, successes, failures;
    char last_challenge[64];
    char failure_cond[64];
    int async;
    uv_timer_t timer;
    uvx_conn_t *conn;
} umech_t;

static int um_start(uvx_conn_t *conn, void *ud)
{
    umech_t *u = ud;
    u->started++;
    char resp[128];
    snprintf(resp, sizeof(resp), "hello %s/%s", uvx_sasl_authcid(conn), uvx_sasl_password(conn));
    uvx_sasl_respond(conn, resp, strlen(resp));
    return 0;
}

static void um_timer(uv_timer_t *t)
{
    umech_t *u = t->data;
    CHECK_INT(uvx_sasl_respond(u->conn, "later", 5), 0);
    /* answered once: a second answer is out of place */
    CHECK_INT(uvx_sasl_respond(u->conn, "again", 5), UVX_ESTATE);
}

static int um_challenge(uvx_conn_t *conn, const char *data, size_t len, void *ud)
{
    umech_t *u = ud;
    u->challenges++;
    snprintf(u->last_challenge, sizeof(u->last_challenge), "%.*s", (int)len, data);
    if (u->async) {
        u->conn = conn;
        uv_timer_start(&u->timer, um_timer, 30, 0);
        return UVX_SASL_PENDING;
    }
    return uvx_sasl_respond(conn, "now", 3);
}

static int um_success(uvx_conn_t *conn, const char *data, size_t len, void *ud)
{
    umech_t *u = ud;
    (void)conn;
    u->successes++;
    return len == 2 && memcmp(data, "ok", 2) == 0 ? 0 : -1;
}

static void um_failure(uvx_conn_t *conn, const char *condition, void *ud)
{
    umech_t *u = ud;
    (void)conn;
    u->failures++;
    snprintf(u->failure_cond, sizeof(u->failure_cond), "%s", condition ? condition : "");
}

static void user_mech_case(int async)
{
    senv_t e;
    umech_t u;
    senv_init(&e);
    memset(&u, 0, sizeof(u));
    u.async = async;
    uv_timer_init(&e.loop, &u.timer);
    u.timer.data = &u;
    uvx_sasl_mechanism_t m = {"X-TEST",     99,         NULL,       um_start,
                              um_challenge, um_success, um_failure, &u};
    CHECK_INT(uvx_ctx_register_sasl_mechanism(e.ctx, &m), 0);
    const char *names[16];
    int n = uvx_ctx_sasl_mechanisms(e.ctx, names, 16);
    CHECK_INT(n, 14);
    CHECK_STR(names[0], "X-TEST");
    CHECK_STR(names[1], "SCRAM-SHA-512-PLUS");
    CHECK_STR(names[4], "SCRAM-SHA-1-PLUS");
    CHECK_STR(names[5], "SCRAM-SHA-512");
    CHECK_STR(names[13], "EXTERNAL");
    fake_step_t steps[] = {
        STEP_OFFER(&e, "PLAIN,X-TEST"),
        STEP(own(&e, sasl_elem_str("auth", "X-TEST", "hello alice/alicepass")),
             own(&e, sasl_elem_str("challenge", NULL, "q1"))),
        STEP(own(&e, sasl_elem_str("response", NULL, async ? "later" : "now")),
             own(&e, sasl_elem_str("success", NULL, "ok"))),
        STEPS_TO_CONNECTED,
    };
    if (!senv_login(&e, steps, NULL, "alice@localhost", "alicepass", NULL))
        return;
    CHECK(e.connected);
    CHECK_INT(u.started, 1);
    CHECK_INT(u.challenges, 1);
    CHECK_STR(u.last_challenge, "q1");
    CHECK_INT(u.successes, 1);
    CHECK_INT(u.failures, 0);
    uv_close((uv_handle_t *)&u.timer, NULL);
    senv_done(&e);
}

static void test_user_mechanism_sync(void)
{
    user_mech_case(0);
}

static void test_user_mechanism_async(void)
{
    user_mech_case(1);
}

static int um_refuse_start(uvx_conn_t *conn, void *ud)
{
    (void)conn;
    ((umech_t *)ud)->started++;
    return -1;
}

/* A user mechanism replacing PLAIN, refusing to start, and unregistering. */
static void test_user_mechanism_registry(void)
{
    senv_t e;
    umech_t u;
    senv_init(&e);
    memset(&u, 0, sizeof(u));
    uvx_sasl_mechanism_t bad = {NULL, 1, NULL, um_start, NULL, NULL, NULL, NULL};
    CHECK_INT(uvx_ctx_register_sasl_mechanism(e.ctx, &bad), UVX_EINVAL);
    uvx_sasl_mechanism_t m = {"SCRAM-SHA-1", 90, NULL, um_refuse_start, NULL, NULL, um_failure, &u};
    CHECK_INT(uvx_ctx_register_sasl_mechanism(e.ctx, &m), 0);
    CHECK_INT(uvx_ctx_unregister_sasl_mechanism(e.ctx, "SCRAM-SHA-256"), 0);
    CHECK_INT(uvx_ctx_unregister_sasl_mechanism(e.ctx, "SCRAM-SHA-256"), UVX_ENOTFOUND);
    const char *names[16];
    CHECK_INT(uvx_ctx_sasl_mechanisms(e.ctx, names, 16), 12);
    CHECK_STR(names[0], "SCRAM-SHA-1"); /* priority 90 now, above the -PLUS forms */
    fake_step_t steps[] = {
        STEP_OFFER(&e, "SCRAM-SHA-256,SCRAM-SHA-1,PLAIN"),
        STEP("mechanism='PLAIN'", FAKE_SUCCESS),
        STEPS_TO_CONNECTED,
    };
    if (!senv_login(&e, steps, NULL, "alice@localhost", "alicepass", NULL))
        return;
    CHECK(e.connected);
    CHECK_INT(u.started, 1);
    CHECK(strstr(fake_server_received(e.fs), "SCRAM") == NULL);
    senv_done(&e);
}

static int um_pending_start(uvx_conn_t *conn, void *ud)
{
    umech_t *u = ud;
    u->started++;
    u->conn = conn;
    return UVX_SASL_PENDING;
}

static void um_abort_timer(uv_timer_t *t)
{
    umech_t *u = t->data;
    CHECK_INT(uvx_sasl_abort(u->conn), 0);
}

/* An asynchronous start that gives up: the next mechanism runs. */
static void test_user_mechanism_async_abort(void)
{
    senv_t e;
    umech_t u;
    senv_init(&e);
    memset(&u, 0, sizeof(u));
    uv_timer_init(&e.loop, &u.timer);
    u.timer.data = &u;
    uvx_sasl_mechanism_t m = {"X-SLOW", 99, NULL, um_pending_start, NULL, NULL, NULL, &u};
    CHECK_INT(uvx_ctx_register_sasl_mechanism(e.ctx, &m), 0);
    fake_step_t steps[] = {
        STEP_OFFER(&e, "X-SLOW,PLAIN"),
        STEP("mechanism='PLAIN'", FAKE_SUCCESS),
        STEPS_TO_CONNECTED,
    };
    if (!senv_connect(&e, steps, NULL, "alice@localhost", "alicepass", NULL))
        return;
    run_for(&e.loop, 50);
    CHECK_INT(u.started, 1);
    CHECK(strstr(fake_server_received(e.fs), "<auth") == NULL); /* nothing sent yet */
    uv_timer_start(&u.timer, um_abort_timer, 1, 0);
    senv_wait_end(&e, 5000);
    CHECK(e.connected);
    CHECK(strstr(fake_server_received(e.fs), "X-SLOW") == NULL);
    uv_close((uv_handle_t *)&u.timer, NULL);
    senv_done(&e);
}

/* ---- PBKDF2 on the thread pool ---- */

typedef struct ticker {
    uv_timer_t t;
    uint64_t last, max_gap;
    senv_t *env;
    int in_window; /* ticks after the client's <auth> and before its <response> */
} ticker_t;

static void on_tick(uv_timer_t *t)
{
    ticker_t *tk = (ticker_t *)t;
    uint64_t now = uv_hrtime();
    if (tk->last && now - tk->last > tk->max_gap)
        tk->max_gap = now - tk->last;
    tk->last = now;
    const char *rx = tk->env->fs ? fake_server_received(tk->env->fs) : "";
    if (strstr(rx, "<auth") && !strstr(rx, "<response"))
        tk->in_window++;
}

/* Writes to buf a server-first with `iterations`, against which the client
 * must derive. */
static void first_with_iterations(char *buf, size_t cap, unsigned long iterations)
{
    snprintf(buf, cap, NONCE_OK ",s=QSXCR+Q6sek8bf92,i=%lu", iterations);
}

static void test_pbkdf2_does_not_stall(void)
{
    senv_t e;
    char first[128];
    first_with_iterations(first, sizeof(first), UVX_SCRAM_MAX_ITERATIONS);
    scram_env(&e, &rfc5802, "SCRAM-SHA-1", first, NULL, 1);
    e.steps[2] = (fake_step_t)STEP("<response", FAILURE_NA);
    e.steps[3] = (fake_step_t)STEP_END;
    ticker_t tk;
    memset(&tk, 0, sizeof(tk));
    tk.env = &e;
    uv_timer_init(&e.loop, &tk.t);
    uv_timer_start(&tk.t, on_tick, 1, 1);
    /* Time one derivation of the same size on this thread, for scale. */
    unsigned char ck[64], sk[64], salt[12] = {0};
    size_t klen;
    uint64_t t0 = uv_hrtime();
    scram_derive_keys("SHA-1", "pencil", salt, sizeof(salt), UVX_SCRAM_MAX_ITERATIONS, ck, sk,
                      &klen);
    uint64_t pbkdf2_ns = uv_hrtime() - t0;
    if (!senv_connect(&e, e.steps, NULL, "user@localhost", "pencil", NULL))
        return;
    tk.last = 0;
    tk.max_gap = 0;
    senv_wait_end(&e, 20000);
    uv_timer_stop(&tk.t);
    uv_close((uv_handle_t *)&tk.t, NULL);
    CHECK_STR(cond_of(&e, UVX_STATUS_AUTHFAIL), "not-authorized");
    CHECK(strstr(fake_server_received(e.fs), "<response") != NULL);
    printf("# one PBKDF2 (%d iterations) %.1f ms; longest loop gap meanwhile %.2f ms; "
           "%d timer runs while the client derived its keys\n",
           UVX_SCRAM_MAX_ITERATIONS, pbkdf2_ns / 1e6, tk.max_gap / 1e6, tk.in_window);
    /* Not a timing assertion (machines are noisy): a derivation on the loop
     * thread would leave the 1 ms timer no chance to run between our <auth>
     * and our <response>; on the thread pool it runs all along. */
    CHECK(tk.in_window >= 20);
    senv_done(&e);
}

/* Closing the connection while PBKDF2 is queued or running: the work must
 * not touch the freed connection (ASan watches). */
static void test_close_during_pbkdf2(void)
{
    for (int delay = 0; delay < 3; delay++) {
        senv_t e;
        char first[128];
        first_with_iterations(first, sizeof(first), UVX_SCRAM_MAX_ITERATIONS / 4);
        scram_env(&e, &rfc5802, "SCRAM-SHA-1", first, NULL, 1);
        if (!senv_connect(&e, e.steps, NULL, "user@localhost", "pencil", NULL))
            return;
        unsigned long before = sasl_ctx_pbkdf2_count(e.ctx);
        uint64_t deadline = uv_hrtime() + 5000000000ull;
        while (sasl_ctx_pbkdf2_count(e.ctx) == before && uv_hrtime() < deadline)
            run_for(&e.loop, 1);
        CHECK_INT(sasl_ctx_pbkdf2_count(e.ctx), before + 1);
        if (delay > 0) /* (run_for(0) may block in poll until the job ends) */
            run_for(&e.loop, (unsigned)delay * 20);
        senv_close_conn(&e); /* the job is detached, not waited for */
        if (strstr(fake_server_received(e.fs), "<response") != NULL) {
            /* The derivation beat the close (a slow machine, valgrind): this
             * round closed after it, not during it. Without a delay the
             * close always comes first (a derivation takes far more than
             * the 1 ms loop turn in which it was queued). */
            printf("# delay %d: the derivation ended before the close\n", delay);
            CHECK(delay > 0);
        }
        senv_done(&e); /* loop_finish waits for the job's after-work callback */
    }
}

/* ---- the per-context PBKDF2 queue, one slot ---- */

/* One of several logins on one loop and context. */
typedef struct login {
    fake_server_t *fs;
    uvx_conn_t *conn;
    fake_step_t steps[8];
    int connected, disconnected, closed;
} login_t;

static void login_on_status(uvx_conn_t *conn, int status, const char *condition, uvx_stanza_t *elem,
                            void *ud)
{
    login_t *l = ud;
    (void)conn;
    (void)condition;
    (void)elem;
    if (status == UVX_STATUS_CONNECTED)
        l->connected = 1;
    if (status == UVX_STATUS_DISCONNECTED)
        l->disconnected = 1;
}

static int login_start(senv_t *e, login_t *l)
{
    if (!start_server_and_conn(e, l->steps, NULL, &l->fs, &l->conn))
        return 0;
    CHECK_INT(uvx_connect(l->conn, "user@localhost", "pencil", login_on_status, l, NULL), 0);
    return 1;
}

static void login_close(senv_t *e, login_t *l)
{
    close_conn(&e->loop, &l->conn, &l->closed);
}

/* Runs the loop until the context has queued `n` PBKDF2 jobs in all. */
static int wait_pbkdf2_queued(senv_t *e, unsigned long n)
{
    uint64_t deadline = uv_hrtime() + 10000000000ull;
    while (sasl_ctx_pbkdf2_count(e->ctx) < n && uv_hrtime() < deadline)
        run_for(&e->loop, 1);
    CHECK_INT(sasl_ctx_pbkdf2_count(e->ctx), n);
    return sasl_ctx_pbkdf2_count(e->ctx) == n;
}

#define CHECK_WORK(e, run, wait, done)                                                             \
    do {                                                                                           \
        unsigned running_, waiting_;                                                               \
        unsigned long ran_;                                                                        \
        sasl_ctx_work_counts((e)->ctx, &running_, &waiting_, &ran_);                               \
        CHECK_INT(running_, run);                                                                  \
        CHECK_INT(waiting_, wait);                                                                 \
        CHECK_INT(ran_, done);                                                                     \
    } while (0)

/* One slot: A's long PBKDF2 holds it while B, C, D and E queue behind it.
 * C is closed and D reset while they wait: their jobs leave the queue and
 * never run. A is closed while its job runs: the job finishes harmlessly
 * and the next one (B) starts; B and E log in. */
static void test_cancel_queued_pbkdf2(void)
{
    senv_t e;
    login_t l[5]; /* A B C D E */
    login_t *a = &l[0], *b = &l[1], *c = &l[2], *d = &l[3], *ee = &l[4];
    memset(l, 0, sizeof(l));
    senv_init(&e);
    sasl_ctx_set_test_nonce(e.ctx, rfc5802.cnonce);
    CHECK_INT(sasl_ctx_set_work_slots(e.ctx, 0), UVX_EINVAL);
    CHECK_INT(sasl_ctx_set_work_slots(e.ctx, 1), 0);
    CHECK_WORK(&e, 0, 0, 0);
    /* A: the longest derivation a server may ask for; closed before it ends. */
    char first[128];
    first_with_iterations(first, sizeof(first), UVX_SCRAM_MAX_ITERATIONS);
    scram_script(&e, a->steps, &rfc5802, "SCRAM-SHA-1", first, NULL, 1);
    /* B, C, E: the RFC 5802 login, to CONNECTED. */
    scram_script(&e, b->steps, &rfc5802, "SCRAM-SHA-1", NULL, NULL, 0);
    scram_script(&e, c->steps, &rfc5802, "SCRAM-SHA-1", NULL, NULL, 0);
    scram_script(&e, ee->steps, &rfc5802, "SCRAM-SHA-1", NULL, NULL, 0);
    /* D: the server sends its challenge and drops the connection. */
    scram_script(&e, d->steps, &rfc5802, "SCRAM-SHA-1", NULL, NULL, 1);
    d->steps[1].close = 1;

    /* One at a time, so that the queue order is A (on the pool), B, C, D, E. */
    for (int i = 0; i < 5; i++) {
        if (!login_start(&e, &l[i]) || !wait_pbkdf2_queued(&e, (unsigned long)i + 1))
            goto out;
        if (&l[i] == d)
            CHECK(run_until(&e.loop, &d->disconnected, 1, 5000));
    }
    /* The connection loss took D's job out of the queue. */
    CHECK_WORK(&e, 1, 3, 0);

    login_close(&e, c); /* queued: removed at once, never runs */
    CHECK_WORK(&e, 1, 2, 0);
    CHECK_INT(uvx_reset(d->conn), 0);
    CHECK_WORK(&e, 1, 2, 0);
    CHECK(!b->connected && !ee->connected);

    login_close(&e, a); /* on the pool: it runs on, detached */
    CHECK_WORK(&e, 1, 2, 0);
    CHECK(run_until(&e.loop, &b->connected, 1, 60000));
    CHECK(run_until(&e.loop, &ee->connected, 1, 10000));
    CHECK(strstr(fake_server_received(a->fs), "<response") == NULL);
    /* A's, B's and E's jobs ran; C's and D's did not. */
    CHECK_WORK(&e, 0, 0, 3);
    CHECK_INT(sasl_ctx_pbkdf2_count(e.ctx), 5);
    CHECK(!c->connected && !d->connected);
    CHECK_INT(fake_server_steps_done(b->fs), 5);
    CHECK_INT(fake_server_steps_done(ee->fs), 5);

out:
    for (int i = 0; i < 5; i++) {
        login_close(&e, &l[i]);
        fake_server_stop(l[i].fs);
    }
    senv_done(&e); /* the queue drains: the loop ends with no handle left */
}

/* Cached keys that no longer fit, without a password: a local AUTHFAIL. */
static void test_stale_keys_without_password(void)
{
    senv_t e;
    scram_env(&e, &rfc5802, "SCRAM-SHA-1", NULL, NULL, 1);
    uvx_scram_keys_t keys;
    memset(&keys, 0, sizeof(keys));
    strcpy(keys.hash, "SHA-1");
    keys.iterations = 4096;
    keys.salt_len = 4;
    memcpy(keys.salt, "salt", 4);
    keys.key_len = 20;
    uvx_connect_args_t args;
    memset(&args, 0, sizeof(args));
    args.scram_keys = &keys;
    if (!senv_login(&e, e.steps, NULL, "user@localhost", NULL, &args))
        return;
    CHECK_STR(cond_of(&e, UVX_STATUS_AUTHFAIL), "scram-keys-stale");
    CHECK_INT(sasl_ctx_pbkdf2_count(e.ctx), 0);
    senv_done(&e);
}

/* SHA-1 keys but the server offers only SCRAM-SHA-256, no password: no
 * acceptable mechanism. */
static void test_keys_for_other_hash(void)
{
    senv_t e;
    senv_init(&e);
    fake_step_t steps[] = {
        STEP_OFFER(&e, "SCRAM-SHA-256"),
        STEP_END,
    };
    uvx_scram_keys_t keys;
    memset(&keys, 0, sizeof(keys));
    strcpy(keys.hash, "SHA-1");
    keys.key_len = 20;
    uvx_connect_args_t args;
    memset(&args, 0, sizeof(args));
    args.scram_keys = &keys;
    if (!senv_login(&e, steps, NULL, "user@localhost", NULL, &args))
        return;
    CHECK_STR(cond_of(&e, UVX_STATUS_CONNFAIL), "no-auth-mech");
    senv_done(&e);
}

int main(void)
{
    tap_run("RFC 5802 SCRAM-SHA-1 vector on the wire, then cached keys", test_rfc5802_vector);
    tap_run("RFC 7677 SCRAM-SHA-256 vector on the wire, then cached keys", test_rfc7677_vector);
    tap_run("malformed server-first messages -> AUTHFAIL", test_malformed_server_first);
    tap_run("malformed server-final messages -> AUTHFAIL", test_malformed_server_final);
    tap_run("success without our proof -> AUTHFAIL", test_success_without_proof);
    tap_run("verifier in a challenge, empty success", test_verifier_in_challenge);
    tap_run("SCRAM parsers", test_parse_server_first);
    tap_run("saslname escaping and authzid", test_saslname_escaping);
    tap_run("priorities and fallback after failure", test_priority_and_fallback);
    tap_run("every mechanism fails -> AUTHFAIL with the last condition", test_all_fail_authfail);
    tap_run("mechanisms option restricts and reorders", test_mechanisms_option);
    tap_run("cleartext mechanisms need TLS or allow_plain", test_plain_needs_permission);
    tap_run("ANONYMOUS only without a node", test_anonymous_only_without_node);
    tap_run("GS2 n flag without TLS, -PLUS offered or not", test_gs2_y_flag);
    tap_run("-PLUS needs TLS (tls-unique data)", test_plus_needs_tls);
    tap_run("PLAIN, X-OAUTH2, OAUTHBEARER, EXTERNAL payloads", test_payloads);
    tap_run("OAUTHBEARER error challenge, then fallback", test_oauthbearer_error);
    tap_run("user mechanism, synchronous", test_user_mechanism_sync);
    tap_run("user mechanism, asynchronous answer", test_user_mechanism_async);
    tap_run("user mechanism replaces a built-in; unregister", test_user_mechanism_registry);
    tap_run("user mechanism, asynchronous start aborted", test_user_mechanism_async_abort);
    if (tap_under_valgrind())
        tap_skip("PBKDF2 runs on the thread pool: no loop stall",
                 "valgrind runs one thread at a time");
    else
        tap_run("PBKDF2 runs on the thread pool: no loop stall", test_pbkdf2_does_not_stall);
    tap_run("close while PBKDF2 is pending", test_close_during_pbkdf2);
    tap_run("one PBKDF2 slot: close/reset while queued, close while running",
            test_cancel_queued_pbkdf2);
    tap_run("stale cached keys without a password", test_stale_keys_without_password);
    tap_run("cached keys for another hash", test_keys_for_other_hash);
    return tap_done();
}
