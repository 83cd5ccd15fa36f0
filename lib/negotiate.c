/*
 * Stream negotiation (RFC 6120 §4-§7): stream header, features, SASL
 * through the mechanism table, stream restart, resource binding, the
 * RFC 3921 session, and XEP-0078 legacy auth when no SASL is offered.
 * Everything here runs from parser callbacks; it consumes the stanzas it
 * understands and lets the rest reach the handlers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/base64.h>
#include <mbedtls/sha1.h>

#include "conn.h"

#define NS_IQ_AUTH_FEATURE "http://jabber.org/features/iq-auth"

static void neg_fail(uvx_conn_t *conn, int status, const char *condition, uvx_stanza_t *elem)
{
    conn_change_status(conn, status, condition, elem);
    if (conn->state < ST_CLOSING) {
        /* Close our side of the stream politely before the socket goes. */
        conn->paused = 0;
        conn->tp->close_stream(conn);
        conn_flush_now(conn);
    }
    conn_do_disconnect(conn, condition);
}

static void neg_free_keys(uvx_scram_keys_t **k)
{
    if (*k)
        memset(*k, 0, sizeof(**k));
    free(*k);
    *k = NULL;
}

static void neg_mech_end(sasl_session_t *s);

void negotiate_cleanup(uvx_conn_t *conn)
{
    sasl_session_t *s = &conn->sasl;
    neg_mech_end(s);
    free(s->authzid_buf);
    neg_free_keys(&s->keys_given);
    neg_free_keys(&s->keys_learned);
    memset(s, 0, sizeof(*s));
    uvx_stanza_unref(conn->features);
    conn->features = NULL;
}

void negotiate_stop(uvx_conn_t *conn)
{
    neg_mech_end(&conn->sasl);
}

void negotiate_on_stream_open(uvx_conn_t *conn, uvx_stanza_t *root)
{
    const char *ns = uvx_stanza_ns(root);
    const char *name = uvx_stanza_name(root);
    /* A framed transport has checked its own opening element (<open/>,
     * the BOSH session response) before handing it on. */
    if (!conn->tp->framed && (name == NULL || strcmp(name, "stream") != 0 || ns == NULL ||
                              strcmp(ns, UVX_NS_STREAMS) != 0)) {
        neg_fail(conn, UVX_STATUS_CONNFAIL, "invalid-namespace", root);
        return;
    }
    xstrdup_into(&conn->stream_id, uvx_stanza_attr(root, "id"));
}

/* ---- SASL ---- */

#define SASL_ABORT "<abort xmlns='" UVX_NS_SASL "'/>"

static int neg_send_sasl(uvx_conn_t *conn, const char *element, const char *mech,
                         const char *payload, size_t payload_len, int has_payload)
{
    buf_t xml = BUF_INIT;
    int rc = buf_append_str(&xml, "<");
    rc = rc ? rc : buf_append_str(&xml, element);
    rc = rc ? rc : buf_append_str(&xml, " xmlns='" UVX_NS_SASL "'");
    if (mech) {
        rc = rc ? rc : buf_append_str(&xml, " mechanism='");
        rc = rc ? rc : buf_append_escaped(&xml, mech, strlen(mech), 1);
        rc = rc ? rc : buf_append_str(&xml, "'");
    }
    if (!has_payload) {
        rc = rc ? rc : buf_append_str(&xml, "/>");
    } else if (payload_len == 0) {
        rc = rc ? rc : buf_append_str(&xml, ">=</"); /* RFC 6120 §6.4.2: empty response */
        rc = rc ? rc : buf_append_str(&xml, element);
        rc = rc ? rc : buf_append_str(&xml, ">");
    } else {
        size_t b64len = 0;
        mbedtls_base64_encode(NULL, 0, &b64len, (const unsigned char *)payload, payload_len);
        rc = rc ? rc : buf_append_str(&xml, ">");
        rc = rc ? rc : buf_reserve(&xml, b64len + 32);
        if (rc == 0) {
            size_t olen = 0;
            mbedtls_base64_encode((unsigned char *)xml.data + xml.len, xml.cap - xml.len, &olen,
                                  (const unsigned char *)payload, payload_len);
            xml.len += olen;
        }
        rc = rc ? rc : buf_append_str(&xml, "</");
        rc = rc ? rc : buf_append_str(&xml, element);
        rc = rc ? rc : buf_append_str(&xml, ">");
    }
    if (rc == 0)
        rc = conn_queue_raw(conn, xml.data, xml.len);
    if (xml.data) /* it may hold a password */
        memset(xml.data, 0, xml.len);
    buf_free(&xml);
    return rc;
}

static void neg_wipe(buf_t *b)
{
    if (b->data)
        memset(b->data, 0, b->len);
    buf_free(b);
}

/* Decodes SASL element text ("" or "=" mean empty). */
static int neg_decode(uvx_stanza_t *elem, buf_t *out)
{
    const char *b64 = uvx_stanza_text(elem);
    size_t len = strlen(b64);
    if (len == 0 || (len == 1 && b64[0] == '='))
        return buf_reserve(out, 0);
    size_t olen = 0;
    if (buf_reserve(out, len))
        return UVX_ENOMEM;
    if (mbedtls_base64_decode((unsigned char *)out->data, out->cap, &olen,
                              (const unsigned char *)b64, len) != 0)
        return UVX_EAUTH;
    out->len = olen;
    out->data[olen] = '\0';
    return 0;
}

static int neg_mech_offered(uvx_stanza_t *mechs, const char *name)
{
    for (uvx_stanza_t *m = uvx_stanza_children(mechs); m; m = uvx_stanza_next(m)) {
        const char *n = uvx_stanza_name(m);
        if (n && strcmp(n, "mechanism") == 0 && strcmp(uvx_stanza_text(m), name) == 0)
            return 1;
    }
    return 0;
}

static int neg_plus_offered(uvx_stanza_t *mechs, const char *name)
{
    char plus[128];
    int n = snprintf(plus, sizeof(plus), "%s-PLUS", name);
    return n > 0 && (size_t)n < sizeof(plus) && neg_mech_offered(mechs, plus);
}

/* XEP-0440: <sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'> next to the
 * mechanisms lists the channel-binding types the server supports. */
int negotiate_cb_types(const uvx_conn_t *conn, const char **types, int max)
{
    uvx_stanza_t *cb = NULL;
    int n = 0;
    if (conn->features)
        cb = uvx_stanza_child_name_ns(conn->features, "sasl-channel-binding", "urn:xmpp:sasl-cb:0");
    if (cb == NULL)
        return -1;
    for (uvx_stanza_t *c = uvx_stanza_children(cb); c && n < max; c = uvx_stanza_next(c)) {
        const char *name = uvx_stanza_name(c);
        const char *type = uvx_stanza_attr(c, "type");
        if (name && strcmp(name, "channel-binding") == 0 && type && *type)
            types[n++] = type;
    }
    return n;
}

static int neg_tried(const sasl_session_t *s, const sasl_entry_t *e)
{
    for (int i = 0; i < s->ntried; i++)
        if (s->tried[i] == e)
            return 1;
    return 0;
}

static void neg_mark_tried(sasl_session_t *s)
{
    if (s->entry && !neg_tried(s, s->entry) && s->ntried < SASL_MAX_TRIED)
        s->tried[s->ntried++] = s->entry;
}

/* Ends the running mechanism (its cleanup detaches any pending work). */
static void neg_mech_end(sasl_session_t *s)
{
    if (s->entry && s->entry->mech->cleanup)
        s->entry->mech->cleanup(s);
    if (s->entry)
        s->last = s->entry;
    s->entry = NULL;
    s->state = NULL;
    s->stage = SASL_IDLE;
}

static void neg_fill_session(uvx_conn_t *conn)
{
    sasl_session_t *s = &conn->sasl;
    s->conn = conn;
    s->authcid = conn->authcid;
    s->password = conn->pass;
    s->domain = conn->domain;
    if (s->authzid_buf == NULL)
        s->authzid_buf = uvx_jid_bare(conn->jid);
    s->authzid = s->authzid_buf;
    char *node = uvx_jid_node(conn->jid);
    s->has_node = node != NULL;
    free(node);
    s->cleartext_ok = conn->secure || conn->allow_plain;
}

/* Offered, not yet tried, passing its test and the cleartext rule. */
static int neg_acceptable(sasl_session_t *s, uvx_stanza_t *mechs, const sasl_entry_t *e,
                          int *plain_blocked)
{
    if (e == NULL || neg_tried(s, e) || !neg_mech_offered(mechs, e->name))
        return 0;
    s->entry = e; /* tests may look at their entry */
    int ok = e->mech->test(s);
    s->entry = NULL;
    if (ok && (e->mech->flags & SASL_CLEARTEXT) && !s->cleartext_ok) {
        *plain_blocked = 1;
        return 0;
    }
    return ok;
}

/* The next acceptable mechanism: in the caller's order when given, else by
 * priority. */
static const sasl_entry_t *neg_pick_mech(uvx_conn_t *conn, uvx_stanza_t *mechs, int *plain_blocked)
{
    sasl_session_t *s = &conn->sasl;
    if (s->ntried >= SASL_MAX_TRIED)
        return NULL;
    if (conn->mechanisms) {
        for (char **name = conn->mechanisms; *name; name++) {
            const sasl_entry_t *e = sasl_ctx_find(conn->ctx, *name);
            if (neg_acceptable(s, mechs, e, plain_blocked))
                return e;
        }
        return NULL;
    }
    size_t n = 0;
    sasl_entry_t *const *entries = sasl_ctx_entries(conn->ctx, &n);
    for (size_t i = 0; i < n; i++)
        if (neg_acceptable(s, mechs, entries[i], plain_blocked))
            return entries[i];
    return NULL;
}

static void neg_legacy_auth_start(uvx_conn_t *conn);

static int neg_gone(const uvx_conn_t *conn)
{
    return conn->closing || conn->state >= ST_CLOSING;
}

/* Starts SASL with the next acceptable mechanism, skipping those whose
 * start refuses. Returns 0 when one started (or is preparing its initial
 * response); *plain_blocked tells whether a cleartext mechanism was offered
 * but not allowed. */
static int neg_sasl_start(uvx_conn_t *conn, uvx_stanza_t *mechs, int *plain_blocked)
{
    sasl_session_t *s = &conn->sasl;
    *plain_blocked = 0;
    neg_fill_session(conn);
    for (;;) {
        neg_mech_end(s);
        const sasl_entry_t *e = neg_pick_mech(conn, mechs, plain_blocked);
        if (e == NULL)
            return UVX_EAUTH;
        buf_t out = BUF_INIT;
        int has_response = 0;
        s->entry = e;
        s->server_offers_plus = neg_plus_offered(mechs, e->name);
        s->condition = NULL;
        s->sync_out = &out;
        s->sync_responded = 0;
        s->abort_requested = 0;
        conn->state = ST_SASL;
        int rc = e->mech->start(s, &out, &has_response);
        s->sync_out = NULL;
        if (neg_gone(conn)) { /* a user hook closed us */
            neg_wipe(&out);
            return 0;
        }
        if (rc < 0 || s->abort_requested) {
            neg_wipe(&out);
            neg_mark_tried(s);
            continue;
        }
        if (rc == SASL_PENDING && !s->sync_responded) {
            s->stage = SASL_WAIT_START;
            neg_wipe(&out);
            return 0;
        }
        s->stage = SASL_SENT;
        rc = neg_send_sasl(conn, "auth", e->name, out.data, out.len, has_response);
        neg_wipe(&out);
        return rc;
    }
}

/* RFC 6120 §5: STARTTLS whenever offered; no TLS at all only when the
 * caller allows plaintext. Returns 1 when negotiation continues elsewhere
 * (TLS starting, or failed). */
static int neg_tls_first(uvx_conn_t *conn, uvx_stanza_t *features)
{
    if (conn->secure)
        return 0;
    uvx_stanza_t *starttls = uvx_stanza_child_name_ns(features, "starttls", UVX_NS_TLS);
    if (starttls && !conn->tls_disabled && conn->tp->start_tls) {
        static const char req[] = "<starttls xmlns='" UVX_NS_TLS "'/>";
        conn->state = ST_STARTTLS;
        conn_queue_raw(conn, req, sizeof(req) - 1);
        conn_flush_now(conn);
        return 1;
    }
    if (!conn->allow_plain) {
        neg_fail(conn, UVX_STATUS_CONNFAIL, "tls-required", features);
        return 1;
    }
    return 0;
}

/* <proceed/>: hand the socket to TLS; the stream restarts once it is up
 * (conn_transport_tls_ready). <failure/>: the server gives up on us. */
static void neg_on_starttls_reply(uvx_conn_t *conn, uvx_stanza_t *elem, const char *name)
{
    if (strcmp(name, "proceed") == 0) {
        conn->tp->start_tls(conn);
        return;
    }
    neg_fail(conn, UVX_STATUS_CONNFAIL, "tls-failed", elem);
}

static void neg_on_features_unauthenticated(uvx_conn_t *conn, uvx_stanza_t *features)
{
    if (neg_tls_first(conn, features))
        return;
    uvx_stanza_t *mechs = uvx_stanza_child_name_ns(features, "mechanisms", UVX_NS_SASL);
    uvx_stanza_unref(conn->features);
    conn->features = uvx_stanza_ref(features);
    if (mechs) {
        conn_change_status(conn, UVX_STATUS_AUTHENTICATING, NULL, NULL);
        if (neg_gone(conn))
            return;
        int plain_blocked = 0;
        int rc = neg_sasl_start(conn, mechs, &plain_blocked);
        if (rc == 0 || neg_gone(conn))
            return;
        if (uvx_stanza_child_name_ns(features, "auth", NS_IQ_AUTH_FEATURE)) {
            neg_legacy_auth_start(conn);
            return;
        }
        neg_fail(conn, UVX_STATUS_CONNFAIL, plain_blocked ? "plain-not-allowed" : "no-auth-mech",
                 NULL);
        return;
    }
    /* No SASL at all: XEP-0078 legacy auth, as Strophe falls back to it. */
    conn_change_status(conn, UVX_STATUS_AUTHENTICATING, NULL, NULL);
    if (neg_gone(conn))
        return;
    neg_legacy_auth_start(conn);
}

static void neg_restart_stream(uvx_conn_t *conn)
{
    conn->state = ST_STREAM;
    if (!conn->tp->framed) /* a framed parser stays primed: see transport.h */
        uvx_parser_reset(conn->parser);
    conn->tp->open_stream(conn);
    conn_flush_now(conn);
}

static const char *neg_first_child_name(uvx_stanza_t *s)
{
    uvx_stanza_t *c = uvx_stanza_first_element(s);
    return c ? uvx_stanza_name(c) : NULL;
}

/* Gives up on the exchange: <abort/> (RFC 6120 §6.4.4) and AUTHFAIL. */
static void neg_sasl_abort_fail(uvx_conn_t *conn, const char *condition, uvx_stanza_t *elem)
{
    conn_queue_raw(conn, SASL_ABORT, sizeof(SASL_ABORT) - 1);
    neg_fail(conn, UVX_STATUS_AUTHFAIL, condition, elem);
}

/* The next mechanism after a failure, or AUTHFAIL with `condition`. */
static void neg_sasl_next(uvx_conn_t *conn, const char *condition, uvx_stanza_t *elem)
{
    neg_mark_tried(&conn->sasl);
    uvx_stanza_t *mechs =
        conn->features ? uvx_stanza_child_name_ns(conn->features, "mechanisms", UVX_NS_SASL) : NULL;
    int plain_blocked = 0;
    if (mechs && neg_sasl_start(conn, mechs, &plain_blocked) == 0)
        return;
    if (!neg_gone(conn))
        neg_fail(conn, UVX_STATUS_AUTHFAIL, condition, elem);
}

static void neg_on_challenge(uvx_conn_t *conn, uvx_stanza_t *elem)
{
    sasl_session_t *s = &conn->sasl;
    if (s->stage != SASL_SENT) { /* a challenge we did not ask for */
        neg_sasl_abort_fail(conn, "bad-challenge", elem);
        return;
    }
    buf_t data = BUF_INIT, out = BUF_INIT;
    int rc = neg_decode(elem, &data);
    if (rc == 0 && s->entry->mech->challenge == NULL)
        rc = UVX_EAUTH; /* a mechanism with no challenge step got one */
    if (rc == 0) {
        s->condition = NULL;
        s->sync_out = &out;
        s->sync_responded = 0;
        s->abort_requested = 0;
        rc = s->entry->mech->challenge(s, data.data ? data.data : "", data.len, &out);
        s->sync_out = NULL;
    } else {
        s->condition = "bad-challenge";
    }
    neg_wipe(&data);
    if (neg_gone(conn)) {
        neg_wipe(&out);
        return;
    }
    if (s->abort_requested) { /* the server's <failure/> leads to the next mechanism */
        conn_queue_raw(conn, SASL_ABORT, sizeof(SASL_ABORT) - 1);
    } else if (rc == SASL_PENDING && !s->sync_responded) {
        s->stage = SASL_WAIT_ANSWER;
    } else if (rc < 0 || neg_send_sasl(conn, "response", NULL, out.data, out.len, 1) != 0) {
        neg_sasl_abort_fail(conn, s->condition ? s->condition : "bad-challenge", elem);
    }
    neg_wipe(&out);
}

static void neg_on_success(uvx_conn_t *conn, uvx_stanza_t *elem)
{
    sasl_session_t *s = &conn->sasl;
    buf_t data = BUF_INIT;
    int rc = neg_decode(elem, &data);
    s->condition = rc ? "bad-success" : NULL;
    if (rc == 0 && s->stage != SASL_SENT) {
        rc = UVX_EAUTH; /* success before we answered: nothing was proved */
        s->condition = "server-signature-mismatch";
    }
    if (rc == 0 && s->entry->mech->success)
        rc = s->entry->mech->success(s, data.data ? data.data : "", data.len);
    neg_wipe(&data);
    if (neg_gone(conn))
        return;
    if (rc < 0) {
        neg_fail(conn, UVX_STATUS_AUTHFAIL, s->condition ? s->condition : "bad-success", elem);
        return;
    }
    s->stage = SASL_IDLE;
    conn->authenticated = 1;
    handlers_authenticated(conn);
    neg_restart_stream(conn);
}

static void neg_on_failure(uvx_conn_t *conn, uvx_stanza_t *elem)
{
    sasl_session_t *s = &conn->sasl;
    const char *condition = neg_first_child_name(elem);
    if (s->entry && s->entry->mech->failure) {
        s->entry->mech->failure(s, condition);
        if (neg_gone(conn))
            return;
    }
    /* libstrophe-style fallback: the next acceptable mechanism. */
    neg_sasl_next(conn, condition ? condition : "not-authorized", elem);
}

static void neg_on_sasl(uvx_conn_t *conn, uvx_stanza_t *elem, const char *name)
{
    if (conn->sasl.entry == NULL) {
        neg_fail(conn, UVX_STATUS_CONNFAIL, "unexpected-request", elem);
        return;
    }
    if (strcmp(name, "challenge") == 0)
        neg_on_challenge(conn, elem);
    else if (strcmp(name, "success") == 0)
        neg_on_success(conn, elem);
    else if (strcmp(name, "failure") == 0)
        neg_on_failure(conn, elem);
    else
        neg_fail(conn, UVX_STATUS_CONNFAIL, "unexpected-request", elem);
}

/* ---- asynchronous answers and the public SASL calls ---- */

void sasl_resume(sasl_session_t *s, const char *data, size_t len)
{
    uvx_conn_t *conn = s->conn;
    if (conn == NULL || neg_gone(conn) || conn->state != ST_SASL)
        return;
    int rc;
    if (s->stage == SASL_WAIT_START)
        rc = neg_send_sasl(conn, "auth", s->entry->name, data, len, 1);
    else if (s->stage == SASL_WAIT_ANSWER)
        rc = neg_send_sasl(conn, "response", NULL, data, len, 1);
    else
        return;
    s->stage = SASL_SENT;
    if (rc != 0)
        neg_sasl_abort_fail(conn, "out-of-memory", NULL);
}

void sasl_resume_failed(sasl_session_t *s, const char *condition)
{
    uvx_conn_t *conn = s->conn;
    if (conn == NULL || neg_gone(conn) || conn->state != ST_SASL)
        return;
    if (s->stage == SASL_WAIT_ANSWER)
        neg_sasl_abort_fail(conn, condition, NULL);
    else if (s->stage == SASL_WAIT_START)
        neg_sasl_next(conn, condition, NULL);
}

int uvx_sasl_respond(uvx_conn_t *conn, const void *data, size_t len)
{
    if (conn == NULL || (data == NULL && len > 0))
        return UVX_EINVAL;
    sasl_session_t *s = &conn->sasl;
    if (s->sync_out) {
        s->sync_responded = 1;
        return buf_append(s->sync_out, data ? data : "", len);
    }
    if (neg_gone(conn) || conn->state != ST_SASL ||
        (s->stage != SASL_WAIT_START && s->stage != SASL_WAIT_ANSWER))
        return UVX_ESTATE;
    sasl_resume(s, data ? data : "", len);
    return 0;
}

int uvx_sasl_abort(uvx_conn_t *conn)
{
    if (conn == NULL)
        return UVX_EINVAL;
    sasl_session_t *s = &conn->sasl;
    if (s->sync_out) {
        s->abort_requested = 1;
        return 0;
    }
    if (neg_gone(conn) || conn->state != ST_SASL)
        return UVX_ESTATE;
    if (s->stage == SASL_WAIT_START) {
        neg_sasl_next(conn, "aborted", NULL);
        return 0;
    }
    if (s->stage == SASL_WAIT_ANSWER) {
        s->stage = SASL_SENT;
        return conn_queue_raw(conn, SASL_ABORT, sizeof(SASL_ABORT) - 1);
    }
    return UVX_ESTATE;
}

const char *uvx_sasl_authcid(const uvx_conn_t *conn)
{
    return conn ? conn->authcid : NULL;
}

const char *uvx_sasl_authzid(const uvx_conn_t *conn)
{
    return conn ? conn->sasl.authzid : NULL;
}

const char *uvx_sasl_password(const uvx_conn_t *conn)
{
    return conn ? conn->pass : NULL;
}

const char *uvx_sasl_mechanism(const uvx_conn_t *conn)
{
    if (conn == NULL)
        return NULL;
    const sasl_entry_t *e = conn->sasl.entry ? conn->sasl.entry : conn->sasl.last;
    return e ? e->name : NULL;
}

int uvx_conn_scram_keys(const uvx_conn_t *conn, uvx_scram_keys_t *keys)
{
    if (conn == NULL || keys == NULL)
        return UVX_EINVAL;
    if (conn->sasl.keys_learned == NULL)
        return UVX_ENOTFOUND;
    *keys = *conn->sasl.keys_learned;
    return 0;
}

int sasl_login_set_keys(uvx_conn_t *conn, const uvx_scram_keys_t *keys)
{
    sasl_session_t *s = &conn->sasl;
    if (keys == NULL)
        return 0;
    if (keys->salt_len > UVX_SCRAM_MAX_SALT || keys->key_len > UVX_SCRAM_MAX_KEY)
        return UVX_EINVAL;
    if (s->keys_given == NULL && (s->keys_given = malloc(sizeof(*s->keys_given))) == NULL)
        return UVX_ENOMEM;
    *s->keys_given = *keys;
    return 0;
}

/* ---- bind and session ---- */

static int neg_send_iq_xml(uvx_conn_t *conn, const char *fmt, const char *a, const char *b)
{
    uvx_stanza_t *iq = uvx_stanza_fmt(fmt, a, b);
    if (iq == NULL)
        return UVX_ENOMEM;
    int rc = conn_send_internal(conn, iq);
    uvx_stanza_unref(iq);
    return rc;
}

int negotiate_bind(uvx_conn_t *conn, const char *resource)
{
    int rc;
    if (resource && *resource)
        rc = neg_send_iq_xml(conn,
                             "<iq type='set' id='%s'><bind xmlns='" UVX_NS_BIND
                             "'><resource>%s</resource></bind></iq>",
                             "_bind_auth_2", resource);
    else
        rc = neg_send_iq_xml(conn, "<iq type='set' id='%s'><bind xmlns='" UVX_NS_BIND "'/></iq>",
                             "_bind_auth_2", NULL);
    if (rc == 0)
        conn->state = ST_BINDING;
    return rc;
}

int uvx_bind(uvx_conn_t *conn, const char *resource)
{
    if (conn == NULL)
        return UVX_EINVAL;
    if (conn->state != ST_BIND_WAIT)
        return UVX_ESTATE;
    int rc = negotiate_bind(conn, resource);
    if (rc == 0)
        conn_flush_now(conn);
    return rc;
}

static void neg_connected(uvx_conn_t *conn)
{
    conn->state = ST_CONNECTED;
    uvx_stanza_unref(conn->features);
    conn->features = NULL;
    conn_change_status(conn, UVX_STATUS_CONNECTED, NULL, NULL);
}

static void neg_on_features_authenticated(uvx_conn_t *conn, uvx_stanza_t *features)
{
    uvx_stanza_t *session = uvx_stanza_child_name_ns(features, "session", UVX_NS_SESSION);
    conn->do_session = session && !uvx_stanza_child(session, "optional");
    if (!uvx_stanza_child_name_ns(features, "bind", UVX_NS_BIND)) {
        neg_fail(conn, UVX_STATUS_CONNFAIL, "bad-format", features);
        return;
    }
    if (conn->explicit_binding) {
        conn->state = ST_BIND_WAIT;
        conn_change_status(conn, UVX_STATUS_BINDREQUIRED, NULL, NULL);
        return;
    }
    char *resource = uvx_jid_resource(conn->jid);
    int rc = negotiate_bind(conn, resource);
    free(resource);
    if (rc)
        neg_fail(conn, UVX_STATUS_CONNFAIL, "out-of-memory", NULL);
}

static void neg_on_bind_reply(uvx_conn_t *conn, uvx_stanza_t *iq)
{
    const char *type = uvx_stanza_type(iq);
    if (type && strcmp(type, "result") == 0) {
        uvx_stanza_t *bind = uvx_stanza_child_name_ns(iq, "bind", UVX_NS_BIND);
        const char *jid = bind ? uvx_stanza_child_text(bind, "jid") : NULL;
        if (jid == NULL || !uvx_jid_valid(jid)) {
            neg_fail(conn, UVX_STATUS_CONNFAIL, "bad-format", iq);
            return;
        }
        xstrdup_into(&conn->bound_jid, jid);
        if (conn->do_session) {
            neg_send_iq_xml(conn,
                            "<iq type='set' id='%s'><session xmlns='" UVX_NS_SESSION "'/></iq>",
                            "_session_auth_2", NULL);
            conn->state = ST_SESSION;
            return;
        }
        neg_connected(conn);
        return;
    }
    const char *cond = uvx_stanza_error_condition(iq);
    neg_fail(conn, UVX_STATUS_CONNFAIL,
             cond && strcmp(cond, "conflict") == 0 ? "conflict" : "bad-format", iq);
}

static void neg_on_session_reply(uvx_conn_t *conn, uvx_stanza_t *iq)
{
    const char *type = uvx_stanza_type(iq);
    if (type && strcmp(type, "result") == 0)
        neg_connected(conn);
    else
        neg_fail(conn, UVX_STATUS_CONNFAIL, "session-failed", iq);
}

/* ---- XEP-0078 legacy auth ---- */

static void neg_legacy_auth_start(uvx_conn_t *conn)
{
    if (conn->authcid == NULL) {
        neg_fail(conn, UVX_STATUS_CONNFAIL, "no-auth-mech", NULL);
        return;
    }
    conn->state = ST_LEGACY_AUTH;
    neg_send_iq_xml(conn,
                    "<iq type='get' id='%s'><query xmlns='" UVX_NS_AUTH
                    "'><username>%s</username></query></iq>",
                    "_auth_1", conn->authcid);
}

static void neg_on_legacy_fields(uvx_conn_t *conn, uvx_stanza_t *iq)
{
    uvx_stanza_t *query = uvx_stanza_child_name_ns(iq, "query", UVX_NS_AUTH);
    char *resource = uvx_jid_resource(conn->jid);
    const char *res = resource ? resource : "uvxmpp";
    int rc = 0;
    if (query && uvx_stanza_child(query, "digest") && conn->stream_id) {
        /* digest = hex(SHA1(stream id + password)) */
        unsigned char hash[20];
        char hex[41];
        mbedtls_sha1_context sha;
        mbedtls_sha1_init(&sha);
        mbedtls_sha1_starts_ret(&sha);
        mbedtls_sha1_update_ret(&sha, (const unsigned char *)conn->stream_id,
                                strlen(conn->stream_id));
        mbedtls_sha1_update_ret(&sha, (const unsigned char *)conn->pass,
                                conn->pass ? strlen(conn->pass) : 0);
        mbedtls_sha1_finish_ret(&sha, hash);
        mbedtls_sha1_free(&sha);
        for (int i = 0; i < 20; i++)
            snprintf(hex + 2 * i, 3, "%02x", hash[i]);
        uvx_stanza_t *s = uvx_stanza_fmt("<iq type='set' id='_auth_2'><query xmlns='" UVX_NS_AUTH
                                         "'><username>%s</username><digest>%s</digest>"
                                         "<resource>%s</resource></query></iq>",
                                         conn->authcid, hex, res);
        rc = s ? conn_send_internal(conn, s) : UVX_ENOMEM;
        uvx_stanza_unref(s);
    } else if (conn->secure || conn->allow_plain) {
        uvx_stanza_t *s = uvx_stanza_fmt("<iq type='set' id='_auth_2'><query xmlns='" UVX_NS_AUTH
                                         "'><username>%s</username><password>%s</password>"
                                         "<resource>%s</resource></query></iq>",
                                         conn->authcid, conn->pass ? conn->pass : "", res);
        rc = s ? conn_send_internal(conn, s) : UVX_ENOMEM;
        uvx_stanza_unref(s);
    } else {
        free(resource);
        neg_fail(conn, UVX_STATUS_CONNFAIL, "plain-not-allowed", iq);
        return;
    }
    if (rc == 0 && conn->bound_jid == NULL) {
        char *node = uvx_jid_node(conn->jid);
        conn->bound_jid = uvx_jid_make(node ? node : conn->authcid, conn->domain, res);
        free(node);
    }
    free(resource);
}

static int neg_on_legacy_reply(uvx_conn_t *conn, uvx_stanza_t *iq)
{
    const char *id = uvx_stanza_id(iq);
    const char *type = uvx_stanza_type(iq);
    if (id == NULL || type == NULL)
        return 0;
    if (strcmp(id, "_auth_1") == 0) {
        if (strcmp(type, "result") == 0)
            neg_on_legacy_fields(conn, iq);
        else
            neg_fail(conn, UVX_STATUS_CONNFAIL, "no-auth-mech", iq);
        return 1;
    }
    if (strcmp(id, "_auth_2") == 0) {
        if (strcmp(type, "result") == 0) {
            conn->authenticated = 1;
            handlers_authenticated(conn);
            neg_connected(conn);
        } else {
            const char *cond = uvx_stanza_error_condition(iq);
            neg_fail(conn, UVX_STATUS_AUTHFAIL, cond ? cond : "not-authorized", iq);
        }
        return 1;
    }
    return 0;
}

/* ---- entry point ---- */

static void neg_on_stream_error(uvx_conn_t *conn, uvx_stanza_t *err)
{
    const char *condition = NULL;
    for (uvx_stanza_t *c = uvx_stanza_children(err); c; c = uvx_stanza_next(c)) {
        const char *ns = uvx_stanza_ns(c);
        const char *name = uvx_stanza_name(c);
        if (name && ns && strcmp(ns, UVX_NS_STREAMS_ERR) == 0 && strcmp(name, "text") != 0) {
            condition = name;
            break;
        }
    }
    neg_fail(conn, conn->state < ST_CONNECTED ? UVX_STATUS_CONNFAIL : UVX_STATUS_ERROR,
             condition ? condition : "undefined-condition", err);
}

static int neg_is_iq_reply(uvx_stanza_t *s, const char *id)
{
    const char *name = uvx_stanza_name(s);
    const char *sid = uvx_stanza_id(s);
    const char *type = uvx_stanza_type(s);
    return name && strcmp(name, "iq") == 0 && sid && strcmp(sid, id) == 0 && type &&
           (strcmp(type, "result") == 0 || strcmp(type, "error") == 0);
}

int negotiate_on_stanza(uvx_conn_t *conn, uvx_stanza_t *stanza)
{
    const char *name = uvx_stanza_name(stanza);
    const char *ns = uvx_stanza_ns(stanza);
    if (name == NULL)
        return 1;
    if (ns && strcmp(ns, UVX_NS_STREAMS) == 0) {
        if (strcmp(name, "error") == 0) {
            neg_on_stream_error(conn, stanza);
            return 1;
        }
        if (strcmp(name, "features") == 0 && conn->state == ST_STREAM) {
            if (conn->authenticated)
                neg_on_features_authenticated(conn, stanza);
            else
                neg_on_features_unauthenticated(conn, stanza);
            return 1;
        }
        return 1; /* nothing else of the stream namespace reaches handlers */
    }
    switch (conn->state) {
    case ST_STARTTLS:
        if (ns && strcmp(ns, UVX_NS_TLS) == 0) {
            neg_on_starttls_reply(conn, stanza, name);
            return 1;
        }
        return 0;
    case ST_SASL:
        if (ns && strcmp(ns, UVX_NS_SASL) == 0) {
            neg_on_sasl(conn, stanza, name);
            return 1;
        }
        return 0;
    case ST_LEGACY_AUTH:
        return neg_on_legacy_reply(conn, stanza);
    case ST_BINDING:
        if (neg_is_iq_reply(stanza, "_bind_auth_2")) {
            neg_on_bind_reply(conn, stanza);
            return 1;
        }
        return 0;
    case ST_SESSION:
        if (neg_is_iq_reply(stanza, "_session_auth_2")) {
            neg_on_session_reply(conn, stanza);
            return 1;
        }
        return 0;
    default:
        return 0;
    }
}
