/*
 * SASL SCRAM-SHA-1/256/384/512 (RFC 5802, RFC 7677) and their -PLUS forms
 * with channel binding (RFC 5802 §6): tls-unique (RFC 5929),
 * tls-exporter (RFC 9266) or tls-server-end-point, as the server
 * advertises (XEP-0440) or the caller forces. The client
 * nonce comes from the context's CTR-DRBG; PBKDF2 runs on the libuv thread
 * pool so a thousand logins never stall the loop, or is skipped when the
 * caller passed keys that fit the server's salt and iteration count
 * (Strophe's scram_keys).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/base64.h>
#include <mbedtls/md.h>
#include <mbedtls/pkcs5.h>

#include "conn.h"

typedef struct scram_hash {
    const char *name; /* as in uvx_scram_keys_t.hash */
    mbedtls_md_type_t md;
    size_t len;
} scram_hash_t;

static const scram_hash_t scram_sha1 = {"SHA-1", MBEDTLS_MD_SHA1, 20};
static const scram_hash_t scram_sha256 = {"SHA-256", MBEDTLS_MD_SHA256, 32};
static const scram_hash_t scram_sha384 = {"SHA-384", MBEDTLS_MD_SHA384, 48};
static const scram_hash_t scram_sha512 = {"SHA-512", MBEDTLS_MD_SHA512, 64};

/* What a mechanism entry points at (sasl_mech_t.impl). */
typedef struct scram_variant {
    const scram_hash_t *hash;
    int plus; /* channel binding */
} scram_variant_t;

#define SCRAM_NONCE_BYTES 24 /* 32 base64 characters, no padding */
#define SCRAM_CB_MAX 64      /* tls-server-end-point with SHA-512 is the longest */

typedef struct scram_job scram_job_t;

typedef struct scram_state {
    const scram_hash_t *hash;
    char cnonce[SCRAM_NONCE_BYTES * 2];
    buf_t gs2;                      /* "n,," / "y,," / "p=tls-exporter,," / "n,a=...," */
    unsigned char cb[SCRAM_CB_MAX]; /* channel-binding data (-PLUS only) */
    size_t cb_len;
    buf_t auth_message; /* client-first-bare "," server-first "," final-without-proof */
    unsigned char server_signature[UVX_SCRAM_MAX_KEY];
    size_t final_off; /* where client-final-without-proof starts in it */
    int proof_sent;   /* client-final sent: the next message is server-final */
    int verified;     /* the server signature checked out */
    scram_job_t *job;
    uvx_scram_keys_t keys; /* what this login uses (derived or given) */
} scram_state_t;

/* A PBKDF2 on the thread pool. It owns copies of its inputs, so the
 * connection may go away meanwhile: then `s` is NULL (detached) and the
 * after-work callback only frees the job. */
struct scram_job {
    sasl_work_t work; /* through the context's queue: see sasl_queue_work() */
    sasl_session_t *s;
    const scram_hash_t *hash;
    char *password;
    unsigned char salt[UVX_SCRAM_MAX_SALT * 2];
    size_t salt_len;
    unsigned iterations;
    unsigned char client_key[UVX_SCRAM_MAX_KEY];
    unsigned char server_key[UVX_SCRAM_MAX_KEY];
    size_t key_len;
    int rc;
};

static const scram_hash_t *scram_hash_by_name(const char *name)
{
    static const scram_hash_t *const all[] = {&scram_sha1, &scram_sha256, &scram_sha384,
                                              &scram_sha512};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        if (strcmp(all[i]->name, name) == 0)
            return all[i];
    return NULL;
}

/* ---- crypto (mbedtls) ---- */

static int scram_hmac(const scram_hash_t *h, const unsigned char *key, size_t klen, const void *msg,
                      size_t mlen, unsigned char *out)
{
    return mbedtls_md_hmac(mbedtls_md_info_from_type(h->md), key, klen, msg, mlen, out) == 0
               ? 0
               : UVX_EAUTH;
}

int scram_derive_keys(const char *hash, const char *password, const unsigned char *salt,
                      size_t salt_len, unsigned iterations, unsigned char *client_key,
                      unsigned char *server_key, size_t *key_len)
{
    const scram_hash_t *h = scram_hash_by_name(hash);
    if (h == NULL || password == NULL)
        return UVX_EINVAL;
    unsigned char salted[UVX_SCRAM_MAX_KEY];
    mbedtls_md_context_t md;
    mbedtls_md_init(&md);
    int rc = mbedtls_md_setup(&md, mbedtls_md_info_from_type(h->md), 1);
    if (rc == 0)
        rc = mbedtls_pkcs5_pbkdf2_hmac(&md, (const unsigned char *)password, strlen(password), salt,
                                       salt_len, iterations, (uint32_t)h->len, salted);
    mbedtls_md_free(&md);
    rc = rc == 0 ? 0 : UVX_EAUTH;
    if (rc == 0)
        rc = scram_hmac(h, salted, h->len, "Client Key", 10, client_key);
    if (rc == 0)
        rc = scram_hmac(h, salted, h->len, "Server Key", 10, server_key);
    memset(salted, 0, sizeof(salted));
    *key_len = h->len;
    return rc;
}

static int scram_b64_append(buf_t *out, const unsigned char *data, size_t len)
{
    size_t need = 0;
    mbedtls_base64_encode(NULL, 0, &need, data, len);
    if (buf_reserve(out, need))
        return UVX_ENOMEM;
    size_t olen = 0;
    if (mbedtls_base64_encode((unsigned char *)out->data + out->len, out->cap - out->len, &olen,
                              data, len) != 0)
        return UVX_ENOMEM;
    out->len += olen;
    return 0;
}

/* Decodes base64 into out[max]; a value that is empty, malformed or too
 * long is an error. */
static int scram_b64_decode(const char *in, size_t len, unsigned char *out, size_t max,
                            size_t *olen)
{
    if (len == 0 || len % 4 != 0) /* RFC 4648 base64 with its padding */
        return UVX_EAUTH;
    for (size_t i = 0; i < len; i++) /* mbedtls skips whitespace; SCRAM allows none */
        if (in[i] == ' ' || in[i] == '\r' || in[i] == '\n' || in[i] == '\t')
            return UVX_EAUTH;
    if (mbedtls_base64_decode(out, max, olen, (const unsigned char *)in, len) != 0 || *olen == 0)
        return UVX_EAUTH;
    return 0;
}

/* ---- message parsing ---- */

/* The next "x=value" attribute at *p (up to end): returns its letter and
 * sets value/vlen, advancing past the following ',' if any. 0 on a bad
 * attribute. */
static int scram_next_attr(const char **p, const char *end, const char **value, size_t *vlen)
{
    const char *a = *p;
    if (end - a < 2 || a[1] != '=' ||
        !((a[0] >= 'a' && a[0] <= 'z') || (a[0] >= 'A' && a[0] <= 'Z')))
        return 0;
    const char *v = a + 2;
    const char *comma = memchr(v, ',', (size_t)(end - v));
    const char *vend = comma ? comma : end;
    *value = v;
    *vlen = (size_t)(vend - v);
    *p = comma ? comma + 1 : end;
    return a[0];
}

static int scram_parse_iterations(const char *v, size_t len, unsigned long *out)
{
    unsigned long n = 0;
    if (len == 0 || len > 10)
        return UVX_EAUTH;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return UVX_EAUTH;
        n = n * 10 + (unsigned long)(v[i] - '0');
    }
    *out = n;
    return 0;
}

static int scram_printable_nonce(const char *v, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (v[i] < 0x21 || v[i] > 0x7e || v[i] == ',')
            return 0;
    return 1;
}

int scram_parse_server_first(const char *msg, size_t len, const char *cnonce,
                             scram_server_first_t *out, const char **condition)
{
    const char *p = msg, *end = msg + len, *v;
    size_t vlen, clen = strlen(cnonce);
    *condition = "bad-challenge";
    if (memchr(msg, '\0', len) != NULL)
        return UVX_EAUTH;
    int attr = scram_next_attr(&p, end, &v, &vlen);
    if (attr == 'm') {
        *condition = "scram-extension"; /* a mandatory extension we don't know */
        return UVX_EAUTH;
    }
    if (attr != 'r' || !scram_printable_nonce(v, vlen))
        return UVX_EAUTH;
    if (vlen <= clen || memcmp(v, cnonce, clen) != 0) {
        *condition = "scram-nonce-mismatch";
        return UVX_EAUTH;
    }
    out->nonce = v;
    out->nonce_len = vlen;
    if (scram_next_attr(&p, end, &v, &vlen) != 's' ||
        scram_b64_decode(v, vlen, out->salt, sizeof(out->salt), &out->salt_len) != 0)
        return UVX_EAUTH;
    if (scram_next_attr(&p, end, &v, &vlen) != 'i' ||
        scram_parse_iterations(v, vlen, &out->iterations) != 0)
        return UVX_EAUTH;
    if (out->iterations < UVX_SCRAM_MIN_ITERATIONS || out->iterations > UVX_SCRAM_MAX_ITERATIONS) {
        *condition = "scram-iterations";
        return UVX_EAUTH;
    }
    /* Optional extensions may follow; each must at least look like one. */
    while (p < end)
        if (scram_next_attr(&p, end, &v, &vlen) == 0)
            return UVX_EAUTH;
    if (len > 0 && msg[len - 1] == ',')
        return UVX_EAUTH;
    *condition = NULL;
    return 0;
}

int scram_parse_server_final(const char *msg, size_t len, unsigned char *v, size_t vmax,
                             size_t *vlen, const char **condition)
{
    *condition = "server-signature-mismatch";
    if (len >= 2 && msg[0] == 'e' && msg[1] == '=') {
        *condition = "scram-server-error";
        return UVX_EAUTH;
    }
    /* Exactly "v=<base64>": anything after the verifier is refused. */
    if (len < 3 || msg[0] != 'v' || msg[1] != '=' || memchr(msg, '\0', len) != NULL ||
        memchr(msg, ',', len) != NULL)
        return UVX_EAUTH;
    if (scram_b64_decode(msg + 2, len - 2, v, vmax, vlen) != 0)
        return UVX_EAUTH;
    *condition = NULL;
    return 0;
}

/* ---- the exchange ---- */

static const scram_variant_t *scram_variant_of(const sasl_session_t *s)
{
    return s->entry->mech->impl;
}

static const scram_hash_t *scram_hash_of(const sasl_session_t *s)
{
    return scram_variant_of(s)->hash;
}

/* Our names for the types, so that a pick outlives the features stanza. */
static const char *scram_cb_known(const char *type)
{
    static const char *const known[] = {"tls-exporter", "tls-server-end-point", "tls-unique"};
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strcmp(known[i], type) == 0)
            return known[i];
    return NULL;
}

static const char *scram_try_type(const sasl_session_t *s, const char *type, unsigned char *out,
                                  size_t *len)
{
    const char *known = type ? scram_cb_known(type) : NULL;
    if (known && conn_channel_binding(s->conn, known, out, SCRAM_CB_MAX, len) == 0)
        return known;
    return NULL;
}

/* The channel-binding type for this login, with its data in out: the
 * caller's tls_channel_binding if set; else the first type the server
 * advertises (XEP-0440) that we can compute; else, when it advertises
 * none, tls-unique (what TLS 1.2 servers without XEP-0440 check). NULL
 * when there is none we can use (outside TLS, or no type in common). */
static const char *scram_binding(const sasl_session_t *s, unsigned char *out, size_t *len)
{
    const char *types[8];
    if (s->conn->tls_channel_binding)
        return scram_try_type(s, s->conn->tls_channel_binding, out, len);
    int n = negotiate_cb_types(s->conn, types, 8);
    for (int i = 0; i < n; i++) {
        const char *t = scram_try_type(s, types[i], out, len);
        if (t)
            return t;
    }
    return n > 0 ? NULL : scram_try_type(s, "tls-unique", out, len);
}

static int scram_keys_fit(const uvx_scram_keys_t *k, const scram_hash_t *h)
{
    return k != NULL && strcmp(k->hash, h->name) == 0 && k->key_len == h->len;
}

static int scram_test(const sasl_session_t *s);

/* 1 if a built-in -PLUS mechanism already ran on this stream. */
static int scram_plus_tried(const sasl_session_t *s)
{
    for (int i = 0; i < s->ntried; i++) {
        const sasl_mech_t *m = s->tried[i]->mech;
        if (m->test == scram_test && ((const scram_variant_t *)m->impl)->plus)
            return 1;
    }
    return 0;
}

static int scram_test(const sasl_session_t *s)
{
    unsigned char cb[SCRAM_CB_MAX];
    size_t cb_len = 0;
    if (s->authcid == NULL ||
        (s->password == NULL && !scram_keys_fit(s->keys_given, scram_hash_of(s))))
        return 0;
    if (!scram_variant_of(s)->plus)
        return 1;
    /* One -PLUS attempt per stream: after a failure Prosody 0.12 loses the
     * socket its tls-unique check reads (its handler's clean_clone drops
     * it) and never answers a second -PLUS <auth/>. Another hash with the
     * same password would not succeed anyway; plain SCRAM may still run. */
    if (scram_plus_tried(s))
        return 0;
    /* -PLUS only where we can bind: on TLS with a type the server takes. */
    return scram_binding(s, cb, &cb_len) != NULL;
}

/* The GS2 channel-binding flag (RFC 5802 §6): "p=<type>" for -PLUS
 * (st->cb gets the data; scram_binding picks the type); else "y" when we
 * could bind but the server offered no -PLUS, "n" otherwise. When we can
 * bind and the server offers -PLUS, the -PLUS twin ranks higher, so plain
 * SCRAM runs then only if the caller's `mechanisms` asked for it: "n"
 * keeps that login working. */
static int scram_gs2_flag(sasl_session_t *s, scram_state_t *st)
{
    unsigned char cb[SCRAM_CB_MAX];
    size_t cb_len = 0;
    if (scram_variant_of(s)->plus) {
        const char *type = scram_binding(s, st->cb, &st->cb_len);
        if (type == NULL) {
            s->condition = "channel-binding-unavailable";
            return UVX_ENOTSUP;
        }
        int rc = buf_append_str(&st->gs2, "p=");
        rc = rc ? rc : buf_append_str(&st->gs2, type);
        return rc ? rc : buf_append_str(&st->gs2, ",");
    }
    /* RFC 5802 §6: "y" = we could bind but the server offered no -PLUS
     * (a server that does support binding then knows the offer was
     * stripped); "n" = we cannot bind, or chose not to beside a -PLUS offer. */
    int can_bind = scram_binding(s, cb, &cb_len) != NULL;
    return buf_append_str(&st->gs2, can_bind && !s->server_offers_plus ? "y," : "n,");
}

static void scram_detach_job(scram_state_t *st)
{
    if (st->job == NULL)
        return;
    scram_job_t *job = st->job;
    st->job = NULL;
    job->s = NULL;
    sasl_cancel_work(&job->work); /* if it has not started; else it just finishes */
}

static void scram_cleanup(sasl_session_t *s)
{
    scram_state_t *st = s->state;
    if (st == NULL)
        return;
    scram_detach_job(st);
    buf_free(&st->gs2);
    buf_free(&st->auth_message);
    memset(st, 0, sizeof(*st));
    free(st);
    s->state = NULL;
}

static int scram_start(sasl_session_t *s, buf_t *out, int *has_response)
{
    unsigned char raw[SCRAM_NONCE_BYTES];
    size_t olen = 0;
    scram_state_t *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return UVX_ENOMEM;
    s->state = st;
    st->hash = scram_hash_of(s);
    const char *fixed = sasl_ctx_test_nonce(s->conn->ctx);
    int rc = 0;
    if (fixed) {
        snprintf(st->cnonce, sizeof(st->cnonce), "%s", fixed);
    } else {
        rc = sasl_random(s->conn->ctx, raw, sizeof(raw));
        if (rc == 0 && mbedtls_base64_encode((unsigned char *)st->cnonce, sizeof(st->cnonce), &olen,
                                             raw, sizeof(raw)) != 0)
            rc = UVX_EAUTH;
        memset(raw, 0, sizeof(raw));
    }
    rc = rc ? rc : scram_gs2_flag(s, st);
    if (rc == 0 && !sasl_authzid_implied(s)) {
        rc = buf_append_str(&st->gs2, "a=");
        rc = rc ? rc : sasl_append_saslname(&st->gs2, s->authzid);
    }
    rc = rc ? rc : buf_append_str(&st->gs2, ",");
    /* client-first-message-bare, kept as the start of AuthMessage */
    rc = rc ? rc : buf_append_str(&st->auth_message, "n=");
    rc = rc ? rc : sasl_append_saslname(&st->auth_message, s->authcid);
    rc = rc ? rc : buf_append_str(&st->auth_message, ",r=");
    rc = rc ? rc : buf_append_str(&st->auth_message, st->cnonce);
    rc = rc ? rc : buf_append(out, st->gs2.data, st->gs2.len);
    rc = rc ? rc : buf_append(out, st->auth_message.data, st->auth_message.len);
    *has_response = 1;
    return rc;
}

/* With the keys known: client-final-message into out, and the server
 * signature to expect. */
static int scram_client_final(sasl_session_t *s, scram_state_t *st, buf_t *out)
{
    const scram_hash_t *h = st->hash;
    unsigned char stored_key[UVX_SCRAM_MAX_KEY], signature[UVX_SCRAM_MAX_KEY];
    unsigned char proof[UVX_SCRAM_MAX_KEY];
    (void)s;
    if (mbedtls_md(mbedtls_md_info_from_type(h->md), st->keys.client_key, h->len, stored_key))
        return UVX_EAUTH;
    int rc =
        scram_hmac(h, stored_key, h->len, st->auth_message.data, st->auth_message.len, signature);
    rc = rc ? rc
            : scram_hmac(h, st->keys.server_key, h->len, st->auth_message.data,
                         st->auth_message.len, st->server_signature);
    for (size_t i = 0; i < h->len; i++)
        proof[i] = st->keys.client_key[i] ^ signature[i];
    /* AuthMessage ends with client-final-without-proof: reuse it. */
    rc = rc ? rc
            : buf_append(out, st->auth_message.data + st->final_off,
                         st->auth_message.len - st->final_off);
    rc = rc ? rc : buf_append_str(out, ",p=");
    rc = rc ? rc : scram_b64_append(out, proof, h->len);
    memset(stored_key, 0, sizeof(stored_key));
    memset(signature, 0, sizeof(signature));
    memset(proof, 0, sizeof(proof));
    if (rc == 0)
        st->proof_sent = 1;
    return rc;
}

static void scram_job_work(uv_work_t *req)
{
    scram_job_t *job = req->data;
    job->rc = scram_derive_keys(job->hash->name, job->password, job->salt, job->salt_len,
                                job->iterations, job->client_key, job->server_key, &job->key_len);
}

static void scram_job_free(scram_job_t *job)
{
    if (job->password) {
        memset(job->password, 0, strlen(job->password));
        free(job->password);
    }
    memset(job, 0, sizeof(*job));
    free(job);
}

static void scram_job_done(uv_work_t *req, int status)
{
    scram_job_t *job = req->data;
    sasl_session_t *s = job->s;
    if (s == NULL) { /* detached: the connection is gone or moved on */
        scram_job_free(job);
        return;
    }
    scram_state_t *st = s->state;
    st->job = NULL;
    int rc = status == 0 ? job->rc : UVX_EAUTH;
    if (rc == 0) {
        memcpy(st->keys.client_key, job->client_key, job->key_len);
        memcpy(st->keys.server_key, job->server_key, job->key_len);
    }
    scram_job_free(job);
    buf_t out = BUF_INIT;
    if (rc == 0)
        rc = scram_client_final(s, st, &out);
    if (rc == 0)
        sasl_resume(s, out.data, out.len);
    else
        sasl_resume_failed(s, "bad-challenge");
    if (out.data)
        memset(out.data, 0, out.len);
    buf_free(&out);
}

static int scram_queue_pbkdf2(sasl_session_t *s, scram_state_t *st)
{
    scram_job_t *job = calloc(1, sizeof(*job));
    if (job == NULL || (job->password = strdup(s->password)) == NULL) {
        free(job);
        return UVX_ENOMEM;
    }
    job->work.req.data = job;
    job->s = s;
    job->hash = st->hash;
    memcpy(job->salt, st->keys.salt, st->keys.salt_len);
    job->salt_len = st->keys.salt_len;
    job->iterations = st->keys.iterations;
    int rc = sasl_queue_work(s->conn->ctx, &job->work, scram_job_work, scram_job_done);
    if (rc != 0) {
        scram_job_free(job);
        return rc;
    }
    st->job = job;
    sasl_ctx_count_pbkdf2(s->conn->ctx);
    return SASL_PENDING;
}

/* c= is base64(gs2-header || channel-binding data); cb_len is 0 unless
 * -PLUS. */
static int scram_append_cbind_input(buf_t *out, const scram_state_t *st)
{
    buf_t input = BUF_INIT;
    int rc = buf_append(&input, st->gs2.data, st->gs2.len);
    rc = rc ? rc : buf_append(&input, (const char *)st->cb, st->cb_len);
    rc = rc ? rc : scram_b64_append(out, (const unsigned char *)input.data, input.len);
    buf_free(&input);
    return rc;
}

static int scram_on_server_first(sasl_session_t *s, scram_state_t *st, const char *in, size_t len,
                                 buf_t *out)
{
    scram_server_first_t sf;
    if (scram_parse_server_first(in, len, st->cnonce, &sf, &s->condition) != 0)
        return UVX_EAUTH;
    if (sf.salt_len > UVX_SCRAM_MAX_SALT) {
        s->condition = "bad-challenge";
        return UVX_EAUTH;
    }
    /* AuthMessage = client-first-bare "," server-first "," final-without-proof */
    int rc = buf_append_str(&st->auth_message, ",");
    rc = rc ? rc : buf_append(&st->auth_message, in, len);
    rc = rc ? rc : buf_append_str(&st->auth_message, ",");
    st->final_off = st->auth_message.len;
    rc = rc ? rc : buf_append_str(&st->auth_message, "c=");
    rc = rc ? rc : scram_append_cbind_input(&st->auth_message, st);
    rc = rc ? rc : buf_append_str(&st->auth_message, ",r=");
    rc = rc ? rc : buf_append(&st->auth_message, sf.nonce, sf.nonce_len);
    if (rc)
        return rc;
    uvx_scram_keys_t *k = &st->keys;
    snprintf(k->hash, sizeof(k->hash), "%s", st->hash->name);
    k->iterations = (unsigned)sf.iterations;
    k->salt_len = sf.salt_len;
    memcpy(k->salt, sf.salt, sf.salt_len);
    k->key_len = st->hash->len;
    const uvx_scram_keys_t *given = s->keys_given;
    if (scram_keys_fit(given, st->hash) && given->iterations == k->iterations &&
        given->salt_len == k->salt_len && memcmp(given->salt, k->salt, k->salt_len) == 0) {
        memcpy(k->client_key, given->client_key, k->key_len);
        memcpy(k->server_key, given->server_key, k->key_len);
        return scram_client_final(s, st, out); /* a few HMACs: no need for the pool */
    }
    if (s->password == NULL) {
        s->condition = "scram-keys-stale";
        return UVX_EAUTH;
    }
    return scram_queue_pbkdf2(s, st);
}

/* Checks v= against the expected server signature, in constant time. */
static int scram_verify(sasl_session_t *s, scram_state_t *st, const char *in, size_t len)
{
    unsigned char v[UVX_SCRAM_MAX_KEY * 2];
    size_t vlen = 0;
    if (!st->proof_sent) {
        s->condition = "server-signature-mismatch";
        return UVX_EAUTH;
    }
    if (scram_parse_server_final(in, len, v, sizeof(v), &vlen, &s->condition) != 0)
        return UVX_EAUTH;
    unsigned char diff = vlen != st->hash->len;
    for (size_t i = 0; i < st->hash->len && i < vlen; i++)
        diff |= (unsigned char)(v[i] ^ st->server_signature[i]);
    if (diff) {
        s->condition = "server-signature-mismatch";
        return UVX_EAUTH;
    }
    st->verified = 1;
    return 0;
}

static int scram_challenge(sasl_session_t *s, const char *in, size_t len, buf_t *out)
{
    scram_state_t *st = s->state;
    if (st == NULL || st->job != NULL || st->verified) {
        s->condition = "bad-challenge";
        return UVX_EAUTH;
    }
    if (!st->proof_sent)
        return scram_on_server_first(s, st, in, len, out);
    /* RFC 6120 §6.3.10 lets a server send server-final as a challenge and
     * then an empty <success/>; we answer with an empty response. */
    return scram_verify(s, st, in, len);
}

static int scram_success(sasl_session_t *s, const char *in, size_t len)
{
    scram_state_t *st = s->state;
    if (st == NULL) {
        s->condition = "server-signature-mismatch";
        return UVX_EAUTH;
    }
    if (!(st->verified && len == 0) && scram_verify(s, st, in, len) != 0)
        return UVX_EAUTH;
    /* The server proved it knows the keys: keep them for the caller. */
    if (s->keys_learned == NULL && (s->keys_learned = malloc(sizeof(uvx_scram_keys_t))) == NULL)
        return 0; /* the login stands; the cache is a nicety */
    *s->keys_learned = st->keys;
    return 0;
}

static const scram_variant_t scram_sha512_plain = {&scram_sha512, 0};
static const scram_variant_t scram_sha384_plain = {&scram_sha384, 0};
static const scram_variant_t scram_sha256_plain = {&scram_sha256, 0};
static const scram_variant_t scram_sha1_plain = {&scram_sha1, 0};
static const scram_variant_t scram_sha512_plus = {&scram_sha512, 1};
static const scram_variant_t scram_sha384_plus = {&scram_sha384, 1};
static const scram_variant_t scram_sha256_plus = {&scram_sha256, 1};
static const scram_variant_t scram_sha1_plus = {&scram_sha1, 1};

/* Each -PLUS ranks above every plain SCRAM: when both sides can bind, a
 * plain SCRAM login would only weaken the result. */
const sasl_mech_t sasl_scram_sha512_plus = {
    .name = "SCRAM-SHA-512-PLUS",
    .priority = 82,
    .impl = &scram_sha512_plus,
    .test = scram_test,
    .start = scram_start,
    .challenge = scram_challenge,
    .success = scram_success,
    .cleanup = scram_cleanup,
};
const sasl_mech_t sasl_scram_sha384_plus = {
    .name = "SCRAM-SHA-384-PLUS",
    .priority = 81,
    .impl = &scram_sha384_plus,
    .test = scram_test,
    .start = scram_start,
    .challenge = scram_challenge,
    .success = scram_success,
    .cleanup = scram_cleanup,
};
const sasl_mech_t sasl_scram_sha256_plus = {
    .name = "SCRAM-SHA-256-PLUS",
    .priority = 80,
    .impl = &scram_sha256_plus,
    .test = scram_test,
    .start = scram_start,
    .challenge = scram_challenge,
    .success = scram_success,
    .cleanup = scram_cleanup,
};
const sasl_mech_t sasl_scram_sha1_plus = {
    .name = "SCRAM-SHA-1-PLUS",
    .priority = 75,
    .impl = &scram_sha1_plus,
    .test = scram_test,
    .start = scram_start,
    .challenge = scram_challenge,
    .success = scram_success,
    .cleanup = scram_cleanup,
};
const sasl_mech_t sasl_scram_sha512 = {
    .name = "SCRAM-SHA-512",
    .priority = 72,
    .impl = &scram_sha512_plain,
    .test = scram_test,
    .start = scram_start,
    .challenge = scram_challenge,
    .success = scram_success,
    .cleanup = scram_cleanup,
};
const sasl_mech_t sasl_scram_sha384 = {
    .name = "SCRAM-SHA-384",
    .priority = 71,
    .impl = &scram_sha384_plain,
    .test = scram_test,
    .start = scram_start,
    .challenge = scram_challenge,
    .success = scram_success,
    .cleanup = scram_cleanup,
};
const sasl_mech_t sasl_scram_sha256 = {
    .name = "SCRAM-SHA-256",
    .priority = 70,
    .impl = &scram_sha256_plain,
    .test = scram_test,
    .start = scram_start,
    .challenge = scram_challenge,
    .success = scram_success,
    .cleanup = scram_cleanup,
};
const sasl_mech_t sasl_scram_sha1 = {
    .name = "SCRAM-SHA-1",
    .priority = 60,
    .impl = &scram_sha1_plain,
    .test = scram_test,
    .start = scram_start,
    .challenge = scram_challenge,
    .success = scram_success,
    .cleanup = scram_cleanup,
};
