/*
 * Private: the context and connection structs shared by lib/ and the
 * transports, and the entry points the transports call back into.
 */
#ifndef UVX_CONN_H
#define UVX_CONN_H

#include <stdint.h>

#include "buf.h"
#include "sasl.h"
#include "transport.h"
#include "uvxmpp.h"

#define CTX_READ_BUF_SIZE 65536

typedef struct ctx_plugin {
    uvx_plugin_t def;
    struct ctx_plugin *next;
} ctx_plugin_t;

struct uvx_ctx {
    uv_loop_t *loop;
    unsigned nconns;      /* connections not yet freed */
    int hooks_open;       /* prepare/check initialised (while nconns > 0) */
    int hooks_closing;    /* of them, how many are still closing */
    uv_prepare_t prepare; /* flushes queues before the loop blocks */
    uv_check_t check;     /* flushes what I/O callbacks queued */
    uvx_conn_t *dirty;    /* connections with bytes to flush */
    ctx_plugin_t *plugins;
    struct sasl_ctx *sasl;           /* SASL registry and DRBG (sasl/registry.c), lazily made */
    int read_busy;                   /* the shared read buffer is lent out */
    struct tls_shared *tls;          /* DRBG + TLS configurations, made on first use */
    struct parser_pool *parser_pool; /* libxml2 contexts lent to parsers (lib/parser.h) */
    char read_buf[CTX_READ_BUF_SIZE];
};

/* Where the negotiation stands (finer than the public status). */
typedef enum conn_state {
    ST_IDLE,        /* never connected, or reset */
    ST_CONNECTING,  /* transport connecting */
    ST_STREAM,      /* stream header sent, waiting for features */
    ST_STARTTLS,    /* <starttls/> sent, or the TLS handshake under way */
    ST_SASL,        /* <auth/> sent, exchanging challenges */
    ST_LEGACY_AUTH, /* XEP-0078 exchange */
    ST_BIND_WAIT,   /* BINDREQUIRED reported, waiting for uvx_bind() */
    ST_BINDING,     /* bind iq sent */
    ST_SESSION,     /* session iq sent */
    ST_CONNECTED,
    ST_DISCONNECTING, /* our stream close sent, waiting for the server's */
    ST_CLOSING,       /* transport handles closing */
    ST_DISCONNECTED,
} conn_state_t;

typedef struct handler_table handler_table_t;
typedef struct conn_plugin_data {
    const ctx_plugin_t *plugin;
    void *data;
} conn_plugin_data_t;

struct uvx_conn {
    uvx_ctx_t *ctx;
    void *user_data;
    const transport_vtable_t *tp;
    void *transport;

    /* service */
    char *service;
    char *host;
    int port;
    char *path; /* "/..." of ws://, wss://, http://, https:// ("/" if none) */

    /* options */
    char *bind_address;
    unsigned connect_timeout_ms;
    unsigned login_timeout_ms;
    int allow_plain;
    char **mechanisms; /* NULL-terminated copy or NULL */
    int explicit_binding;
    uvx_parser_limits_t limits;
    int direct_tls;      /* xmpps://, wss://, https:// */
    char **http_headers; /* NULL-terminated "Name: value" copies, or NULL */
    unsigned ws_ping_interval_ms, ws_pong_timeout_ms;
    unsigned bosh_wait, bosh_hold; /* uvx_connect_args_t's (0: defaults) */
    struct proto_error_handler *proto_error_handlers;
    char *tls_cafile, *tls_cadir, *tls_cert_file, *tls_key_file;
    int tls_insecure;
    int tls_disabled;
    uvx_tls_verify_cb tls_verify_cb;
    void *tls_verify_ud;
    char *tls_channel_binding; /* SCRAM-*-PLUS type, NULL: automatic */

    /* login */
    conn_state_t state;
    int status;
    char *jid;
    char *pass;
    char *authcid;
    char *domain;
    char *bound_jid;
    char *stream_id;
    char *route;
    unsigned disconnection_timeout_ms;
    uvx_status_cb status_cb;
    void *status_ud;
    int authenticated;
    int secure; /* the stream is encrypted */
    int do_session;
    char *disconnect_reason;

    /* SASL */
    sasl_session_t sasl;
    uvx_stanza_t *features; /* the features being negotiated (reference) */

    /* parsing */
    uvx_parser_t *parser;
    int in_feed;

    /* sending */
    buf_t outq;
    /* message_marks transports: where each queued element ends in outq */
    size_t *outq_marks;
    size_t noutq_marks, outq_marks_cap;
    int paused;
    int dirty;
    uvx_conn_t *dirty_next;
    uvx_conn_t **dirty_prev;
    size_t high_water;
    int above_high_water;
    void (*high_water_cb)(uvx_conn_t *, int, void *);
    void *high_water_ud;

    /* ids */
    uint64_t id_counter;
    char id_prefix[20];
    char id_buf[96];

    /* handlers, timed handlers, pending IQs */
    handler_table_t *handlers;

    /* hooks */
    uvx_raw_hook raw_in, raw_out;
    void *raw_ud;
    uvx_xml_hook xml_in, xml_out;
    void *xml_ud;

    /* plugins */
    conn_plugin_data_t *plugin_data;
    int nplugins;

    /* teardown */
    uv_timer_t *disconnect_timer;
    uv_timer_t *login_timer; /* from connect() until CONNECTED */
    int closing;             /* uvx_conn_close() called */
    int pending_closes;
    void (*close_cb)(uvx_conn_t *);
};

/* ---- called by transports ---- */
void conn_transport_connected(uvx_conn_t *conn);
/* The transport could not connect / lost the connection. */
void conn_transport_failed(uvx_conn_t *conn, const char *condition);
/* Bytes arrived (already decrypted/unframed). */
void conn_transport_data(uvx_conn_t *conn, const char *data, size_t len);
/* TLS is up after STARTTLS: the stream restarts. */
void conn_transport_tls_ready(uvx_conn_t *conn);
/* The peer closed its side (EOF). */
void conn_transport_eof(uvx_conn_t *conn);
/* A handle the connection owns finished closing. */
void conn_handle_closed(uvx_conn_t *conn);
/* Reports bytes written, for the raw output hook and back-pressure. */
void conn_transport_wrote(uvx_conn_t *conn);
/* framed transports: the server opened the stream (RFC 7395 <open/>, the
 * BOSH session creation response); `elem` is borrowed. */
void conn_transport_stream_open(uvx_conn_t *conn, uvx_stanza_t *elem);
/* framed transports: one stanza unwrapped from the framing (a child of a
 * BOSH <body/>); borrowed. Runs the xml input hook, negotiation and
 * handlers exactly as for a TCP stanza. */
void conn_transport_stanza(uvx_conn_t *conn, uvx_stanza_t *stanza);
/* framed transports: the server closed the stream (<close/>, terminate). */
void conn_transport_stream_close(uvx_conn_t *conn);
/* Calls the handler registered with uvx_add_protocol_error_handler() for
 * (protocol, status); 1 if there was one. */
int conn_protocol_error(uvx_conn_t *conn, const char *protocol, int status);
/* Starts the login deadline (login_timeout_ms → CONNFAIL "login-timeout")
 * unless it runs already: uvx_connect(), and a transport that logs in
 * again on its own (a WebSocket redirect). 0 or UVX_ENOMEM. */
int conn_arm_login_timer(uvx_conn_t *conn);
/* Drops the message marks (the transport took the whole queue). */
void conn_outq_taken(uvx_conn_t *conn);

/* transports/bosh.c: copies the BOSH options (called by uvx_conn_new()
 * after the transport's init, for http:// and https:// only). */
int bosh_set_options(uvx_conn_t *conn, const uvx_conn_options_t *opts);

/* ---- shared inside lib/ ---- */
void conn_change_status(uvx_conn_t *conn, int status, const char *condition, uvx_stanza_t *elem);
/* Tears the transport down and reports DISCONNECTED once it is closed. */
void conn_do_disconnect(uvx_conn_t *conn, const char *condition);
/* Serializes and queues a stanza the library itself sends. */
int conn_send_internal(uvx_conn_t *conn, const uvx_stanza_t *s);
int conn_queue_raw(uvx_conn_t *conn, const char *data, size_t len);
void conn_mark_dirty(uvx_conn_t *conn);
void conn_unmark_dirty(uvx_conn_t *conn);
int conn_flush_now(uvx_conn_t *conn);
uv_timer_t *conn_timer_new(uvx_conn_t *conn);
void conn_timer_free(uvx_conn_t *conn, uv_timer_t *t);

/* The transport's channel-binding data ("tls-unique"); 0 or UVX_ENOTSUP. */
int conn_channel_binding(uvx_conn_t *conn, const char *type, unsigned char *out, size_t cap,
                         size_t *len);

/* negotiate.c */
void negotiate_on_stream_open(uvx_conn_t *conn, uvx_stanza_t *root);
/* Returns 1 if the stanza was consumed by negotiation. */
int negotiate_on_stanza(uvx_conn_t *conn, uvx_stanza_t *stanza);
int negotiate_bind(uvx_conn_t *conn, const char *resource);
void negotiate_cleanup(uvx_conn_t *conn);
/* Ends the SASL mechanism in progress, if any (its queued PBKDF2 is
 * cancelled): the stream is gone. Learned keys stay readable. */
void negotiate_stop(uvx_conn_t *conn);
/* XEP-0440: the channel-binding types advertised in the current stream
 * features, in the server's order, into types[max] (borrowed from
 * conn->features). The count, or -1 when the server advertises none. */
int negotiate_cb_types(const uvx_conn_t *conn, const char **types, int max);

/* handlers.c */
int handlers_init(uvx_conn_t *conn);
void handlers_dispatch(uvx_conn_t *conn, uvx_stanza_t *stanza);
/* Starts user timed handlers (on authentication). */
void handlers_authenticated(uvx_conn_t *conn);
/* Drops every handler and timed handler (their timers close
 * asynchronously, counted in conn->pending_closes); pending IQs get
 * errb(NULL) when `notify`. */
void handlers_clear(uvx_conn_t *conn, int notify);
void handlers_free(uvx_conn_t *conn);
/* System handler (runs before authentication too). */
uvx_handler_t *handlers_add_system(uvx_conn_t *conn, uvx_handler_cb cb, void *ud, const char *ns,
                                   const char *name, const char *type, const char *id,
                                   const char *from);

/* ctx.c */
void ctx_conn_added(uvx_ctx_t *ctx);
void ctx_conn_removed(uvx_ctx_t *ctx);

/* Small helpers */
char *xstrdup(const char *s);
int xstrdup_into(char **dst, const char *s);

#endif
