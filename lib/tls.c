/*
 * TLS client sessions on mbedtls 2.28 memory BIOs. mbedtls asks for input
 * through tls_bio_recv, which reads from the ciphertext the transport fed
 * us (WANT_READ when there is none), and writes through tls_bio_send into
 * `out`, which the transport flushes to the socket. Nothing here blocks.
 */
#include "tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/md.h>
#include <mbedtls/pk.h>
#include <mbedtls/sha256.h>
#include <mbedtls/ssl.h>
/* ssl->handshake->extended_ms: whether the session has RFC 7627's
 * extended master secret, which RFC 9266 requires for tls-exporter on
 * TLS 1.2. 2.28 has no public accessor for it. */
#include <mbedtls/ssl_internal.h>
#include <mbedtls/x509_crt.h>

#define SYSTEM_CA_BUNDLE "/etc/ssl/certs/ca-certificates.crt"
#define TLS_EXPORTER_LABEL "EXPORTER-Channel-Binding"
#define TLS_EXPORTER_LEN 32

/* One mbedtls configuration per distinct set of trust/identity options. */
typedef struct tls_config {
    char *cafile, *cadir, *cert_file, *key_file;
    int insecure;
    mbedtls_ssl_config conf;
    mbedtls_x509_crt ca;
    mbedtls_x509_crt own_cert;
    mbedtls_pk_context own_key;
    /* The session inside mbedtls_ssl_handshake(): the export-keys callback
     * is per configuration and does not say which session it is for. A
     * context (and its configurations) belongs to one loop thread. */
    struct tls_session *handshaking;
    struct tls_config *next;
} tls_config_t;

struct tls_shared {
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    tls_config_t *configs;
};

struct tls_session {
    mbedtls_ssl_context ssl;
    tls_config_t *config;
    tls_callbacks_t cb;
    void *ud;
    int (*verify)(void *ud, const uvx_tls_cert_info_t *cert);
    void *verify_ud;
    int insecure;
    const char *in; /* ciphertext not yet consumed by mbedtls */
    size_t in_len;
    buf_t out;
    int established;
    int closed;
    const char *error;
    /* Channel bindings computed during the handshake, while the master
     * secret and the peer certificate are at hand. */
    unsigned char exporter[TLS_EXPORTER_LEN]; /* RFC 9266 tls-exporter */
    int has_exporter;
    unsigned char end_point[MBEDTLS_MD_MAX_SIZE]; /* RFC 5929 tls-server-end-point */
    size_t end_point_len;
};

tls_shared_t *tls_shared_new(void)
{
    tls_shared_t *sh = calloc(1, sizeof(*sh));
    if (sh == NULL)
        return NULL;
    mbedtls_entropy_init(&sh->entropy);
    mbedtls_ctr_drbg_init(&sh->drbg);
    static const char pers[] = "uvxmpp tls";
    if (mbedtls_ctr_drbg_seed(&sh->drbg, mbedtls_entropy_func, &sh->entropy,
                              (const unsigned char *)pers, sizeof(pers) - 1) != 0) {
        tls_shared_free(sh);
        return NULL;
    }
    return sh;
}

static void tls_config_free(tls_config_t *c)
{
    mbedtls_ssl_config_free(&c->conf);
    mbedtls_x509_crt_free(&c->ca);
    mbedtls_x509_crt_free(&c->own_cert);
    mbedtls_pk_free(&c->own_key);
    free(c->cafile);
    free(c->cadir);
    free(c->cert_file);
    free(c->key_file);
    free(c);
}

void tls_shared_free(tls_shared_t *sh)
{
    if (sh == NULL)
        return;
    while (sh->configs) {
        tls_config_t *next = sh->configs->next;
        tls_config_free(sh->configs);
        sh->configs = next;
    }
    mbedtls_ctr_drbg_free(&sh->drbg);
    mbedtls_entropy_free(&sh->entropy);
    free(sh);
}

static int str_eq(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

static int tls_config_matches(const tls_config_t *c, const tls_options_t *o)
{
    return c->insecure == o->insecure && str_eq(c->cafile, o->cafile) &&
           str_eq(c->cadir, o->cadir) && str_eq(c->cert_file, o->cert_file) &&
           str_eq(c->key_file, o->key_file);
}

static int dup_opt(char **dst, const char *s)
{
    return s && (*dst = strdup(s)) == NULL ? UVX_ENOMEM : 0;
}

/* RFC 9266 tls-exporter on TLS 1.2: the RFC 5705 exporter with label
 * "EXPORTER-Channel-Binding" and no context, i.e. PRF(master_secret,
 * label, client_random || server_random), 32 bytes. Only with the
 * extended master secret (RFC 9266 §3), else the value could be the same
 * on two connections (the triple handshake attack). */
static int tls_on_export_keys(void *p, const unsigned char *ms, const unsigned char *kb,
                              size_t maclen, size_t keylen, size_t ivlen,
                              const unsigned char client_random[32],
                              const unsigned char server_random[32], mbedtls_tls_prf_types prf)
{
    tls_config_t *c = p;
    tls_session_t *s = c->handshaking;
    unsigned char randoms[64];
    (void)kb;
    (void)maclen;
    (void)keylen;
    (void)ivlen;
    if (s == NULL)
        return 0;
    s->has_exporter = 0;
    if (s->ssl.handshake == NULL || !s->ssl.handshake->extended_ms)
        return 0;
    memcpy(randoms, client_random, 32);
    memcpy(randoms + 32, server_random, 32);
    if (mbedtls_ssl_tls_prf(prf, ms, 48, TLS_EXPORTER_LABEL, randoms, sizeof(randoms), s->exporter,
                            TLS_EXPORTER_LEN) == 0)
        s->has_exporter = 1;
    return 0;
}

/* Builds a configuration: TLS 1.2 at least, the trust anchors, our own
 * certificate if any. Verification is OPTIONAL at the mbedtls level so
 * that a failure can be shown to the caller's callback after the
 * handshake; tls_check_peer() then decides before any XMPP byte flows. */
static int tls_config_new(tls_shared_t *sh, const tls_options_t *o, tls_config_t **out,
                          const char **error)
{
    tls_config_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return UVX_ENOMEM;
    mbedtls_ssl_config_init(&c->conf);
    mbedtls_x509_crt_init(&c->ca);
    mbedtls_x509_crt_init(&c->own_cert);
    mbedtls_pk_init(&c->own_key);
    c->insecure = o->insecure;
    int rc = 0;
    if (dup_opt(&c->cafile, o->cafile) || dup_opt(&c->cadir, o->cadir) ||
        dup_opt(&c->cert_file, o->cert_file) || dup_opt(&c->key_file, o->key_file))
        rc = UVX_ENOMEM;
    if (rc == 0 &&
        mbedtls_ssl_config_defaults(&c->conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                    MBEDTLS_SSL_PRESET_DEFAULT) != 0)
        rc = UVX_ENOMEM;
    if (rc == 0 && !o->insecure) {
        int loaded = -1;
        if (o->cafile)
            loaded = mbedtls_x509_crt_parse_file(&c->ca, o->cafile);
        if (o->cadir && (o->cafile == NULL || loaded >= 0))
            loaded = mbedtls_x509_crt_parse_path(&c->ca, o->cadir);
        if (o->cafile == NULL && o->cadir == NULL)
            loaded = mbedtls_x509_crt_parse_file(&c->ca, SYSTEM_CA_BUNDLE);
        /* parse_file returns the count of certificates it skipped (> 0) when
         * some of a bundle did not parse; only a total failure is an error */
        if (loaded < 0 || c->ca.version == 0) {
            *error = "tls-bad-ca";
            rc = UVX_ETLS;
        }
    }
    if (rc == 0 && o->cert_file) {
        if (mbedtls_x509_crt_parse_file(&c->own_cert, o->cert_file) != 0 ||
            mbedtls_pk_parse_keyfile(&c->own_key, o->key_file ? o->key_file : o->cert_file, NULL) !=
                0 ||
            mbedtls_ssl_conf_own_cert(&c->conf, &c->own_cert, &c->own_key) != 0) {
            *error = "tls-bad-client-cert";
            rc = UVX_ETLS;
        }
    }
    if (rc != 0) {
        tls_config_free(c);
        return rc;
    }
    mbedtls_ssl_conf_min_version(&c->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                                 MBEDTLS_SSL_MINOR_VERSION_3); /* TLS 1.2 */
    mbedtls_ssl_conf_rng(&c->conf, mbedtls_ctr_drbg_random, &sh->drbg);
    mbedtls_ssl_conf_export_keys_ext_cb(&c->conf, tls_on_export_keys, c);
    mbedtls_ssl_conf_authmode(&c->conf,
                              o->insecure ? MBEDTLS_SSL_VERIFY_NONE : MBEDTLS_SSL_VERIFY_OPTIONAL);
    if (!o->insecure)
        mbedtls_ssl_conf_ca_chain(&c->conf, &c->ca, NULL);
    c->next = sh->configs;
    sh->configs = c;
    *out = c;
    return 0;
}

static int tls_bio_send(void *ctx, const unsigned char *buf, size_t len)
{
    tls_session_t *s = ctx;
    if (buf_append(&s->out, (const char *)buf, len) != 0)
        return MBEDTLS_ERR_SSL_ALLOC_FAILED;
    return (int)len;
}

static int tls_bio_recv(void *ctx, unsigned char *buf, size_t len)
{
    tls_session_t *s = ctx;
    if (s->in_len == 0)
        return MBEDTLS_ERR_SSL_WANT_READ;
    size_t n = len < s->in_len ? len : s->in_len;
    memcpy(buf, s->in, n);
    s->in += n;
    s->in_len -= n;
    return (int)n;
}

int tls_session_new(tls_shared_t *sh, const tls_options_t *opts, const char *hostname,
                    const tls_callbacks_t *cb, void *ud, tls_session_t **out, const char **error)
{
    tls_config_t *c = sh->configs;
    while (c && !tls_config_matches(c, opts))
        c = c->next;
    *error = NULL;
    if (c == NULL) {
        int rc = tls_config_new(sh, opts, &c, error);
        if (rc != 0)
            return rc;
    }
    tls_session_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return UVX_ENOMEM;
    mbedtls_ssl_init(&s->ssl);
    s->config = c;
    s->cb = *cb;
    s->ud = ud;
    s->verify = opts->verify;
    s->verify_ud = opts->verify_ud;
    s->insecure = opts->insecure;
    if (mbedtls_ssl_setup(&s->ssl, &c->conf) != 0 ||
        mbedtls_ssl_set_hostname(&s->ssl, hostname) != 0) {
        tls_session_free(s);
        return UVX_ENOMEM;
    }
    mbedtls_ssl_set_bio(&s->ssl, s, tls_bio_send, tls_bio_recv, NULL);
    *out = s;
    return 0;
}

void tls_session_free(tls_session_t *s)
{
    if (s == NULL)
        return;
    mbedtls_ssl_free(&s->ssl);
    buf_free(&s->out);
    free(s);
}

static const char *tls_condition_for(int ret)
{
    switch (ret) {
    case MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE:
        return "tls-alert";
    case MBEDTLS_ERR_X509_CERT_VERIFY_FAILED:
        return "tls-cert-invalid";
    case MBEDTLS_ERR_SSL_BAD_HS_PROTOCOL_VERSION:
    case MBEDTLS_ERR_SSL_NO_CIPHER_CHOSEN:
        return "tls-handshake-failed";
    default:
        return "tls-protocol-error";
    }
}

/* Why the flags say the certificate is bad, in a few words. */
static const char *tls_flags_reason(uint32_t flags)
{
    if (flags & MBEDTLS_X509_BADCERT_CN_MISMATCH)
        return "host name mismatch";
    if (flags & MBEDTLS_X509_BADCERT_EXPIRED)
        return "expired";
    if (flags & MBEDTLS_X509_BADCERT_FUTURE)
        return "not yet valid";
    if (flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED)
        return "not trusted";
    if (flags & MBEDTLS_X509_BADCERT_REVOKED)
        return "revoked";
    return "invalid";
}

/* Describes the peer certificate for the caller's verify callback. */
static int tls_ask_caller(tls_session_t *s, uint32_t flags)
{
    const mbedtls_x509_crt *crt = mbedtls_ssl_get_peer_cert(&s->ssl);
    if (crt == NULL || s->verify == NULL)
        return 0;
    char subject[512];
    char fingerprint[32 * 3];
    unsigned char digest[32];
    const char *sans[17];
    char san_store[16][256];
    int nsans = 0;
    if (mbedtls_x509_dn_gets(subject, sizeof(subject), &crt->subject) < 0)
        subject[0] = '\0';
    mbedtls_sha256_ret(crt->raw.p, crt->raw.len, digest, 0);
    for (int i = 0; i < 32; i++)
        snprintf(fingerprint + 3 * i, 4, "%02X%s", digest[i], i < 31 ? ":" : "");
    for (const mbedtls_x509_sequence *san = &crt->subject_alt_names; san && nsans < 16;
         san = san->next) {
        /* dNSName entries: context-specific tag 2 */
        if (san->buf.p == NULL || san->buf.tag != (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 2))
            continue;
        size_t n = san->buf.len < 255 ? san->buf.len : 255;
        memcpy(san_store[nsans], san->buf.p, n);
        san_store[nsans][n] = '\0';
        sans[nsans] = san_store[nsans];
        nsans++;
    }
    sans[nsans] = NULL;
    uvx_tls_cert_info_t info = {subject, sans, fingerprint, tls_flags_reason(flags), flags};
    return s->verify(s->verify_ud, &info) == 1;
}

/* After the handshake: the certificate must verify, or the caller must
 * accept it. */
static int tls_check_peer(tls_session_t *s)
{
    if (s->insecure)
        return 0;
    uint32_t flags = mbedtls_ssl_get_verify_result(&s->ssl);
    if (flags == 0 || tls_ask_caller(s, flags))
        return 0;
    s->error = "tls-cert-invalid";
    return UVX_ETLS;
}

/* RFC 5929 §4.1 tls-server-end-point: the hash of the server's DER
 * certificate, with the hash of its signature algorithm, SHA-256 when that
 * is MD5 or SHA-1. */
static void tls_keep_end_point(tls_session_t *s)
{
    const mbedtls_x509_crt *crt = mbedtls_ssl_get_peer_cert(&s->ssl);
    s->end_point_len = 0;
    if (crt == NULL)
        return;
    mbedtls_md_type_t md = crt->sig_md;
    if (md == MBEDTLS_MD_MD5 || md == MBEDTLS_MD_SHA1)
        md = MBEDTLS_MD_SHA256;
    const mbedtls_md_info_t *info = mbedtls_md_info_from_type(md);
    if (info == NULL || mbedtls_md(info, crt->raw.p, crt->raw.len, s->end_point) != 0)
        return; /* an unknown signature hash: no such binding */
    s->end_point_len = mbedtls_md_get_size(info);
}

static int tls_drive(tls_session_t *s)
{
    if (!s->established) {
        s->config->handshaking = s;
        int ret = mbedtls_ssl_handshake(&s->ssl);
        s->config->handshaking = NULL;
        if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE)
            return 0;
        if (ret != 0) {
            s->error = tls_condition_for(ret);
            return UVX_ETLS;
        }
        if (tls_check_peer(s) != 0)
            return UVX_ETLS;
        tls_keep_end_point(s);
        s->established = 1;
        if (s->cb.handshake_done)
            s->cb.handshake_done(s->ud);
    }
    char plain[16384];
    while (s->established && !s->closed) {
        int n = mbedtls_ssl_read(&s->ssl, (unsigned char *)plain, sizeof(plain));
        if (n > 0) {
            s->cb.plaintext(s->ud, plain, (size_t)n);
            continue;
        }
        if (n == MBEDTLS_ERR_SSL_WANT_READ || n == MBEDTLS_ERR_SSL_WANT_WRITE)
            return 0;
        if (n == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || n == 0) {
            s->closed = 1;
            return UVX_ECLOSED;
        }
        s->error = tls_condition_for(n);
        return UVX_ETLS;
    }
    return 0;
}

int tls_session_start(tls_session_t *s)
{
    return tls_drive(s);
}

int tls_session_input(tls_session_t *s, const char *data, size_t len)
{
    if (s->error)
        return UVX_ETLS;
    s->in = data;
    s->in_len = len;
    int rc = tls_drive(s);
    /* mbedtls buffers a partial record itself, so nothing is left over */
    s->in = NULL;
    s->in_len = 0;
    return rc;
}

int tls_session_write(tls_session_t *s, const char *data, size_t len)
{
    if (!s->established || s->error)
        return UVX_ESTATE;
    while (len > 0) {
        int n = mbedtls_ssl_write(&s->ssl, (const unsigned char *)data, len);
        if (n < 0) {
            s->error = tls_condition_for(n);
            return UVX_ETLS;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

int tls_session_close_notify(tls_session_t *s)
{
    if (!s->established)
        return 0;
    int ret = mbedtls_ssl_close_notify(&s->ssl);
    return ret == 0 || ret == MBEDTLS_ERR_SSL_WANT_WRITE ? 0 : UVX_ETLS;
}

buf_t *tls_session_out(tls_session_t *s)
{
    return &s->out;
}

int tls_session_established(const tls_session_t *s)
{
    return s->established;
}

int tls_session_tls_unique(const tls_session_t *s, unsigned char *out, size_t cap, size_t *len)
{
    /* mbedtls 2.28 has no API for it, but keeps the verify data (for
     * renegotiation) in public fields of the context. */
    size_t n = s->ssl.verify_data_len;
    if (!s->established || n == 0 || n > cap)
        return UVX_ENOTSUP;
    memcpy(out, s->ssl.own_verify_data, n);
    *len = n;
    return 0;
}

static int tls_copy_binding(const unsigned char *data, size_t n, unsigned char *out, size_t cap,
                            size_t *len)
{
    if (n == 0 || n > cap)
        return UVX_ENOTSUP;
    memcpy(out, data, n);
    *len = n;
    return 0;
}

int tls_session_channel_binding(const tls_session_t *s, const char *type, unsigned char *out,
                                size_t cap, size_t *len)
{
    if (s == NULL || type == NULL || !s->established)
        return UVX_ENOTSUP;
    if (strcmp(type, "tls-unique") == 0)
        return tls_session_tls_unique(s, out, cap, len);
    if (strcmp(type, "tls-exporter") == 0)
        return tls_copy_binding(s->exporter, s->has_exporter ? TLS_EXPORTER_LEN : 0, out, cap, len);
    if (strcmp(type, "tls-server-end-point") == 0)
        return tls_copy_binding(s->end_point, s->end_point_len, out, cap, len);
    return UVX_ENOTSUP;
}

const char *tls_session_error(const tls_session_t *s)
{
    return s->error ? s->error : "tls-protocol-error";
}
