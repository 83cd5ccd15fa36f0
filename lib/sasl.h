/*
 * Private: SASL mechanisms behind one small vtable (sasl/ has one file per
 * mechanism), the per-context registry the core selects from, and the
 * per-login session negotiate.c drives.
 */
#ifndef UVX_SASL_H
#define UVX_SASL_H

#include <stddef.h>

#include "buf.h"
#include "uvxmpp.h"

/* Returned by start/challenge when the answer comes later through
 * sasl_resume() (e.g. PBKDF2 on the thread pool). */
#define SASL_PENDING UVX_SASL_PENDING

/* sasl_mech_t.flags: the mechanism sends a reusable secret, so it needs an
 * encrypted stream or allow_plain. */
#define SASL_CLEARTEXT 1u

typedef struct sasl_session sasl_session_t;
typedef struct sasl_entry sasl_entry_t;

typedef struct sasl_mech {
    const char *name;
    int priority;
    unsigned flags;
    const void *impl; /* the mechanism's constants (SCRAM: its hash) */
    /* 1 if it may be used for this session (e.g. ANONYMOUS needs no node). */
    int (*test)(const sasl_session_t *s);
    /* The initial response into `out` (raw bytes, the core base64-encodes
     * them); *has_response = 0 for none. 0, SASL_PENDING or an error. */
    int (*start)(sasl_session_t *s, buf_t *out, int *has_response);
    /* Answers a (decoded) challenge. 0, SASL_PENDING or an error (set
     * s->condition to say which). */
    int (*challenge)(sasl_session_t *s, const char *in, size_t len, buf_t *out);
    /* Checks the additional data of <success/> (decoded). 0 or an error. */
    int (*success)(sasl_session_t *s, const char *in, size_t len);
    /* The server refused (condition may be NULL). */
    void (*failure)(sasl_session_t *s, const char *condition);
    /* Frees s->state; must make any pending asynchronous work harmless. */
    void (*cleanup)(sasl_session_t *s);
} sasl_mech_t;

/* One registered mechanism: a built-in vtable, or the user adapter with the
 * user's definition. Entries are never freed while their context lives
 * (a replaced one is retired), so a login may keep pointing at one. */
struct sasl_entry {
    const sasl_mech_t *mech;
    const char *name;
    int priority;
    uvx_sasl_mechanism_t user; /* when mech == &sasl_user */
    char *name_copy;
    sasl_entry_t *retired_next;
};

/* Where an exchange stands. */
enum {
    SASL_IDLE,        /* no mechanism running */
    SASL_WAIT_START,  /* start() returned SASL_PENDING: no <auth/> yet */
    SASL_SENT,        /* <auth/> or <response/> sent, waiting for the server */
    SASL_WAIT_ANSWER, /* challenge() returned SASL_PENDING */
};

#define SASL_MAX_TRIED 32

struct sasl_session {
    uvx_conn_t *conn;
    const sasl_entry_t *entry; /* the mechanism in use, or NULL */
    const sasl_entry_t *last;  /* the one that ran before, for reports */
    const char *authzid;       /* bare JID of the login (owned: authzid_buf) */
    const char *authcid;       /* username, or NULL */
    const char *password;      /* password or token, or NULL */
    const char *domain;
    int has_node;           /* the JID has a node */
    int cleartext_ok;       /* encrypted stream or allow_plain */
    int server_offers_plus; /* the server offered this mechanism's -PLUS */
    void *state;            /* the mechanism's own */
    const char *condition;  /* why the mechanism failed (static string) */

    /* negotiate.c's bookkeeping */
    int stage;
    buf_t *sync_out; /* where uvx_sasl_respond() writes inside a hook */
    int sync_responded;
    int abort_requested; /* uvx_sasl_abort() inside a hook */
    const sasl_entry_t *tried[SASL_MAX_TRIED];
    int ntried;
    char *authzid_buf;

    /* SCRAM key cache: given to uvx_connect / learned by the last login */
    uvx_scram_keys_t *keys_given;
    uvx_scram_keys_t *keys_learned;
};

/* -PLUS: tls-unique channel binding, only where the transport has it */
extern const sasl_mech_t sasl_scram_sha512_plus;
extern const sasl_mech_t sasl_scram_sha384_plus;
extern const sasl_mech_t sasl_scram_sha256_plus;
extern const sasl_mech_t sasl_scram_sha1_plus;
extern const sasl_mech_t sasl_scram_sha512;
extern const sasl_mech_t sasl_scram_sha384;
extern const sasl_mech_t sasl_scram_sha256;
extern const sasl_mech_t sasl_scram_sha1;
extern const sasl_mech_t sasl_plain;
extern const sasl_mech_t sasl_oauthbearer;
extern const sasl_mech_t sasl_xoauth2;
extern const sasl_mech_t sasl_anonymous;
extern const sasl_mech_t sasl_external;
/* The adapter that runs a uvx_sasl_mechanism_t. */
extern const sasl_mech_t sasl_user;

/* The built-in mechanisms, highest priority first, NULL-terminated. */
extern const sasl_mech_t *const sasl_builtin[];

/* ---- registry (sasl/registry.c) ---- */

/* The context's registry and random generator, created on first use. */
typedef struct sasl_ctx sasl_ctx_t;
sasl_ctx_t *sasl_ctx_get(uvx_ctx_t *ctx);
void sasl_ctx_free(uvx_ctx_t *ctx);
/* The entries by priority, highest first; *n gets the count. */
sasl_entry_t *const *sasl_ctx_entries(uvx_ctx_t *ctx, size_t *n);
/* The entry named `name`, or NULL. */
const sasl_entry_t *sasl_ctx_find(uvx_ctx_t *ctx, const char *name);
/* Fills `out` with `len` bytes from the context's CTR-DRBG. 0 or error. */
int sasl_random(uvx_ctx_t *ctx, unsigned char *out, size_t len);
/* Counts PBKDF2 derivations queued on the context's connections (tests and
 * benches read it to tell a cached-key login from a full one). */
void sasl_ctx_count_pbkdf2(uvx_ctx_t *ctx);
unsigned long sasl_ctx_pbkdf2_count(uvx_ctx_t *ctx);
/* CPU-heavy work (PBKDF2) for the libuv thread pool, queued per context so
 * that at most one job fewer than the machine has cores runs at once (at
 * least one): the loop thread keeps a core for the connections' I/O instead
 * of waiting behind pool threads for scheduler slices. The others wait in
 * order. Like uv_queue_work(): `work` runs on a pool thread, then `done` on
 * the loop; req.data is the caller's. 0 or a libuv error. */
typedef struct sasl_work sasl_work_t;
typedef struct sasl_work_queue sasl_work_queue_t;
struct sasl_work {
    uv_work_t req; /* first: a uv_work_t * is also the sasl_work_t * */
    sasl_work_queue_t *queue;
    uv_work_cb work;
    uv_after_work_cb done;
    sasl_work_t *next; /* in the context's queue */
    int queued;        /* waiting there, not on the pool yet */
};
int sasl_queue_work(uvx_ctx_t *ctx, sasl_work_t *w, uv_work_cb work, uv_after_work_cb done);
/* Cancels a job: one still waiting gets done(UV_ECANCELED) before this
 * returns; one on the pool is uv_cancel()ed (done comes later, with
 * UV_ECANCELED if it had not started). */
void sasl_cancel_work(sasl_work_t *w);
/* Test and bench seam: at most `n` (>= 1) jobs of this context on the pool
 * at once, instead of one per core but one; waiting jobs start at once if
 * there is now room. 0, UVX_EINVAL (n < 1) or UVX_ENOMEM. */
int sasl_ctx_set_work_slots(uvx_ctx_t *ctx, int n);
/* For tests: jobs on the pool now, jobs waiting in the queue, and jobs
 * whose `work` has run (a cancelled one never counts; contrast
 * sasl_ctx_pbkdf2_count(), which counts every job queued). */
void sasl_ctx_work_counts(uvx_ctx_t *ctx, unsigned *running, unsigned *waiting, unsigned long *ran);
/* Test seam: SCRAM uses `nonce` (copied; NULL: the DRBG again) as its
 * client nonce, so the RFC 5802/7677 vectors can be replayed. */
int sasl_ctx_set_test_nonce(uvx_ctx_t *ctx, const char *nonce);
const char *sasl_ctx_test_nonce(uvx_ctx_t *ctx);

/* ---- called by mechanisms (lib/negotiate.c) ---- */

/* A SASL_PENDING answer is ready: sends it (the <auth/> initial response
 * or a <response/>). */
void sasl_resume(sasl_session_t *s, const char *data, size_t len);
/* A SASL_PENDING answer failed: aborts with AUTHFAIL `condition`. */
void sasl_resume_failed(sasl_session_t *s, const char *condition);

/* Keeps a copy of the SCRAM keys uvx_connect() was given (NULL: none).
 * 0, UVX_EINVAL or UVX_ENOMEM. */
int sasl_login_set_keys(uvx_conn_t *conn, const uvx_scram_keys_t *keys);

/* ---- helpers shared by mechanisms (sasl/registry.c) ---- */

/* 1 if `authzid` is just what `authcid`@`domain` implies (then mechanisms
 * leave it out, as Strophe and XEP-0178 do). */
int sasl_authzid_implied(const sasl_session_t *s);
/* Appends `s` with ',' and '=' escaped as =2C and =3D (RFC 5802 saslname). */
int sasl_append_saslname(buf_t *out, const char *s);

/* ---- SCRAM internals, exposed for the unit tests (sasl/scram.c) ---- */

/* Parsed server-first-message. Pointers point into the message. */
typedef struct scram_server_first {
    const char *nonce;
    size_t nonce_len;
    unsigned char salt[UVX_SCRAM_MAX_SALT * 2];
    size_t salt_len;
    unsigned long iterations;
} scram_server_first_t;
/* Parses and checks a server-first-message against our client nonce.
 * 0, or UVX_EAUTH with *condition set. */
int scram_parse_server_first(const char *msg, size_t len, const char *cnonce,
                             scram_server_first_t *out, const char **condition);
/* Parses a server-final-message into its decoded verifier (*vlen bytes).
 * 0, or UVX_EAUTH with *condition set. */
int scram_parse_server_final(const char *msg, size_t len, unsigned char *v, size_t vmax,
                             size_t *vlen, const char **condition);
/* SaltedPassword -> ClientKey and ServerKey with the named hash ("SHA-1"...):
 * the blocking PBKDF2 the thread pool runs. 0 or error. */
int scram_derive_keys(const char *hash, const char *password, const unsigned char *salt,
                      size_t salt_len, unsigned iterations, unsigned char *client_key,
                      unsigned char *server_key, size_t *key_len);

#endif
