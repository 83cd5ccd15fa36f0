/*
 * Private: SASL mechanisms behind one small vtable (sasl/ has one file per
 * mechanism) and the registry the core selects from.
 */
#ifndef UVX_SASL_H
#define UVX_SASL_H

#include <stddef.h>

#include "buf.h"
#include "uvxmpp.h"

/* Returned by start/challenge when the answer comes later through
 * conn_sasl_respond() (e.g. PBKDF2 on the thread pool). */
#define SASL_PENDING 1

typedef struct sasl_session {
    uvx_conn_t *conn;
    const char *authzid; /* JID to act as, or NULL (bare JID of the login) */
    const char *authcid; /* username */
    const char *password;
    const char *domain;
    void *state; /* the mechanism's own */
} sasl_session_t;

typedef struct sasl_mech {
    const char *name;
    int priority;
    /* 1 if it may be used for this session (e.g. ANONYMOUS needs no node). */
    int (*test)(const sasl_session_t *s);
    /* The initial response into `out` (raw bytes, the core base64-encodes
     * them); *has_response = 0 for none. 0, SASL_PENDING or an error. */
    int (*start)(sasl_session_t *s, buf_t *out, int *has_response);
    /* Answers a (decoded) challenge. 0, SASL_PENDING or an error. */
    int (*challenge)(sasl_session_t *s, const char *in, size_t len, buf_t *out);
    /* Checks the additional data of <success/> (decoded). 0 or an error. */
    int (*success)(sasl_session_t *s, const char *in, size_t len);
    void (*cleanup)(sasl_session_t *s);
} sasl_mech_t;

extern const sasl_mech_t sasl_plain;
extern const sasl_mech_t sasl_anonymous;

/* The built-in mechanisms, highest priority first, NULL-terminated. */
extern const sasl_mech_t *const sasl_builtin[];

#endif
