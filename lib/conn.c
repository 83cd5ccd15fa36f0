/*
 * The connection: lifecycle (new / connect / disconnect / close / reset),
 * status reporting, and the bridge from transport bytes to the parser and
 * from parser events to negotiation and handlers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "parser.h"

static const char *const status_names[] = {
    "ERROR",       "CONNECTING",   "CONNFAIL",      "AUTHENTICATING", "AUTHFAIL",
    "CONNECTED",   "DISCONNECTED", "DISCONNECTING", "ATTACHED",       "REDIRECT",
    "CONNTIMEOUT", "BINDREQUIRED", "ATTACHFAIL",    "RECONNECTING",
};

const char *uvx_status_name(int status)
{
    if (status < 0 || status >= (int)(sizeof(status_names) / sizeof(status_names[0])))
        return "UNKNOWN";
    return status_names[status];
}

void uvx_conn_options_init(uvx_conn_options_t *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->connect_timeout_ms = 10000;
    opts->login_timeout_ms = 30000;
}

/* The schemes a service URL may start with, and what each selects. */
static const struct service_scheme {
    const char *name;
    const transport_vtable_t *tp;
    int port;
    int tls;
} service_schemes[] = {
    {"tcp", &transport_tcp, 5222, 0},    {"xmpps", &transport_tcp, 5223, 1},
    {"ws", &transport_websocket, 80, 0}, {"wss", &transport_websocket, 443, 1},
    {"http", &transport_bosh, 80, 0},    {"https", &transport_bosh, 443, 1},
};

/* Splits "scheme://host[:port][/path]" or a bare domain into the
 * transport, host, port and path. */
static int conn_parse_service(uvx_conn_t *conn, const char *service)
{
    const char *rest = service;
    const char *scheme_end = strstr(service, "://");
    conn->tp = &transport_tcp;
    conn->port = 5222;
    if (scheme_end) {
        size_t slen = (size_t)(scheme_end - service);
        const struct service_scheme *sc = NULL;
        for (size_t i = 0; i < sizeof(service_schemes) / sizeof(service_schemes[0]); i++)
            if (strlen(service_schemes[i].name) == slen &&
                strncmp(service, service_schemes[i].name, slen) == 0)
                sc = &service_schemes[i];
        if (sc == NULL)
            return UVX_ENOTSUP;
        conn->tp = sc->tp;
        conn->port = sc->port;
        conn->direct_tls = sc->tls;
        rest = scheme_end + 3;
    }
    size_t hlen = strcspn(rest, ":/");
    if (hlen == 0)
        return UVX_EINVAL;
    const char *after = rest + hlen;
    if (rest[0] == '[') { /* [IPv6]:port */
        const char *close = strchr(rest, ']');
        if (close == NULL)
            return UVX_EINVAL;
        hlen = (size_t)(close - rest - 1);
        rest++;
        after = close + 1;
    }
    conn->host = strndup(rest, hlen);
    if (conn->host == NULL)
        return UVX_ENOMEM;
    if (*after == ':') {
        char *end;
        long port = strtol(after + 1, &end, 10);
        if (end == after + 1 || port <= 0 || port > 65535 || (*end != '\0' && *end != '/'))
            return UVX_EINVAL;
        conn->port = (int)port;
        after = end;
    } else if (*after != '\0' && *after != '/') {
        return UVX_EINVAL;
    }
    conn->path = strdup(*after == '/' ? after : "/");
    return conn->path ? 0 : UVX_ENOMEM;
}

static int conn_copy_headers(uvx_conn_t *conn, const char *const *headers)
{
    size_t n = 0;
    while (headers[n])
        n++;
    conn->http_headers = calloc(n + 1, sizeof(char *));
    if (conn->http_headers == NULL)
        return UVX_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        /* a CR or LF would let a header smuggle another request line */
        if (strpbrk(headers[i], "\r\n") != NULL || strchr(headers[i], ':') == NULL)
            return UVX_EINVAL;
        if ((conn->http_headers[i] = strdup(headers[i])) == NULL)
            return UVX_ENOMEM;
    }
    return 0;
}

static void conn_free_strv(char **v)
{
    if (v == NULL)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

static int conn_copy_mechanisms(uvx_conn_t *conn, const char *const *mechs)
{
    size_t n = 0;
    while (mechs[n])
        n++;
    conn->mechanisms = calloc(n + 1, sizeof(char *));
    if (conn->mechanisms == NULL)
        return UVX_ENOMEM;
    for (size_t i = 0; i < n; i++)
        if ((conn->mechanisms[i] = strdup(mechs[i])) == NULL)
            return UVX_ENOMEM;
    return 0;
}

static void conn_free(uvx_conn_t *conn);
static void conn_free_proto_handlers(uvx_conn_t *conn);

static int conn_init_plugins(uvx_conn_t *conn)
{
    int n = 0;
    for (const ctx_plugin_t *p = conn->ctx->plugins; p; p = p->next)
        n++;
    if (n == 0)
        return 0;
    conn->plugin_data = calloc((size_t)n, sizeof(*conn->plugin_data));
    if (conn->plugin_data == NULL)
        return UVX_ENOMEM;
    for (const ctx_plugin_t *p = conn->ctx->plugins; p; p = p->next) {
        conn_plugin_data_t *d = &conn->plugin_data[conn->nplugins++];
        d->plugin = p;
        d->data = p->def.init ? p->def.init(conn, p->def.plugin_ud) : NULL;
    }
    return 0;
}

int uvx_conn_new(uvx_ctx_t *ctx, const char *service, const uvx_conn_options_t *opts,
                 uvx_conn_t **out)
{
    if (ctx == NULL || service == NULL || out == NULL)
        return UVX_EINVAL;
    *out = NULL;
    uvx_conn_options_t defaults;
    if (opts == NULL) {
        uvx_conn_options_init(&defaults);
        opts = &defaults;
    }
    uvx_conn_t *conn = calloc(1, sizeof(*conn));
    if (conn == NULL)
        return UVX_ENOMEM;
    conn->ctx = ctx;
    conn->state = ST_IDLE;
    conn->status = UVX_STATUS_DISCONNECTED;
    conn->connect_timeout_ms = opts->connect_timeout_ms ? opts->connect_timeout_ms : 10000;
    conn->login_timeout_ms = opts->login_timeout_ms ? opts->login_timeout_ms : 30000;
    conn->allow_plain = opts->allow_plain;
    conn->explicit_binding = opts->explicit_resource_binding;
    conn->limits.max_stanza_size = opts->max_stanza_size;
    conn->limits.max_depth = opts->max_depth;
    /* A per-connection prefix keeps ids unique across connections too. */
    snprintf(conn->id_prefix, sizeof(conn->id_prefix), "%08x",
             (unsigned)(uintptr_t)conn ^ (unsigned)uv_hrtime());
    ctx_conn_added(ctx); /* from here on conn_free() undoes it */

    int rc = 0;
    if ((conn->service = strdup(service)) == NULL)
        rc = UVX_ENOMEM;
    if (rc == 0)
        rc = conn_parse_service(conn, service);
    if (rc == 0 && opts->bind_address && (conn->bind_address = strdup(opts->bind_address)) == NULL)
        rc = UVX_ENOMEM;
    if (rc == 0 && opts->mechanisms)
        rc = conn_copy_mechanisms(conn, opts->mechanisms);
    if (rc == 0 && opts->http_headers)
        rc = conn_copy_headers(conn, opts->http_headers);
    conn->ws_ping_interval_ms = opts->ws_ping_interval_ms;
    conn->ws_pong_timeout_ms = opts->ws_pong_timeout_ms ? opts->ws_pong_timeout_ms : 10000;
    if (rc == 0 && (xstrdup_into(&conn->tls_cafile, opts->tls_cafile) ||
                    xstrdup_into(&conn->tls_cadir, opts->tls_cadir) ||
                    xstrdup_into(&conn->tls_cert_file, opts->tls_cert_file) ||
                    xstrdup_into(&conn->tls_key_file, opts->tls_key_file) ||
                    xstrdup_into(&conn->tls_channel_binding, opts->tls_channel_binding)))
        rc = UVX_ENOMEM;
    conn->tls_insecure = opts->tls_insecure;
    conn->tls_disabled = opts->tls_disabled;
    conn->tls_verify_cb = opts->tls_verify_cb;
    conn->tls_verify_ud = opts->tls_verify_ud;
    if (rc == 0)
        rc = handlers_init(conn);
    if (rc == 0)
        rc = conn->tp->init(conn);
    if (rc == 0 && conn->tp == &transport_bosh)
        rc = bosh_set_options(conn, opts);
    if (rc == 0)
        rc = conn_init_plugins(conn);
    if (rc != 0) {
        conn_free(conn);
        return rc;
    }
    *out = conn;
    return 0;
}

static void conn_clear_login(uvx_conn_t *conn)
{
    negotiate_cleanup(conn);
    free(conn->jid);
    if (conn->pass) {
        /* don't leave the password lying around in freed memory */
        memset(conn->pass, 0, strlen(conn->pass));
        free(conn->pass);
    }
    free(conn->authcid);
    free(conn->domain);
    free(conn->bound_jid);
    free(conn->stream_id);
    free(conn->route);
    free(conn->disconnect_reason);
    conn->jid = conn->pass = conn->authcid = conn->domain = NULL;
    conn->bound_jid = conn->stream_id = conn->route = conn->disconnect_reason = NULL;
    conn->authenticated = 0;
}

static void conn_free(uvx_conn_t *conn)
{
    for (int i = 0; i < conn->nplugins; i++) {
        const uvx_plugin_t *def = &conn->plugin_data[i].plugin->def;
        if (def->destroy)
            def->destroy(conn, conn->plugin_data[i].data);
    }
    free(conn->plugin_data);
    conn_unmark_dirty(conn);
    if (conn->tp && conn->transport)
        conn->tp->destroy(conn);
    handlers_free(conn);
    conn_clear_login(conn);
    if (conn->parser)
        uvx_parser_free(conn->parser);
    buf_free(&conn->outq);
    free(conn->outq_marks);
    conn_free_strv(conn->mechanisms);
    conn_free_strv(conn->http_headers);
    conn_free_proto_handlers(conn);
    free(conn->service);
    free(conn->host);
    free(conn->path);
    free(conn->bind_address);
    free(conn->tls_cafile);
    free(conn->tls_cadir);
    free(conn->tls_cert_file);
    free(conn->tls_key_file);
    free(conn->tls_channel_binding);
    uvx_ctx_t *ctx = conn->ctx;
    free(conn);
    ctx_conn_removed(ctx);
}

void uvx_conn_set_data(uvx_conn_t *conn, void *data)
{
    conn->user_data = data;
}

void *uvx_conn_get_data(const uvx_conn_t *conn)
{
    return conn->user_data;
}

uvx_ctx_t *uvx_conn_ctx(const uvx_conn_t *conn)
{
    return conn->ctx;
}

int uvx_conn_status(const uvx_conn_t *conn)
{
    return conn->status;
}

const char *uvx_conn_jid(const uvx_conn_t *conn)
{
    return conn->bound_jid ? conn->bound_jid : conn->jid;
}

const char *uvx_conn_stream_id(const uvx_conn_t *conn)
{
    return conn->stream_id;
}

int uvx_conn_authenticated(const uvx_conn_t *conn)
{
    return conn->authenticated;
}

int uvx_conn_secure(const uvx_conn_t *conn)
{
    return conn->secure;
}

void *uvx_plugin_data(const uvx_conn_t *conn, const char *name)
{
    for (int i = 0; i < conn->nplugins; i++)
        if (strcmp(conn->plugin_data[i].plugin->def.name, name) == 0)
            return conn->plugin_data[i].data;
    return NULL;
}

static void conn_stop_login_timer(uvx_conn_t *conn)
{
    conn_timer_free(conn, conn->login_timer);
    conn->login_timer = NULL;
}

void conn_change_status(uvx_conn_t *conn, int status, const char *condition, uvx_stanza_t *elem)
{
    if (conn->closing)
        return;
    if (status == UVX_STATUS_CONNECTED || status == UVX_STATUS_BINDREQUIRED)
        conn_stop_login_timer(conn); /* the login is done (or in the caller's hands) */
    conn->status = status;
    for (int i = 0; i < conn->nplugins; i++) {
        const uvx_plugin_t *def = &conn->plugin_data[i].plugin->def;
        if (def->status_changed)
            def->status_changed(conn, status, condition, conn->plugin_data[i].data);
        if (conn->closing)
            return;
    }
    if (conn->status_cb)
        conn->status_cb(conn, status, condition, elem, conn->status_ud);
}

/* ---- parser events ---- */

static void conn_on_stream_open(void *ud, uvx_stanza_t *root)
{
    negotiate_on_stream_open(ud, root);
}

static int conn_is_stream_element(const uvx_stanza_t *s)
{
    const char *ns = uvx_stanza_ns(s);
    /* Runs for every stanza: the first byte settles nearly all of them. */
    return ns && ns[0] == UVX_NS_STREAMS[0] && strcmp(ns, UVX_NS_STREAMS) == 0;
}

void conn_transport_stanza(uvx_conn_t *conn, uvx_stanza_t *stanza)
{
    if (conn->xml_in)
        conn->xml_in(conn, stanza, conn->xml_ud);
    if (conn->closing || conn->state >= ST_CLOSING)
        return;
    /* Once connected only stream-level elements (errors) concern negotiation. */
    if ((conn->state != ST_CONNECTED || conn_is_stream_element(stanza)) &&
        negotiate_on_stanza(conn, stanza))
        return;
    handlers_dispatch(conn, stanza);
}

static void conn_on_stanza(void *ud, uvx_stanza_t *stanza)
{
    uvx_conn_t *conn = ud;
    /* framed transports unwrap <open/>, <close/> and BOSH <body/> first */
    if (conn->tp->on_element && conn->tp->on_element(conn, stanza))
        return;
    conn_transport_stanza(conn, stanza);
}

void conn_transport_stream_open(uvx_conn_t *conn, uvx_stanza_t *elem)
{
    if (conn->closing || conn->state >= ST_CLOSING)
        return;
    negotiate_on_stream_open(conn, elem);
}

static void conn_on_stream_close(void *ud)
{
    uvx_conn_t *conn = ud;
    if (conn->state == ST_DISCONNECTING) {
        conn_do_disconnect(conn, conn->disconnect_reason);
        return;
    }
    /* The server ended the stream: answer in kind and go. */
    conn->paused = 0;
    conn->tp->close_stream(conn);
    conn_flush_now(conn);
    if (conn->state < ST_CONNECTED)
        conn_change_status(conn, UVX_STATUS_CONNFAIL, "connection-lost", NULL);
    conn_do_disconnect(conn, "connection-lost");
}

void conn_transport_stream_close(uvx_conn_t *conn)
{
    if (conn->closing || conn->state >= ST_CLOSING)
        return;
    conn_on_stream_close(conn);
}

static void conn_on_parse_error(void *ud, int err, const char *condition)
{
    uvx_conn_t *conn = ud;
    char cond[96];
    (void)err;
    /* Tell the server why we leave (RFC 6120 §4.9), then leave. */
    char err_xml[192];
    snprintf(err_xml, sizeof(err_xml),
             "<stream:error xmlns:stream='" UVX_NS_STREAMS "'><%s xmlns='" UVX_NS_STREAMS_ERR
             "'/></stream:error>",
             condition);
    conn->paused = 0;
    conn_queue_raw(conn, err_xml, strlen(err_xml));
    conn->tp->close_stream(conn);
    conn_flush_now(conn);
    snprintf(cond, sizeof(cond), "x-uvx-parsererror: %s", condition);
    conn_change_status(conn, conn->state < ST_CONNECTED ? UVX_STATUS_CONNFAIL : UVX_STATUS_ERROR,
                       cond, NULL);
    conn_do_disconnect(conn, cond);
}

static const uvx_parser_callbacks_t conn_parser_callbacks = {
    conn_on_stream_open,
    conn_on_stanza,
    conn_on_stream_close,
    conn_on_parse_error,
};

/* ---- transport events ---- */

/* What a framed transport's elements are parsed inside: the namespaces an
 * RFC 6120 stream declares, so stanzas and <stream:features/> read alike. */
static const char conn_primed_stream_tag[] =
    "<stream:stream xmlns='" UVX_NS_CLIENT "' xmlns:stream='" UVX_NS_STREAMS "'>";

void conn_transport_connected(uvx_conn_t *conn)
{
    if (conn->parser == NULL) {
        conn->parser = uvx_parser_new(&conn_parser_callbacks, conn, &conn->limits);
        if (conn->parser == NULL) {
            conn_change_status(conn, UVX_STATUS_CONNFAIL, "out-of-memory", NULL);
            conn_do_disconnect(conn, "out-of-memory");
            return;
        }
        parser_set_pool(conn->parser, conn->ctx->parser_pool);
    }
    int rc = 0;
    if (conn->tp->framed) /* whole elements from here on: see transport.h */
        rc = parser_prime(conn->parser, conn_primed_stream_tag, strlen(conn_primed_stream_tag));
    else
        uvx_parser_reset(conn->parser);
    conn->state = ST_STREAM;
    if (rc == 0)
        rc = conn->tp->open_stream(conn);
    if (rc == 0)
        rc = conn_flush_now(conn);
    if (rc != 0) {
        conn_change_status(conn, UVX_STATUS_CONNFAIL, "connection-lost", NULL);
        conn_do_disconnect(conn, "connection-lost");
    }
}

int conn_channel_binding(uvx_conn_t *conn, const char *type, unsigned char *out, size_t cap,
                         size_t *len)
{
    if (!conn->secure || conn->tp->channel_binding == NULL)
        return UVX_ENOTSUP;
    return conn->tp->channel_binding(conn, type, out, cap, len);
}

void conn_transport_tls_ready(uvx_conn_t *conn)
{
    /* RFC 6120 §5.4.3.3: a fresh stream over the encrypted connection */
    conn->state = ST_STREAM;
    uvx_parser_reset(conn->parser);
    if (conn->tp->open_stream(conn) == 0)
        conn_flush_now(conn);
}

void conn_transport_failed(uvx_conn_t *conn, const char *condition)
{
    if (conn->state >= ST_CLOSING)
        return;
    if (conn->state < ST_CONNECTED)
        conn_change_status(conn, UVX_STATUS_CONNFAIL, condition, NULL);
    conn_do_disconnect(conn, condition);
}

void conn_transport_data(uvx_conn_t *conn, const char *data, size_t len)
{
    if (conn->raw_in)
        conn->raw_in(conn, data, len, conn->raw_ud);
    if (conn->closing || conn->parser == NULL || conn->state >= ST_CLOSING)
        return;
    conn->in_feed = 1;
    uvx_parser_feed(conn->parser, data, len);
    conn->in_feed = 0;
}

void conn_transport_eof(uvx_conn_t *conn)
{
    if (conn->state == ST_DISCONNECTING) {
        conn_do_disconnect(conn, conn->disconnect_reason);
        return;
    }
    conn_transport_failed(conn, "connection-lost");
}

/* ---- teardown ---- */

static void conn_finish_disconnect(uvx_conn_t *conn)
{
    if (conn->state != ST_CLOSING)
        return;
    conn->state = ST_DISCONNECTED;
    char *reason = conn->disconnect_reason;
    conn->disconnect_reason = NULL;
    /* Strophe drops the handlers on disconnect; pending IQs learn of it. */
    handlers_clear(conn, 1);
    conn->authenticated = 0;
    conn_change_status(conn, UVX_STATUS_DISCONNECTED, reason, NULL);
    free(reason);
}

void conn_handle_closed(uvx_conn_t *conn)
{
    if (--conn->pending_closes > 0)
        return;
    if (conn->closing) {
        void (*cb)(uvx_conn_t *) = conn->close_cb;
        if (cb)
            cb(conn);
        conn_free(conn);
        return;
    }
    conn_finish_disconnect(conn);
}

static void conn_on_timer_closed(uv_handle_t *h)
{
    uvx_conn_t *conn = h->data;
    free(h);
    conn_handle_closed(conn);
}

uv_timer_t *conn_timer_new(uvx_conn_t *conn)
{
    uv_timer_t *t = malloc(sizeof(*t));
    if (t == NULL)
        return NULL;
    uv_timer_init(conn->ctx->loop, t);
    t->data = conn;
    return t;
}

void conn_timer_free(uvx_conn_t *conn, uv_timer_t *t)
{
    if (t == NULL)
        return;
    conn->pending_closes++;
    uv_close((uv_handle_t *)t, conn_on_timer_closed);
}

void conn_do_disconnect(uvx_conn_t *conn, const char *condition)
{
    if (conn->state >= ST_CLOSING || conn->closing)
        return;
    if (conn->disconnect_reason == NULL && condition != NULL)
        conn->disconnect_reason = strdup(condition);
    conn->state = ST_CLOSING;
    if (conn->parser)
        uvx_parser_stop(conn->parser);
    conn_timer_free(conn, conn->disconnect_timer);
    conn->disconnect_timer = NULL;
    conn_stop_login_timer(conn);
    negotiate_stop(conn); /* a queued PBKDF2 would only waste a pool slot */
    buf_reset(&conn->outq);
    conn_outq_taken(conn);
    conn_unmark_dirty(conn);
    conn->pending_closes++; /* hold: finish only after close() returns */
    conn->pending_closes += conn->tp->close(conn);
    conn_handle_closed(conn);
}

static void conn_on_disconnect_timeout(uv_timer_t *t)
{
    uvx_conn_t *conn = t->data;
    conn_change_status(conn, UVX_STATUS_CONNTIMEOUT, NULL, NULL);
    conn_do_disconnect(conn, conn->disconnect_reason);
}

static void conn_on_login_timeout(uv_timer_t *t)
{
    uvx_conn_t *conn = t->data;
    conn_change_status(conn, UVX_STATUS_CONNFAIL, "login-timeout", NULL);
    conn_do_disconnect(conn, "login-timeout");
}

int conn_arm_login_timer(uvx_conn_t *conn)
{
    if (conn->login_timer != NULL)
        return 0; /* the deadline already runs */
    if ((conn->login_timer = conn_timer_new(conn)) == NULL)
        return UVX_ENOMEM;
    uv_timer_start(conn->login_timer, conn_on_login_timeout, conn->login_timeout_ms, 0);
    return 0;
}

int uvx_disconnect(uvx_conn_t *conn, const char *reason)
{
    if (conn == NULL)
        return UVX_EINVAL;
    if (conn->closing || conn->state == ST_IDLE || conn->state >= ST_DISCONNECTING)
        return UVX_ESTATE;
    if (reason && conn->disconnect_reason == NULL)
        conn->disconnect_reason = strdup(reason);
    conn_change_status(conn, UVX_STATUS_DISCONNECTING, reason, NULL);
    if (conn->closing || conn->state >= ST_DISCONNECTING)
        return 0; /* the status callback closed us */
    if (conn->state == ST_CONNECTING) {
        conn_do_disconnect(conn, reason);
        return 0;
    }
    conn->paused = 0;
    if (conn->state == ST_CONNECTED) {
        /* framed transports have no stream to inherit jabber:client from */
        const char *unavailable = conn->tp->framed
                                      ? "<presence type='unavailable' xmlns='" UVX_NS_CLIENT "'/>"
                                      : "<presence type='unavailable'/>";
        conn_queue_raw(conn, unavailable, strlen(unavailable));
    }
    conn->tp->close_stream(conn);
    conn->state = ST_DISCONNECTING;
    conn_flush_now(conn);
    conn->disconnect_timer = conn_timer_new(conn);
    if (conn->disconnect_timer == NULL) {
        conn_do_disconnect(conn, reason);
        return 0;
    }
    uv_timer_start(conn->disconnect_timer, conn_on_disconnect_timeout,
                   conn->disconnection_timeout_ms, 0);
    return 0;
}

void uvx_conn_close(uvx_conn_t *conn, void (*close_cb)(uvx_conn_t *conn))
{
    if (conn == NULL || conn->closing)
        return;
    conn->closing = 1;
    conn->close_cb = close_cb;
    if (conn->parser)
        uvx_parser_stop(conn->parser);
    conn_unmark_dirty(conn);
    conn->pending_closes++; /* hold until every close is issued */
    conn_timer_free(conn, conn->disconnect_timer);
    conn->disconnect_timer = NULL;
    conn_stop_login_timer(conn);
    handlers_clear(conn, 0);
    if (conn->state != ST_IDLE && conn->state != ST_DISCONNECTED)
        conn->pending_closes += conn->tp->close(conn);
    conn_handle_closed(conn);
}

int uvx_connect(uvx_conn_t *conn, const char *jid, const char *pass, uvx_status_cb cb, void *ud,
                const uvx_connect_args_t *args)
{
    if (conn == NULL || jid == NULL)
        return UVX_EINVAL;
    if (conn->closing || (conn->state != ST_IDLE && conn->state != ST_DISCONNECTED))
        return UVX_ESTATE;
    char *node = NULL, *domain = NULL;
    if (uvx_jid_split(jid, &node, &domain, NULL) != 0)
        return UVX_EJID;
    conn_clear_login(conn);
    conn->jid = strdup(jid);
    conn->domain = domain;
    conn->pass = pass ? strdup(pass) : NULL;
    const char *authcid = args && args->authcid ? args->authcid : node;
    conn->authcid = authcid ? strdup(authcid) : NULL;
    conn->route = args && args->route ? strdup(args->route) : NULL;
    free(node);
    if (conn->jid == NULL || (pass && conn->pass == NULL) || (authcid && conn->authcid == NULL))
        return UVX_ENOMEM;
    if (args && args->scram_keys && sasl_login_set_keys(conn, args->scram_keys) != 0)
        return UVX_EINVAL;
    conn->disconnection_timeout_ms =
        args && args->disconnection_timeout_ms ? args->disconnection_timeout_ms : 3000;
    conn->bosh_wait = args ? args->wait : 0;
    conn->bosh_hold = args ? args->hold : 0;
    conn->status_cb = cb;
    conn->status_ud = ud;
    conn->secure = 0;
    conn->state = ST_CONNECTING;
    conn_stop_login_timer(conn);
    if (conn_arm_login_timer(conn) != 0)
        return UVX_ENOMEM;
    conn_change_status(conn, UVX_STATUS_CONNECTING, NULL, NULL);
    if (conn->closing || conn->state != ST_CONNECTING)
        return 0;
    int rc = conn->tp->connect(conn);
    if (rc != 0) /* reported like any failed connect: CONNFAIL, then DISCONNECTED */
        conn_transport_failed(conn, rc == UVX_ENOMEM ? "out-of-memory" : "host-unresolved");
    return 0;
}

int uvx_reset(uvx_conn_t *conn)
{
    if (conn == NULL)
        return UVX_EINVAL;
    if (conn->closing || (conn->state != ST_IDLE && conn->state != ST_DISCONNECTED))
        return UVX_ESTATE;
    handlers_clear(conn, 0);
    conn_clear_login(conn);
    buf_reset(&conn->outq);
    conn_outq_taken(conn);
    conn->paused = 0;
    conn->state = ST_IDLE;
    return 0;
}

void uvx_set_raw_hooks(uvx_conn_t *conn, uvx_raw_hook input, uvx_raw_hook output, void *ud)
{
    conn->raw_in = input;
    conn->raw_out = output;
    conn->raw_ud = ud;
}

void uvx_set_xml_hooks(uvx_conn_t *conn, uvx_xml_hook input, uvx_xml_hook output, void *ud)
{
    conn->xml_in = input;
    conn->xml_out = output;
    conn->xml_ud = ud;
}

/* ---- protocol error handlers (Strophe's addProtocolErrorHandler) ---- */

struct proto_error_handler {
    char *protocol;
    int status;
    void (*cb)(uvx_conn_t *conn, int status, void *ud);
    void *ud;
    struct proto_error_handler *next;
};

int uvx_add_protocol_error_handler(uvx_conn_t *conn, const char *protocol, int status,
                                   void (*cb)(uvx_conn_t *conn, int status, void *ud), void *ud)
{
    if (conn == NULL || protocol == NULL || cb == NULL)
        return UVX_EINVAL;
    for (struct proto_error_handler *h = conn->proto_error_handlers; h; h = h->next) {
        if (h->status == status && strcmp(h->protocol, protocol) == 0) {
            h->cb = cb;
            h->ud = ud;
            return 0;
        }
    }
    struct proto_error_handler *h = calloc(1, sizeof(*h));
    if (h == NULL || (h->protocol = strdup(protocol)) == NULL) {
        free(h);
        return UVX_ENOMEM;
    }
    h->status = status;
    h->cb = cb;
    h->ud = ud;
    h->next = conn->proto_error_handlers;
    conn->proto_error_handlers = h;
    return 0;
}

int conn_protocol_error(uvx_conn_t *conn, const char *protocol, int status)
{
    for (struct proto_error_handler *h = conn->proto_error_handlers; h; h = h->next) {
        if (h->status == status && strcmp(h->protocol, protocol) == 0) {
            h->cb(conn, status, h->ud);
            return 1;
        }
    }
    return 0;
}

static void conn_free_proto_handlers(uvx_conn_t *conn)
{
    struct proto_error_handler *h = conn->proto_error_handlers;
    while (h) {
        struct proto_error_handler *next = h->next;
        free(h->protocol);
        free(h);
        h = next;
    }
    conn->proto_error_handlers = NULL;
}
