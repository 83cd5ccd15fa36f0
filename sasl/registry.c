/*
 * The SASL registry: the built-in mechanisms and, per context, the set a
 * connection selects from (built-ins plus what the user registered), and
 * the context's CTR-DRBG for nonces.
 */
#include <stdlib.h>
#include <string.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>

#include "conn.h"

/* Highest priority first: Strophe 5's defaults, with the channel-binding
 * (-PLUS) SCRAM forms above every plain SCRAM. */
const sasl_mech_t *const sasl_builtin[] = {
    &sasl_scram_sha512_plus,
    &sasl_scram_sha384_plus,
    &sasl_scram_sha256_plus,
    &sasl_scram_sha1_plus,
    &sasl_scram_sha512,
    &sasl_scram_sha384,
    &sasl_scram_sha256,
    &sasl_scram_sha1,
    &sasl_plain,
    &sasl_oauthbearer,
    &sasl_xoauth2,
    &sasl_anonymous,
    &sasl_external,
    NULL,
};

struct sasl_ctx {
    sasl_entry_t **entries; /* by priority, highest first */
    size_t n, cap;
    sasl_entry_t *retired; /* replaced or removed: a login may still use one */
    unsigned long pbkdf2_count;
    sasl_work_queue_t *work; /* created with the first job */
    char *test_nonce;        /* tests replay RFC vectors with a fixed client nonce */
    int drbg_ready;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
};

static void work_queue_unref(sasl_work_queue_t *q);

static void entry_free(sasl_entry_t *e)
{
    free(e->name_copy);
    free(e);
}

/* Inserts after every entry of equal or higher priority (stable order). */
static int registry_insert(sasl_ctx_t *sc, sasl_entry_t *e)
{
    if (sc->n == sc->cap) {
        size_t cap = sc->cap ? sc->cap * 2 : 16;
        sasl_entry_t **grown = realloc(sc->entries, cap * sizeof(*grown));
        if (grown == NULL)
            return UVX_ENOMEM;
        sc->entries = grown;
        sc->cap = cap;
    }
    size_t at = 0;
    while (at < sc->n && sc->entries[at]->priority >= e->priority)
        at++;
    memmove(sc->entries + at + 1, sc->entries + at, (sc->n - at) * sizeof(*sc->entries));
    sc->entries[at] = e;
    sc->n++;
    return 0;
}

static void registry_retire(sasl_ctx_t *sc, size_t i)
{
    sasl_entry_t *e = sc->entries[i];
    memmove(sc->entries + i, sc->entries + i + 1, (sc->n - i - 1) * sizeof(*sc->entries));
    sc->n--;
    e->retired_next = sc->retired;
    sc->retired = e;
}

static int registry_index(const sasl_ctx_t *sc, const char *name)
{
    for (size_t i = 0; i < sc->n; i++)
        if (strcmp(sc->entries[i]->name, name) == 0)
            return (int)i;
    return -1;
}

sasl_ctx_t *sasl_ctx_get(uvx_ctx_t *ctx)
{
    if (ctx->sasl)
        return ctx->sasl;
    sasl_ctx_t *sc = calloc(1, sizeof(*sc));
    if (sc == NULL)
        return NULL;
    ctx->sasl = sc;
    for (int i = 0; sasl_builtin[i]; i++) {
        sasl_entry_t *e = calloc(1, sizeof(*e));
        if (e == NULL || registry_insert(sc, e) != 0) {
            free(e);
            sasl_ctx_free(ctx);
            return NULL;
        }
        e->mech = sasl_builtin[i];
        e->name = sasl_builtin[i]->name;
        e->priority = sasl_builtin[i]->priority;
    }
    return sc;
}

void sasl_ctx_free(uvx_ctx_t *ctx)
{
    sasl_ctx_t *sc = ctx->sasl;
    if (sc == NULL)
        return;
    for (size_t i = 0; i < sc->n; i++)
        entry_free(sc->entries[i]);
    while (sc->retired) {
        sasl_entry_t *next = sc->retired->retired_next;
        entry_free(sc->retired);
        sc->retired = next;
    }
    if (sc->drbg_ready) {
        mbedtls_ctr_drbg_free(&sc->drbg);
        mbedtls_entropy_free(&sc->entropy);
    }
    work_queue_unref(sc->work);
    free(sc->test_nonce);
    free(sc->entries);
    free(sc);
    ctx->sasl = NULL;
}

sasl_entry_t *const *sasl_ctx_entries(uvx_ctx_t *ctx, size_t *n)
{
    sasl_ctx_t *sc = sasl_ctx_get(ctx);
    *n = sc ? sc->n : 0;
    return sc ? sc->entries : NULL;
}

const sasl_entry_t *sasl_ctx_find(uvx_ctx_t *ctx, const char *name)
{
    sasl_ctx_t *sc = sasl_ctx_get(ctx);
    int i = sc ? registry_index(sc, name) : -1;
    return i >= 0 ? sc->entries[i] : NULL;
}

int sasl_random(uvx_ctx_t *ctx, unsigned char *out, size_t len)
{
    static const char personalization[] = "uvxmpp sasl nonce";
    sasl_ctx_t *sc = sasl_ctx_get(ctx);
    if (sc == NULL)
        return UVX_ENOMEM;
    if (!sc->drbg_ready) {
        mbedtls_entropy_init(&sc->entropy);
        mbedtls_ctr_drbg_init(&sc->drbg);
        if (mbedtls_ctr_drbg_seed(&sc->drbg, mbedtls_entropy_func, &sc->entropy,
                                  (const unsigned char *)personalization,
                                  sizeof(personalization) - 1) != 0) {
            mbedtls_ctr_drbg_free(&sc->drbg);
            mbedtls_entropy_free(&sc->entropy);
            return UVX_EAUTH;
        }
        sc->drbg_ready = 1;
    }
    return mbedtls_ctr_drbg_random(&sc->drbg, out, len) == 0 ? 0 : UVX_EAUTH;
}

void sasl_ctx_count_pbkdf2(uvx_ctx_t *ctx)
{
    sasl_ctx_t *sc = sasl_ctx_get(ctx);
    if (sc)
        sc->pbkdf2_count++;
}

/* ---- the work queue ---- */

/* A detached job may still run on the pool after uvx_ctx_free(): the queue
 * lives until its last job is done. */
struct sasl_work_queue {
    unsigned refs; /* the context's, and one per job on the pool */
    uv_loop_t *loop;
    unsigned slots;           /* how many may run at once */
    unsigned running;         /* on the pool now */
    sasl_work_t *head, *tail; /* waiting, oldest first */
    unsigned long ran;        /* jobs whose `work` ran (not cancelled): for tests */
};

static sasl_work_queue_t *work_queue_new(uv_loop_t *loop)
{
    sasl_work_queue_t *q = calloc(1, sizeof(*q));
    if (q == NULL)
        return NULL;
    q->refs = 1;
    q->loop = loop;
    /* One job per core but one: PBKDF2 never sleeps, and with a job on
     * every core the loop thread waits whole scheduler slices for a core. */
    unsigned cores = uv_available_parallelism();
    q->slots = cores > 1 ? cores - 1 : 1;
    return q;
}

static void work_queue_unref(sasl_work_queue_t *q)
{
    if (q != NULL && --q->refs == 0)
        free(q);
}

static void work_after(uv_work_t *req, int status);

static int work_submit(sasl_work_queue_t *q, sasl_work_t *w)
{
    int rc = uv_queue_work(q->loop, &w->req, w->work, work_after);
    if (rc == 0) {
        q->running++;
        q->refs++;
    }
    return rc;
}

/* Starts waiting jobs while there are free slots. */
static void work_pump(sasl_work_queue_t *q)
{
    while (q->head != NULL && q->running < q->slots) {
        sasl_work_t *w = q->head;
        q->head = w->next;
        if (q->head == NULL)
            q->tail = NULL;
        w->next = NULL;
        w->queued = 0;
        int rc = work_submit(q, w);
        if (rc != 0)
            w->done(&w->req, rc);
    }
}

static void work_after(uv_work_t *req, int status)
{
    sasl_work_t *w = (sasl_work_t *)req;
    sasl_work_queue_t *q = w->queue;
    uv_after_work_cb done = w->done;
    q->running--;
    if (status == 0)
        q->ran++;
    work_pump(q); /* before `done`, which may free w */
    done(req, status);
    work_queue_unref(q);
}

/* The context's queue, created on first use; NULL when out of memory. */
static sasl_work_queue_t *work_queue_of(uvx_ctx_t *ctx)
{
    sasl_ctx_t *sc = sasl_ctx_get(ctx);
    if (sc == NULL || (sc->work == NULL && (sc->work = work_queue_new(ctx->loop)) == NULL))
        return NULL;
    return sc->work;
}

int sasl_queue_work(uvx_ctx_t *ctx, sasl_work_t *w, uv_work_cb work, uv_after_work_cb done)
{
    sasl_work_queue_t *q = work_queue_of(ctx);
    if (q == NULL)
        return UVX_ENOMEM;
    w->queue = q;
    w->work = work;
    w->done = done;
    w->next = NULL;
    w->queued = 0;
    if (q->head == NULL && q->running < q->slots)
        return work_submit(q, w);
    w->queued = 1;
    if (q->tail != NULL)
        q->tail->next = w;
    else
        q->head = w;
    q->tail = w;
    return 0;
}

void sasl_cancel_work(sasl_work_t *w)
{
    if (!w->queued) {
        uv_cancel((uv_req_t *)&w->req);
        return;
    }
    sasl_work_queue_t *q = w->queue;
    sasl_work_t **pp = &q->head, *prev = NULL;
    while (*pp != w) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    *pp = w->next;
    if (q->tail == w)
        q->tail = prev;
    w->next = NULL;
    w->queued = 0;
    w->done(&w->req, UV_ECANCELED);
}

int sasl_ctx_set_work_slots(uvx_ctx_t *ctx, int n)
{
    if (n < 1)
        return UVX_EINVAL;
    sasl_work_queue_t *q = work_queue_of(ctx);
    if (q == NULL)
        return UVX_ENOMEM;
    q->slots = (unsigned)n;
    work_pump(q); /* more room: waiting jobs start now */
    return 0;
}

void sasl_ctx_work_counts(uvx_ctx_t *ctx, unsigned *running, unsigned *waiting, unsigned long *ran)
{
    const sasl_work_queue_t *q = ctx->sasl ? ctx->sasl->work : NULL;
    unsigned n = 0;
    for (const sasl_work_t *w = q ? q->head : NULL; w != NULL; w = w->next)
        n++;
    *running = q ? q->running : 0;
    *waiting = n;
    *ran = q ? q->ran : 0;
}

int sasl_ctx_set_test_nonce(uvx_ctx_t *ctx, const char *nonce)
{
    sasl_ctx_t *sc = sasl_ctx_get(ctx);
    if (sc == NULL)
        return UVX_ENOMEM;
    return xstrdup_into(&sc->test_nonce, nonce);
}

const char *sasl_ctx_test_nonce(uvx_ctx_t *ctx)
{
    return ctx->sasl ? ctx->sasl->test_nonce : NULL;
}

unsigned long sasl_ctx_pbkdf2_count(uvx_ctx_t *ctx)
{
    return ctx->sasl ? ctx->sasl->pbkdf2_count : 0;
}

/* ---- the public registry ---- */

int uvx_ctx_register_sasl_mechanism(uvx_ctx_t *ctx, const uvx_sasl_mechanism_t *mech)
{
    if (ctx == NULL || mech == NULL || mech->name == NULL || *mech->name == '\0' ||
        mech->start == NULL)
        return UVX_EINVAL;
    sasl_ctx_t *sc = sasl_ctx_get(ctx);
    sasl_entry_t *e = calloc(1, sizeof(*e));
    if (sc == NULL || e == NULL || (e->name_copy = strdup(mech->name)) == NULL) {
        free(e);
        return UVX_ENOMEM;
    }
    e->mech = &sasl_user;
    e->name = e->name_copy;
    e->priority = mech->priority;
    e->user = *mech;
    e->user.name = e->name_copy;
    int old = registry_index(sc, e->name);
    if (old >= 0)
        registry_retire(sc, (size_t)old);
    if (registry_insert(sc, e) != 0) {
        entry_free(e);
        return UVX_ENOMEM;
    }
    return 0;
}

int uvx_ctx_unregister_sasl_mechanism(uvx_ctx_t *ctx, const char *name)
{
    if (ctx == NULL || name == NULL)
        return UVX_EINVAL;
    sasl_ctx_t *sc = sasl_ctx_get(ctx);
    if (sc == NULL)
        return UVX_ENOMEM;
    int i = registry_index(sc, name);
    if (i < 0)
        return UVX_ENOTFOUND;
    registry_retire(sc, (size_t)i);
    return 0;
}

int uvx_ctx_sasl_mechanisms(uvx_ctx_t *ctx, const char **names, int max)
{
    if (ctx == NULL)
        return UVX_EINVAL;
    size_t n = 0;
    sasl_entry_t *const *entries = sasl_ctx_entries(ctx, &n);
    for (size_t i = 0; i < n && (int)i < max; i++)
        names[i] = entries[i]->name;
    return (int)n;
}

/* ---- helpers for mechanisms ---- */

int sasl_authzid_implied(const sasl_session_t *s)
{
    if (s->authzid == NULL)
        return 1;
    if (s->authcid == NULL || s->domain == NULL)
        return 0;
    size_t alen = strlen(s->authcid);
    return strncmp(s->authzid, s->authcid, alen) == 0 && s->authzid[alen] == '@' &&
           strcmp(s->authzid + alen + 1, s->domain) == 0;
}

int sasl_append_saslname(buf_t *out, const char *s)
{
    int rc = 0;
    for (; *s && rc == 0; s++) {
        if (*s == ',')
            rc = buf_append(out, "=2C", 3);
        else if (*s == '=')
            rc = buf_append(out, "=3D", 3);
        else
            rc = buf_append(out, s, 1);
    }
    return rc;
}
