/*
 * Private: what the two halves of the BOSH transport share. bosh.c is the
 * transport itself (request slots, responses, the vtable); bosh_session.c
 * is what surrounds it (options, the keepalive session store, attach,
 * restore and the uvx_bosh_* calls). The bytes are in bosh_http.h.
 */
#ifndef UVX_BOSH_H
#define UVX_BOSH_H

#include <stdint.h>

#include "bosh_http.h"
#include "conn.h"
#include "sock.h"

#define BOSH_MAX_SLOTS 4
#define BOSH_RID_LIMIT ((uint64_t)1 << 53)

typedef enum slot_timer_mode {
    TIMER_NONE,
    TIMER_RESPONSE, /* the request is out; no answer yet */
    TIMER_BACKOFF,  /* waiting to send it again */
    TIMER_FAILED,   /* a failure to handle outside the sock callback */
} slot_timer_mode_t;

typedef enum request_kind {
    REQ_NORMAL,
    REQ_CREATE,
    REQ_RESTART,
    REQ_TERMINATE,
} request_kind_t;

struct bosh_transport;

typedef struct bosh_slot {
    struct bosh_transport *t;
    sock_t *sock;
    int sock_ready; /* connected (TLS up for https) */
    bosh_http_reader_t reader;
    uv_timer_t *timer;
    slot_timer_mode_t timer_mode;
    int failed_status; /* TIMER_FAILED: the HTTP status (0: no answer) */
    /* the request this slot carries */
    int busy;
    request_kind_t kind;
    uint64_t rid;
    unsigned sends;
    int dead;   /* a later request was answered first */
    buf_t body; /* the <body/>, kept for resends */
    buf_t out;  /* HTTP bytes the sock has not taken yet */
} bosh_slot_t;

typedef struct bosh_transport {
    uvx_conn_t *conn;
    bosh_slot_t slots[BOSH_MAX_SLOTS];
    bosh_http_target_t target;
    char *cookie;
    int keepalive;
    char *session_file;
    uvx_bosh_store_t store;
    int have_store;
    int saved; /* the store holds saved_*: no need to write them again */
    uint64_t saved_rid, saved_next;
    unsigned saved_answered;
    void (*rid_hook)(uvx_conn_t *, uint64_t, void *);
    void *rid_ud;
    uvx_xml_hook body_in, body_out;
    void *body_ud;
    /* the session */
    char *sid;
    uint64_t next_rid;
    unsigned wait, hold, requests;
    int errors;        /* failed responses in a row */
    int create_wanted; /* open_stream() before the session exists */
    int create_sent;
    int restart_wanted; /* open_stream() after SASL */
    int terminate_wanted;
    int terminate_sent;
    int attaching; /* uvx_attach(): no session request */
    buf_t pending; /* stanzas taken from the core's queue, not sent yet */
    int pumping, pump_again;
    uint64_t last_send_ms; /* loop time of the last first send */
    int closed;            /* close() ran; nothing more goes out */
    /* empty polls, spaced as XEP-0124 §11/§12 ask (see bosh_poll_delay_ms) */
    uint64_t polling_ms;     /* the server's `polling`, at least a second */
    uint64_t poll_rid;       /* the last new request if it was an empty poll, else 0 */
    uint64_t poll_sent_ms;   /* loop time it went out */
    int poll_answered_empty; /* its answer carried no stanza */
    uv_timer_t *poll_timer;  /* a poll held back until it may go */
    int response_stanzas;    /* stanzas in the response being read */
    int response_bodies;     /* <body/> elements in it */
} bosh_transport_t;

static inline bosh_transport_t *bosh_of(const uvx_conn_t *conn)
{
    return conn->transport;
}

/* Whether `conn` runs over BOSH (and has its transport state). */
static inline int bosh_is(const uvx_conn_t *conn)
{
    return conn && conn->tp == &transport_bosh && conn->transport;
}

/* ---- bosh.c ---- */

/* Fills free slots with what is waiting, within the server's window. */
void bosh_pump(bosh_transport_t *t);
/* Forgets the session (not the options) for the next connect/attach. */
void bosh_reset_session(bosh_transport_t *t);
/* uvx_restore(): sends rids first .. next-1 again, empty, except those
 * whose bit (rid - first) is set in `answered`; new requests go on from
 * `next`. Rids that do not fit in the window are given up. */
void bosh_resend(bosh_transport_t *t, uint64_t first, uint64_t next, unsigned answered);
/* The oldest rid whose response has not come (within the server's window
 * of `requests` rids; next_rid when none), and which rids after it did
 * come (bit rid - oldest), as uvx_bosh_session_t has them. */
uint64_t bosh_unanswered(const bosh_transport_t *t, unsigned *answered);

/* ---- bosh_session.c ---- */

/* With the keepalive option: caches {jid, sid, oldest unanswered rid,
 * wait, hold, requests, next rid, answered} once connected (when any of
 * the rids changed since the last save), or forgets them. */
void bosh_store_save(bosh_transport_t *t);
void bosh_store_clear(bosh_transport_t *t);

#endif
