/*
 * TLS: direct TLS (xmpps://) against a real server with its own
 * self-signed certificate, verification failures (wrong CA, wrong host
 * name) and the caller's verify callback, channel-binding types on the
 * real servers, and from scripted peers: broken handshakes (garbage, an
 * alert, a truncated record, a hang-up after the ClientHello), and a
 * scripted TLS server (mbedtls, on the test's loop) that checks the
 * SCRAM-*-PLUS channel binding against its own side of the session and
 * that a client certificate was presented for SASL EXTERNAL.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mbedtls/base64.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/sha256.h>
#include <mbedtls/ssl.h>

#include "client.h"
#include "fakeserver.h"
#include "sasl.h"
#include "server.h"
#include "tap.h"
#include "uvxmpp.h"

#define SERVICE_LEN 64

static test_server_t srv;
static char cafile[512];
static char tls_service[SERVICE_LEN];
static char c2s_service[SERVICE_LEN];

/* "SCHEME://127.0.0.1:PORT" into service[SERVICE_LEN]. */
static void local_service(char *service, const char *scheme, int port)
{
    snprintf(service, SERVICE_LEN, "%s://127.0.0.1:%d", scheme, port);
}

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

/* `ca` NULL: the system bundle, which does not know the test CAs. */
static void opts_base(uvx_conn_options_t *o, const char *ca)
{
    uvx_conn_options_init(o);
    o->allow_plain = 1; /* PLAIN is fine inside TLS anyway */
    o->tls_cafile = ca;
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

/* run_login() that must end DISCONNECTED, never CONNECTED: the CONNFAIL
 * condition (a static copy; "(none)" when there was none). */
static const char *login_fails(tenv_t *e, const char *service, const uvx_conn_options_t *o)
{
    static char cond[96];
    CHECK(run_login(e, service, o));
    CHECK(run_until(&e->loop, &e->c.disconnected, 1, 5000)); /* no hang */
    CHECK(!e->c.connected);
    const char *c = tclient_condition(&e->c, UVX_STATUS_CONNFAIL);
    snprintf(cond, sizeof(cond), "%s", c ? c : "(none)");
    return cond;
}

/* A whole case: alice logs in to the real server at `service` over a
 * stream as `secure` as said. */
static void real_login_works(const char *service, const uvx_conn_options_t *o, int secure)
{
    tenv_t e;
    env_init(&e);
    CHECK(run_login(&e, service, o));
    CHECK(e.c.connected);
    const char *jid = uvx_conn_jid(e.c.conn);
    CHECK(jid && strncmp(jid, "alice@localhost/", 16) == 0);
    CHECK_INT(uvx_conn_secure(e.c.conn) != 0, secure);
    env_done(&e);
}

/* A whole case: alice's login to the real server at `service` fails with
 * CONNFAIL `condition`. */
static void real_login_fails(const char *service, const uvx_conn_options_t *o,
                             const char *condition)
{
    tenv_t e;
    env_init(&e);
    CHECK_STR(login_fails(&e, service, o), condition);
    env_done(&e);
}

static void test_direct_tls_with_ca(void)
{
    uvx_conn_options_t o;
    opts_base(&o, cafile);
    real_login_works(tls_service, &o, 1);
}

static void test_direct_tls_untrusted(void)
{
    uvx_conn_options_t o;
    opts_base(&o, NULL);
    real_login_fails(tls_service, &o, "tls-cert-invalid");
}

typedef struct seen_cert {
    int calls;
    int accept;
    uint32_t flags;
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
    s->flags = cert->flags;
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
        opts_base(&o, NULL);
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
    uvx_conn_options_t o;
    opts_base(&o, NULL);
    o.tls_insecure = 1;
    real_login_works(tls_service, &o, 1);
}

static void test_bad_cafile(void)
{
    uvx_conn_options_t o;
    opts_base(&o, "/nonexistent/ca.pem");
    real_login_fails(tls_service, &o, "tls-bad-ca");
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
    opts_base(&o, cafile);
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
    uvx_conn_options_t o;
    opts_base(&o, cafile);
    real_login_works(c2s_service, &o, 1);
}

static void test_starttls_untrusted(void)
{
    uvx_conn_options_t o;
    opts_base(&o, NULL);
    real_login_fails(c2s_service, &o, "tls-cert-invalid");
}

/* tls_disabled + allow_plain: a clear stream on purpose */
static void test_tls_disabled(void)
{
    uvx_conn_options_t o;
    opts_base(&o, NULL);
    o.tls_disabled = 1;
    real_login_works(c2s_service, &o, 0);
}

/* Logs in against the scripted peer `steps` at SCHEME://: the CONNFAIL
 * condition (static copy). */
static const char *fake_peer_refuses(const fake_step_t *steps, const char *scheme,
                                     const uvx_conn_options_t *o)
{
    tenv_t e;
    int port;
    char service[SERVICE_LEN];
    env_init(&e);
    fake_server_t *fs = fake_server_start(&e.loop, steps, &port);
    local_service(service, scheme, port);
    const char *cond = login_fails(&e, service, o);
    CHECK(strstr(fake_server_received(fs), "<auth") == NULL); /* no credentials in the clear */
    fake_server_stop(fs);
    env_done(&e);
    return cond;
}

static void fake_case(const fake_step_t *steps, int allow_plain, const char *condition)
{
    uvx_conn_options_t o;
    uvx_conn_options_init(&o);
    o.allow_plain = allow_plain;
    CHECK_STR(fake_peer_refuses(steps, "tcp", &o), condition);
}

/* The same over direct TLS, any certificate accepted. */
static const char *fake_tls_peer_refuses(const fake_step_t *steps)
{
    uvx_conn_options_t o;
    opts_base(&o, NULL);
    o.tls_insecure = 1;
    return fake_peer_refuses(steps, "xmpps", &o);
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
    CHECK(strncmp(fake_tls_peer_refuses(steps), "tls-", 4) == 0);
}

/* A peer that hangs up in the middle of the handshake. */
static void test_dropped_handshake(void)
{
    static const fake_step_t steps[] = {
        {NULL, NULL, 1},
        {NULL, NULL, 0},
    };
    CHECK_STR(fake_tls_peer_refuses(steps), "tls-handshake-failed");
}

/* ---- a scripted TLS server ---- */

/* Key material made once per run with openssl: a server certificate for
 * "localhost" and a client certificate for alice, both self-signed (each
 * is its own trust anchor). */
static char certdir[64];
static char srv_crt[128], srv_key[128], cli_crt[128], cli_key[128];

static int make_certs(void)
{
    char cmd[1024];
    snprintf(certdir, sizeof(certdir), "/tmp/uvx-tls-XXXXXX");
    if (mkdtemp(certdir) == NULL)
        return 0;
    snprintf(srv_crt, sizeof(srv_crt), "%s/server.crt", certdir);
    snprintf(srv_key, sizeof(srv_key), "%s/server.key", certdir);
    snprintf(cli_crt, sizeof(cli_crt), "%s/client.crt", certdir);
    snprintf(cli_key, sizeof(cli_key), "%s/client.key", certdir);
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost "
             "-keyout %s -out %s >/dev/null 2>&1 && "
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-days 2 -subj /CN=alice@localhost -keyout %s -out %s >/dev/null 2>&1",
             srv_key, srv_crt, cli_key, cli_crt);
    return system(cmd) == 0;
}

static void remove_certs(void)
{
    const char *files[] = {srv_crt, srv_key, cli_crt, cli_key};
    for (int i = 0; i < 4; i++)
        unlink(files[i]);
    rmdir(certdir);
}

typedef struct tls_fake tls_fake_t;

/* One server configuration for every scripted TLS peer of the run. */
static struct {
    int ready;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_x509_crt cert, client_ca;
    mbedtls_pk_context key;
    mbedtls_ssl_config conf;
    tls_fake_t *handshaking; /* for the export-keys callback */
} tfc;

/* What the scripted peer does with the ClientHello. */
typedef enum {
    TF_TLS,       /* a real handshake, then the XMPP script in plaintext */
    TF_ALERT,     /* a fatal handshake_failure alert */
    TF_TRUNCATED, /* the start of a handshake record, then hang up */
    TF_DROP,      /* hang up */
} tf_mode_t;

struct tls_fake {
    uv_tcp_t listener;
    uv_tcp_t *client;
    tf_mode_t mode;
    const fake_step_t *steps;
    int step;
    char plain[16384]; /* plaintext the client sent */
    size_t plain_len, match_from;
    unsigned char cipher[65536]; /* ciphertext not yet taken by mbedtls */
    size_t cipher_len, cipher_off;
    mbedtls_ssl_context ssl;
    int established;
    int client_cert;            /* the client presented a certificate */
    unsigned char exporter[32]; /* our side of tls-exporter */
    int has_exporter;
    unsigned char unique[12]; /* tls-unique: the client's Finished */
    int open_handles;
    int stopping;
};

static int tfc_export_keys(void *p, const unsigned char *ms, const unsigned char *kb, size_t maclen,
                           size_t keylen, size_t ivlen, const unsigned char cr[32],
                           const unsigned char sr[32], mbedtls_tls_prf_types prf)
{
    unsigned char randoms[64];
    tls_fake_t *f = tfc.handshaking;
    (void)p;
    (void)kb;
    (void)maclen;
    (void)keylen;
    (void)ivlen;
    if (f == NULL)
        return 0;
    memcpy(randoms, cr, 32);
    memcpy(randoms + 32, sr, 32);
    f->has_exporter = mbedtls_ssl_tls_prf(prf, ms, 48, "EXPORTER-Channel-Binding", randoms, 64,
                                          f->exporter, 32) == 0;
    return 0;
}

static int tfc_init(void)
{
    static const char pers[] = "uvxmpp test tls server";
    mbedtls_entropy_init(&tfc.entropy);
    mbedtls_ctr_drbg_init(&tfc.drbg);
    mbedtls_x509_crt_init(&tfc.cert);
    mbedtls_x509_crt_init(&tfc.client_ca);
    mbedtls_pk_init(&tfc.key);
    mbedtls_ssl_config_init(&tfc.conf);
    tfc.ready = 1;
    if (mbedtls_ctr_drbg_seed(&tfc.drbg, mbedtls_entropy_func, &tfc.entropy,
                              (const unsigned char *)pers, sizeof(pers) - 1) != 0 ||
        mbedtls_x509_crt_parse_file(&tfc.cert, srv_crt) != 0 ||
        mbedtls_x509_crt_parse_file(&tfc.client_ca, cli_crt) != 0 ||
        mbedtls_pk_parse_keyfile(&tfc.key, srv_key, NULL) != 0 ||
        mbedtls_ssl_config_defaults(&tfc.conf, MBEDTLS_SSL_IS_SERVER, MBEDTLS_SSL_TRANSPORT_STREAM,
                                    MBEDTLS_SSL_PRESET_DEFAULT) != 0 ||
        mbedtls_ssl_conf_own_cert(&tfc.conf, &tfc.cert, &tfc.key) != 0)
        return 0;
    mbedtls_ssl_conf_rng(&tfc.conf, mbedtls_ctr_drbg_random, &tfc.drbg);
    /* ask for a client certificate, accept the handshake without one */
    mbedtls_ssl_conf_authmode(&tfc.conf, MBEDTLS_SSL_VERIFY_OPTIONAL);
    mbedtls_ssl_conf_ca_chain(&tfc.conf, &tfc.client_ca, NULL);
    mbedtls_ssl_conf_export_keys_ext_cb(&tfc.conf, tfc_export_keys, NULL);
    return 1;
}

static void tfc_free(void)
{
    if (!tfc.ready)
        return;
    mbedtls_ssl_config_free(&tfc.conf);
    mbedtls_pk_free(&tfc.key);
    mbedtls_x509_crt_free(&tfc.client_ca);
    mbedtls_x509_crt_free(&tfc.cert);
    mbedtls_ctr_drbg_free(&tfc.drbg);
    mbedtls_entropy_free(&tfc.entropy);
}

static void tf_maybe_free(tls_fake_t *f)
{
    if (f->stopping && f->open_handles == 0) {
        mbedtls_ssl_free(&f->ssl);
        free(f);
    }
}

static void tf_on_closed(uv_handle_t *h)
{
    tls_fake_t *f = h->data;
    if (h != (uv_handle_t *)&f->listener)
        free(h);
    f->open_handles--;
    tf_maybe_free(f);
}

static void tf_close_client(tls_fake_t *f)
{
    if (f->client == NULL)
        return;
    uv_close((uv_handle_t *)f->client, tf_on_closed);
    f->client = NULL;
}

typedef struct tf_write {
    uv_write_t req;
    char data[];
} tf_write_t;

static void tf_on_written(uv_write_t *req, int status)
{
    (void)status;
    free(req);
}

static void tf_write_raw(tls_fake_t *f, const void *data, size_t len)
{
    tf_write_t *w = malloc(sizeof(*w) + len);
    memcpy(w->data, data, len);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
    if (f->client == NULL || uv_write(&w->req, (uv_stream_t *)f->client, &b, 1, tf_on_written))
        free(w);
}

static int tf_bio_send(void *ctx, const unsigned char *buf, size_t len)
{
    tf_write_raw(ctx, buf, len);
    return (int)len;
}

static int tf_bio_recv(void *ctx, unsigned char *buf, size_t len)
{
    tls_fake_t *f = ctx;
    size_t avail = f->cipher_len - f->cipher_off;
    if (avail == 0)
        return MBEDTLS_ERR_SSL_WANT_READ;
    size_t n = len < avail ? len : avail;
    memcpy(buf, f->cipher + f->cipher_off, n);
    f->cipher_off += n;
    return (int)n;
}

/* Runs every step whose expectation the plaintext meets. */
static void tf_advance(tls_fake_t *f)
{
    while (f->client && f->steps[f->step].expect != NULL) {
        const fake_step_t *st = &f->steps[f->step];
        char *hit = strstr(f->plain + f->match_from, st->expect);
        if (hit == NULL)
            return;
        f->match_from = (size_t)(hit - f->plain) + strlen(st->expect);
        f->step++;
        if (st->reply)
            mbedtls_ssl_write(&f->ssl, (const unsigned char *)st->reply, strlen(st->reply));
        if (st->close)
            tf_close_client(f);
    }
}

static void tf_drive(tls_fake_t *f)
{
    if (!f->established) {
        tfc.handshaking = f;
        int ret = mbedtls_ssl_handshake(&f->ssl);
        tfc.handshaking = NULL;
        if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE)
            return;
        if (ret != 0) {
            tf_close_client(f);
            return;
        }
        f->established = 1;
        f->client_cert = mbedtls_ssl_get_peer_cert(&f->ssl) != NULL;
        memcpy(f->unique, f->ssl.peer_verify_data, sizeof(f->unique));
        tf_advance(f); /* a first step without expectation */
    }
    for (;;) {
        size_t room = sizeof(f->plain) - 1 - f->plain_len;
        int n = f->client
                    ? mbedtls_ssl_read(&f->ssl, (unsigned char *)f->plain + f->plain_len, room)
                    : 0;
        if (n <= 0)
            break;
        f->plain_len += (size_t)n;
        f->plain[f->plain_len] = '\0';
        tf_advance(f);
    }
}

/* The non-TLS modes answer the ClientHello with broken bytes. */
static void tf_misbehave(tls_fake_t *f)
{
    static const unsigned char alert[] = {0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28};
    static const unsigned char cut[] = {0x16, 0x03, 0x03, 0x01, 0x00, 0x02, 0x00, 0x00, 0x4d, 0x03};
    switch (f->mode) {
    case TF_ALERT:
        tf_write_raw(f, alert, sizeof(alert)); /* and stay: the client must hang up */
        break;
    case TF_TRUNCATED:
        tf_write_raw(f, cut, sizeof(cut)); /* a 256-byte ServerHello record, 5 bytes of it */
        tf_close_client(f);
        break;
    default:
        tf_close_client(f);
        break;
    }
}

static void tf_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(suggested);
    buf->len = suggested;
}

static void tf_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    tls_fake_t *f = s->data;
    if (n > 0 && f->mode != TF_TLS) {
        tf_misbehave(f);
    } else if (n > 0) {
        if (f->cipher_off == f->cipher_len)
            f->cipher_off = f->cipher_len = 0;
        if ((size_t)n <= sizeof(f->cipher) - f->cipher_len) {
            memcpy(f->cipher + f->cipher_len, buf->base, (size_t)n);
            f->cipher_len += (size_t)n;
            tf_drive(f);
        }
    } else if (n < 0) {
        tf_close_client(f);
    }
    free(buf->base);
}

static void tf_on_connection(uv_stream_t *server, int status)
{
    tls_fake_t *f = server->data;
    if (status != 0 || f->client != NULL)
        return;
    f->client = malloc(sizeof(*f->client));
    uv_tcp_init(server->loop, f->client);
    f->client->data = f;
    f->open_handles++;
    if (uv_accept(server, (uv_stream_t *)f->client) != 0) {
        tf_close_client(f);
        return;
    }
    if (f->mode == TF_TLS) {
        mbedtls_ssl_setup(&f->ssl, &tfc.conf);
        mbedtls_ssl_set_bio(&f->ssl, f, tf_bio_send, tf_bio_recv, NULL);
    }
    uv_read_start((uv_stream_t *)f->client, tf_alloc, tf_on_read);
}

/* Starts a scripted TLS peer; its xmpps:// address goes to service[SERVICE_LEN]. */
static tls_fake_t *tf_start(uv_loop_t *loop, tf_mode_t mode, const fake_step_t *steps,
                            char *service)
{
    tls_fake_t *f = calloc(1, sizeof(*f));
    struct sockaddr_in addr;
    struct sockaddr_storage bound;
    int namelen = sizeof(bound);
    f->mode = mode;
    f->steps = steps;
    mbedtls_ssl_init(&f->ssl);
    uv_tcp_init(loop, &f->listener);
    f->listener.data = f;
    f->open_handles = 1;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    uv_tcp_bind(&f->listener, (const struct sockaddr *)&addr, 0);
    uv_listen((uv_stream_t *)&f->listener, 8, tf_on_connection);
    uv_tcp_getsockname(&f->listener, (struct sockaddr *)&bound, &namelen);
    local_service(service, "xmpps", ntohs(((struct sockaddr_in *)&bound)->sin_port));
    return f;
}

static void tf_stop(tls_fake_t *f)
{
    f->stopping = 1;
    tf_close_client(f);
    uv_close((uv_handle_t *)&f->listener, tf_on_closed);
}

/* ---- broken handshakes from a scripted peer ---- */

/* Connects over direct TLS to a peer in `mode`; returns the CONNFAIL
 * condition (static copy) once the client is DISCONNECTED. */
static const char *broken_handshake(tf_mode_t mode)
{
    static const fake_step_t none[] = {{NULL, NULL, 0}};
    tenv_t e;
    char service[SERVICE_LEN];
    env_init(&e);
    tls_fake_t *f = tf_start(&e.loop, mode, none, service);
    uvx_conn_options_t o;
    opts_base(&o, srv_crt);
    const char *cond = login_fails(&e, service, &o);
    tf_stop(f);
    env_done(&e);
    return cond;
}

static void test_alert_in_handshake(void)
{
    CHECK_STR(broken_handshake(TF_ALERT), "tls-alert");
}

/* EOF inside a record the client already started to read: the
 * handshake cannot finish, and the condition says so. */
static void test_truncated_record(void)
{
    CHECK_STR(broken_handshake(TF_TRUNCATED), "tls-handshake-failed");
}

static void test_hangup_after_client_hello(void)
{
    CHECK_STR(broken_handshake(TF_DROP), "tls-handshake-failed");
}

/* ---- channel binding against the scripted TLS server ---- */

#define CB_NONCE "fyko+d2lbbFgONRv9qkxdawL" /* RFC 5802's client nonce */
#define NS_SASL_Q "xmlns='urn:ietf:params:xml:ns:xmpp-sasl'"

static void b64(const void *in, size_t len, char *out, size_t cap)
{
    size_t olen = 0;
    mbedtls_base64_encode((unsigned char *)out, cap, &olen, in, len);
    out[olen] = '\0';
}

/* The base64 text of the first <elem ...>TEXT</elem> in s, decoded. */
static int sasl_payload(const char *s, const char *elem, char *out, size_t cap)
{
    char open[32], close[32];
    size_t olen = 0;
    snprintf(open, sizeof(open), "<%s ", elem);
    snprintf(close, sizeof(close), "</%s>", elem);
    const char *a = strstr(s, open);
    const char *gt = a ? strchr(a, '>') : NULL;
    const char *end = gt ? strstr(gt, close) : NULL;
    if (end == NULL ||
        mbedtls_base64_decode((unsigned char *)out, cap - 1, &olen, (const unsigned char *)gt + 1,
                              (size_t)(end - gt - 1)) != 0)
        return 0;
    out[olen] = '\0';
    return 1;
}

typedef struct cb_case {
    const char *advertised; /* <sasl-channel-binding/> children, or NULL */
    const char *forced;     /* tls_channel_binding option */
    const char *mechs;      /* <mechanism/> elements offered */
    int plain_too;          /* let the client fall back to SCRAM-SHA-1 */
} cb_case_t;

/* Runs one SCRAM-SHA-1(-PLUS) exchange up to the client-final message,
 * which the server refuses; *f_out stays valid until tf_stop. */
static void cb_exchange(const cb_case_t *cc, char *auth, char *response, size_t cap,
                        tls_fake_t **f_out, tenv_t *e)
{
    static char features[1024], challenge[512];
    char first[128];
    snprintf(features, sizeof(features),
             FAKE_STREAM_HEADER "<stream:features><mechanisms " NS_SASL_Q ">%s</mechanisms>"
                                "%s%s%s</stream:features>",
             cc->mechs, cc->advertised ? "<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'>" : "",
             cc->advertised ? cc->advertised : "", cc->advertised ? "</sasl-channel-binding>" : "");
    snprintf(first, sizeof(first), "r=" CB_NONCE "3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096");
    char first64[256];
    b64(first, strlen(first), first64, sizeof(first64));
    snprintf(challenge, sizeof(challenge), "<challenge " NS_SASL_Q ">%s</challenge>", first64);
    const fake_step_t steps[] = {
        {"<stream:stream", features, 0},
        {"</auth>", challenge, 0},
        {"</response>", "<failure " NS_SASL_Q "><not-authorized/></failure>", 0},
        {NULL, NULL, 0},
    };
    static fake_step_t kept[4];
    memcpy(kept, steps, sizeof(kept));
    char service[SERVICE_LEN];
    env_init(e);
    tls_fake_t *f = tf_start(&e->loop, TF_TLS, kept, service);
    CHECK_INT(sasl_ctx_set_test_nonce(e->ctx, CB_NONCE), 0);
    const char *only[] = {"SCRAM-SHA-1-PLUS", cc->plain_too ? "SCRAM-SHA-1" : NULL, NULL};
    uvx_conn_options_t o;
    opts_base(&o, srv_crt);
    o.tls_channel_binding = cc->forced;
    o.mechanisms = only;
    login_fails(e, service, &o); /* the script refuses the client-final message */
    auth[0] = response[0] = '\0';
    CHECK(sasl_payload(f->plain, "auth", auth, cap));
    if (strstr(f->plain, "</response>"))
        CHECK(sasl_payload(f->plain, "response", response, cap));
    *f_out = f;
}

/* c= of the client-final message must be base64(gs2 header || data). */
static void check_cbind(const char *response, const char *gs2, const unsigned char *data,
                        size_t len)
{
    unsigned char input[128];
    char expect[256];
    size_t glen = strlen(gs2);
    memcpy(input, gs2, glen);
    memcpy(input + glen, data, len);
    strcpy(expect, "c=");
    b64(input, glen + len, expect + 2, sizeof(expect) - 2);
    strcat(expect, ",");
    CHECK(strncmp(response, expect, strlen(expect)) == 0);
    if (strncmp(response, expect, strlen(expect)) != 0)
        printf("# got %.60s\n# expected %s\n", response, expect);
}

static void cb_expect(const cb_case_t *cc, const char *type)
{
    tenv_t e;
    tls_fake_t *f;
    char auth[512], response[512], gs2[64];
    cb_exchange(cc, auth, response, sizeof(auth), &f, &e);
    snprintf(gs2, sizeof(gs2), "p=%s,,", type);
    CHECK(strncmp(auth, gs2, strlen(gs2)) == 0);
    CHECK(strstr(auth, ",,n=alice,r=" CB_NONCE) != NULL);
    CHECK(f->established && f->has_exporter);
    if (strcmp(type, "tls-unique") == 0) {
        check_cbind(response, gs2, f->unique, sizeof(f->unique));
    } else if (strcmp(type, "tls-exporter") == 0) {
        check_cbind(response, gs2, f->exporter, sizeof(f->exporter));
    } else {
        unsigned char digest[32]; /* ECDSA with SHA-256: the end point hash is SHA-256 */
        mbedtls_sha256_ret(tfc.cert.raw.p, tfc.cert.raw.len, digest, 0);
        check_cbind(response, gs2, digest, sizeof(digest));
    }
    tf_stop(f);
    env_done(&e);
}

#define MECHS_PLUS "<mechanism>SCRAM-SHA-1-PLUS</mechanism><mechanism>SCRAM-SHA-1</mechanism>"
#define CB_TYPE(t) "<channel-binding type='" t "'/>"

static void test_cb_server_end_point_advertised(void)
{
    cb_case_t cc = {CB_TYPE("tls-server-end-point") CB_TYPE("tls-exporter"), NULL, MECHS_PLUS, 0};
    cb_expect(&cc, "tls-server-end-point");
}

static void test_cb_exporter_advertised(void)
{
    cb_case_t cc = {CB_TYPE("x-unknown") CB_TYPE("tls-exporter") CB_TYPE("tls-unique"), NULL,
                    MECHS_PLUS, 0};
    cb_expect(&cc, "tls-exporter");
}

static void test_cb_unique_by_default(void)
{
    cb_case_t cc = {NULL, NULL, MECHS_PLUS, 0};
    cb_expect(&cc, "tls-unique");
}

static void test_cb_forced(void)
{
    cb_case_t exporter = {NULL, "tls-exporter", MECHS_PLUS, 0};
    cb_expect(&exporter, "tls-exporter");
    cb_case_t end_point = {CB_TYPE("tls-unique"), "tls-server-end-point", MECHS_PLUS, 0};
    cb_expect(&end_point, "tls-server-end-point");
}

/* Only types we cannot compute advertised: no -PLUS; plain SCRAM says
 * "n" (XEP-0440: no common type), not "y". */
static void test_cb_no_common_type(void)
{
    tenv_t e;
    tls_fake_t *f;
    char auth[512], response[512];
    cb_case_t cc = {CB_TYPE("x-unknown"), NULL, MECHS_PLUS, 1};
    cb_exchange(&cc, auth, response, sizeof(auth), &f, &e);
    CHECK(strstr(f->plain, "mechanism='SCRAM-SHA-1'") != NULL);
    CHECK(strstr(f->plain, "mechanism='SCRAM-SHA-1-PLUS'") == NULL);
    CHECK(strncmp(auth, "n,,n=alice,", 11) == 0);
    tf_stop(f);
    env_done(&e);
}

/* ---- SASL EXTERNAL with a client certificate ---- */

static void external_login(int with_cert)
{
    static const fake_step_t steps[] = {
        {"<stream:stream",
         FAKE_STREAM_HEADER "<stream:features><mechanisms " NS_SASL_Q
                            "><mechanism>EXTERNAL</mechanism></mechanisms></stream:features>",
         0},
        {"mechanism='EXTERNAL'", FAKE_SUCCESS, 0},
        {"<stream:stream", FAKE_STREAM_HEADER FAKE_FEATURES_BIND, 0},
        {"<bind", FAKE_BIND_RESULT, 0},
        {NULL, NULL, 0},
    };
    tenv_t e;
    char service[SERVICE_LEN];
    env_init(&e);
    tls_fake_t *f = tf_start(&e.loop, TF_TLS, steps, service);
    uvx_conn_options_t o;
    uvx_conn_options_init(&o); /* no allow_plain: EXTERNAL needs none */
    o.tls_cafile = srv_crt;
    o.tls_cert_file = with_cert ? cli_crt : NULL;
    o.tls_key_file = with_cert ? cli_key : NULL;
    CHECK(run_login(&e, service, &o));
    CHECK(e.c.connected); /* the script accepts EXTERNAL either way */
    CHECK_STR(uvx_sasl_mechanism(e.c.conn), "EXTERNAL");
    CHECK_INT(f->client_cert, with_cert);
    /* the authzid: the bare JID, since it differs from the authcid */
    CHECK(strstr(f->plain, "mechanism='EXTERNAL'>YWxpY2VAbG9jYWxob3N0</auth>") != NULL);
    tf_stop(f);
    env_done(&e);
}

static void test_external_client_cert(void)
{
    external_login(1);
    external_login(0); /* and the check sees the difference */
}

/* The right CA, the wrong name: the certificate is for localhost, the
 * JID's domain (SNI and the name checked) is another. Against the
 * scripted server (`scripted`) or the real one; returns 1 when the server
 * answered with its certificate at all (Prosody refuses an unknown SNI
 * with an alert instead). */
static int wrong_host_name(int scripted)
{
    static const fake_step_t none[] = {{NULL, NULL, 0}};
    tenv_t e;
    uvx_conn_options_t o;
    seen_cert_t seen = {0};
    tls_fake_t *f = NULL;
    char service[SERVICE_LEN];
    env_init(&e);
    opts_base(&o, scripted ? srv_crt : cafile);
    if (scripted)
        f = tf_start(&e.loop, TF_TLS, none, service);
    else
        snprintf(service, sizeof(service), "%s", tls_service);
    o.tls_verify_cb = verify_cb;
    o.tls_verify_ud = &seen;
    CHECK_INT(tclient_init(&e.c, e.ctx, service, &o), 0);
    CHECK_INT(tclient_connect(&e.c, "alice@other.test", "alicepass"), 0);
    CHECK(run_until(&e.loop, &e.c.disconnected, 1, 10000));
    CHECK(!e.c.connected);
    const char *cond = tclient_condition(&e.c, UVX_STATUS_CONNFAIL);
    int got_cert = seen.calls > 0;
    if (got_cert || scripted) {
        CHECK_STR(cond, "tls-cert-invalid");
        CHECK_INT(seen.calls, 1);
        CHECK_STR(seen.reason, "host name mismatch");
        CHECK_INT(seen.flags, MBEDTLS_X509_BADCERT_CN_MISMATCH); /* the chain itself is fine */
    } else {
        CHECK_STR(cond, "tls-alert");
    }
    if (f)
        tf_stop(f);
    env_done(&e);
    return got_cert;
}

static void test_wrong_host_name_scripted(void)
{
    wrong_host_name(1);
}

/* ---- host name and channel-binding types on the real server ---- */

static void test_wrong_host_name(void)
{
    if (!wrong_host_name(0))
        printf("# %s refused the unknown SNI with an alert\n", srv.kind);
}

typedef struct cb_login {
    int auths;
    char first_auth[256];
    int xep0440; /* the server's features carried <sasl-channel-binding/> */
} cb_login_t;

static void cb_on_out(uvx_conn_t *conn, const char *data, size_t len, void *ud)
{
    cb_login_t *l = ud;
    char text[4096];
    (void)conn;
    snprintf(text, sizeof(text), "%.*s", (int)len, data);
    const char *a = strstr(text, "<auth ");
    const char *gt = a ? strchr(a, '>') : NULL;
    const char *end = gt ? strstr(gt, "</auth>") : NULL;
    if (end && l->auths++ == 0)
        snprintf(l->first_auth, sizeof(l->first_auth), "%.*s", (int)(end - gt - 1), gt + 1);
}

static void cb_on_in(uvx_conn_t *conn, const char *data, size_t len, void *ud)
{
    cb_login_t *l = ud;
    (void)conn;
    if (memmem(data, len, "urn:xmpp:sasl-cb:0", 18))
        l->xep0440 = 1;
}

/* SCRAM-SHA-256-PLUS with `type` (NULL: automatic) on the real server:
 * 1 when the login succeeded. */
static int real_cb_login(const char *type, cb_login_t *l)
{
    tenv_t e;
    uvx_conn_options_t o;
    const char *only[] = {"SCRAM-SHA-256-PLUS", NULL};
    memset(l, 0, sizeof(*l));
    env_init(&e);
    opts_base(&o, cafile);
    o.tls_channel_binding = type;
    o.mechanisms = only;
    CHECK_INT(tclient_init(&e.c, e.ctx, tls_service, &o), 0);
    uvx_set_raw_hooks(e.c.conn, cb_on_in, cb_on_out, l);
    CHECK_INT(tclient_connect(&e.c, "alice@localhost", "alicepass"), 0);
    for (int i = 0; i < 500 && !e.c.connected && !e.c.disconnected; i++)
        run_for(&e.loop, 20);
    int ok = e.c.connected;
    env_done(&e);
    return ok;
}

/* What each server accepts, for real: tls-unique (Prosody 0.12, ejabberd
 * 23.01); tls-exporter and tls-server-end-point are sent correctly (see the
 * scripted-server cases) and refused by both. Neither advertises XEP-0440. */
static void test_real_server_binding_types(void)
{
    cb_login_t l;
    CHECK(real_cb_login(NULL, &l));
    CHECK(strncmp(l.first_auth, "cD10bHMtdW5pcXVlLCx", 19) == 0); /* "p=tls-unique,," */
    printf("# %s advertises XEP-0440 channel-binding types: %s\n", srv.kind,
           l.xep0440 ? "yes" : "no");
    CHECK(real_cb_login("tls-unique", &l));
    int exporter = real_cb_login("tls-exporter", &l);
    CHECK(strncmp(l.first_auth, "cD10bHMtZXhwb3J0ZXIsL", 21) == 0); /* "p=tls-exporter,," */
    int end_point = real_cb_login("tls-server-end-point", &l);
    CHECK(strncmp(l.first_auth, "cD10bHMtc2VydmVyLWVuZC1wb2ludCws", 32) == 0);
    printf("# %s: tls-exporter %s, tls-server-end-point %s\n", srv.kind,
           exporter ? "accepted" : "refused", end_point ? "accepted" : "refused");
    CHECK(!exporter);  /* as verified by hand: a server that starts taking it fails here, */
    CHECK(!end_point); /* which is the moment to extend this test */
}

int main(int argc, char **argv)
{
    const char *kind = argc > 1 ? argv[1] : "prosody";
    signal(SIGPIPE, SIG_IGN); /* peers here hang up on purpose; libuv leaves SIGPIPE to us */
    tap_run("handshake with non-TLS bytes -> CONNFAIL tls-*", test_garbage_handshake);
    tap_run("peer hangs up mid-handshake -> CONNFAIL tls-handshake-failed", test_dropped_handshake);
    tap_run("no STARTTLS offered, clear stream not allowed -> tls-required",
            test_no_starttls_offered);
    tap_run("server refuses STARTTLS -> CONNFAIL tls-failed", test_starttls_refused);
    if (make_certs() && tfc_init()) {
        tap_run("TLS alert in the handshake -> CONNFAIL tls-alert", test_alert_in_handshake);
        tap_run("truncated handshake record, then EOF -> CONNFAIL, no hang", test_truncated_record);
        tap_run("hang-up after the ClientHello -> CONNFAIL tls-handshake-failed",
                test_hangup_after_client_hello);
        tap_run("XEP-0440: the server's first computable type (tls-server-end-point)",
                test_cb_server_end_point_advertised);
        tap_run("XEP-0440: unknown type skipped, tls-exporter", test_cb_exporter_advertised);
        tap_run("no XEP-0440: tls-unique", test_cb_unique_by_default);
        tap_run("tls_channel_binding option forces the type", test_cb_forced);
        tap_run("XEP-0440 with no common type: plain SCRAM with 'n'", test_cb_no_common_type);
        tap_run("SASL EXTERNAL: the client certificate is presented", test_external_client_cert);
        tap_run("right CA, wrong host name -> CONNFAIL tls-cert-invalid (scripted server)",
                test_wrong_host_name_scripted);
    } else {
        tap_skip("scripted TLS server", "openssl could not make certificates");
    }
    tfc_free();
    remove_certs();
    if (!tserver_start(&srv, kind, NULL)) {
        tap_skip(kind, "server not available");
        return tap_done();
    }
    test_server_cert_path(&srv, cafile, sizeof(cafile));
    local_service(tls_service, "xmpps", srv.tls_port);
    local_service(c2s_service, "tcp", srv.c2s_port);
    tap_run("STARTTLS with the server's CA", test_starttls);
    tap_run("STARTTLS, unknown CA -> CONNFAIL tls-cert-invalid", test_starttls_untrusted);
    tap_run("tls_disabled: a clear stream on purpose", test_tls_disabled);
    tap_run("direct TLS with the server's CA", test_direct_tls_with_ca);
    tap_run("direct TLS, unknown CA -> CONNFAIL tls-cert-invalid", test_direct_tls_untrusted);
    tap_run("verify callback sees the certificate and decides", test_verify_callback);
    tap_run("tls_insecure accepts any certificate", test_insecure_option);
    tap_run("unreadable CA file -> CONNFAIL tls-bad-ca", test_bad_cafile);
    tap_run("1 000 messages over TLS", test_messages_over_tls);
    tap_run("right CA, wrong host name -> CONNFAIL tls-cert-invalid (or the server's alert)",
            test_wrong_host_name);
    tap_run("channel-binding types the server accepts", test_real_server_binding_types);
    test_server_stop(&srv);
    return tap_done();
}
