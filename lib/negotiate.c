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
        conn_queue_raw(conn, "</stream:stream>", 16);
        conn_flush_now(conn);
    }
    conn_do_disconnect(conn, condition);
}

void negotiate_cleanup(uvx_conn_t *conn)
{
    if (conn->mech && conn->mech->cleanup)
        conn->mech->cleanup(&conn->sasl);
    conn->mech = NULL;
    memset(&conn->sasl, 0, sizeof(conn->sasl));
    uvx_stanza_unref(conn->features);
    conn->features = NULL;
}

void negotiate_on_stream_open(uvx_conn_t *conn, uvx_stanza_t *root)
{
    const char *ns = uvx_stanza_ns(root);
    const char *name = uvx_stanza_name(root);
    if (name == NULL || strcmp(name, "stream") != 0 || ns == NULL ||
        strcmp(ns, UVX_NS_STREAMS) != 0) {
        neg_fail(conn, UVX_STATUS_CONNFAIL, "invalid-namespace", root);
        return;
    }
    xstrdup_into(&conn->stream_id, uvx_stanza_attr(root, "id"));
}

/* ---- SASL ---- */

static int neg_send_sasl(uvx_conn_t *conn, const char *element, const char *mech,
                         const buf_t *payload, int has_payload)
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
    } else if (payload->len == 0) {
        rc = rc ? rc : buf_append_str(&xml, ">=</"); /* RFC 6120 §6.4.2: empty response */
        rc = rc ? rc : buf_append_str(&xml, element);
        rc = rc ? rc : buf_append_str(&xml, ">");
    } else {
        size_t b64len = 0;
        mbedtls_base64_encode(NULL, 0, &b64len, (const unsigned char *)payload->data, payload->len);
        rc = rc ? rc : buf_append_str(&xml, ">");
        rc = rc ? rc : buf_reserve(&xml, b64len + 32);
        if (rc == 0) {
            size_t olen = 0;
            mbedtls_base64_encode((unsigned char *)xml.data + xml.len, xml.cap - xml.len, &olen,
                                  (const unsigned char *)payload->data, payload->len);
            xml.len += olen;
        }
        rc = rc ? rc : buf_append_str(&xml, "</");
        rc = rc ? rc : buf_append_str(&xml, element);
        rc = rc ? rc : buf_append_str(&xml, ">");
    }
    if (rc == 0)
        rc = conn_queue_raw(conn, xml.data, xml.len);
    buf_free(&xml);
    return rc;
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

static int neg_mech_index(const char *name)
{
    for (int i = 0; sasl_builtin[i]; i++)
        if (strcmp(sasl_builtin[i]->name, name) == 0)
            return i;
    return -1;
}

static void neg_fill_session(uvx_conn_t *conn)
{
    sasl_session_t *s = &conn->sasl;
    s->conn = conn;
    s->authcid = conn->authcid;
    s->password = conn->pass;
    s->domain = conn->domain;
    s->authzid = NULL;
}

/* The next acceptable mechanism: in the caller's order when given, else by
 * priority; offered by the server, passing its test, not yet tried. */
static const sasl_mech_t *neg_pick_mech(uvx_conn_t *conn, uvx_stanza_t *mechs, int *plain_blocked)
{
    *plain_blocked = 0;
    if (conn->mechanisms) {
        for (char **name = conn->mechanisms; *name; name++) {
            int i = neg_mech_index(*name);
            if (i < 0 || (conn->tried_mechs & (1u << i)) || !neg_mech_offered(mechs, *name))
                continue;
            if (sasl_builtin[i]->test(&conn->sasl))
                return sasl_builtin[i];
            if (sasl_builtin[i] == &sasl_plain)
                *plain_blocked = 1;
        }
        return NULL;
    }
    for (int i = 0; sasl_builtin[i]; i++) {
        if ((conn->tried_mechs & (1u << i)) || !neg_mech_offered(mechs, sasl_builtin[i]->name))
            continue;
        if (sasl_builtin[i]->test(&conn->sasl))
            return sasl_builtin[i];
        if (sasl_builtin[i] == &sasl_plain)
            *plain_blocked = 1;
    }
    return NULL;
}

static char *neg_bare_jid(uvx_conn_t *conn)
{
    return uvx_jid_bare(conn->jid);
}

static void neg_legacy_auth_start(uvx_conn_t *conn);

/* Starts SASL with the next mechanism. Returns 0 when one started;
 * *plain_blocked tells whether PLAIN was offered but not allowed. */
static int neg_sasl_start(uvx_conn_t *conn, uvx_stanza_t *mechs, int *plain_blocked)
{
    if (conn->mech && conn->mech->cleanup)
        conn->mech->cleanup(&conn->sasl);
    conn->mech = NULL;
    neg_fill_session(conn);
    char *bare = neg_bare_jid(conn);
    const sasl_mech_t *mech = neg_pick_mech(conn, mechs, plain_blocked);
    if (mech == NULL) {
        free(bare);
        return UVX_EAUTH;
    }
    conn->sasl.authzid = NULL;
    buf_t out = BUF_INIT;
    int has_response = 0;
    /* The authzid string must outlive start(): keep it in the session only
     * for the call (mechanisms copy what they need). */
    conn->sasl.authzid = bare;
    conn->mech = mech;
    int rc = mech->start(&conn->sasl, &out, &has_response);
    conn->sasl.authzid = NULL;
    free(bare);
    if (rc < 0) {
        buf_free(&out);
        return rc;
    }
    conn->state = ST_SASL;
    rc = neg_send_sasl(conn, "auth", mech->name, &out, has_response);
    buf_free(&out);
    return rc;
}

static void neg_on_features_unauthenticated(uvx_conn_t *conn, uvx_stanza_t *features)
{
    uvx_stanza_t *mechs = uvx_stanza_child_name_ns(features, "mechanisms", UVX_NS_SASL);
    uvx_stanza_unref(conn->features);
    conn->features = uvx_stanza_ref(features);
    if (mechs) {
        conn_change_status(conn, UVX_STATUS_AUTHENTICATING, NULL, NULL);
        if (conn->closing || conn->state >= ST_CLOSING)
            return;
        int plain_blocked = 0;
        int rc = neg_sasl_start(conn, mechs, &plain_blocked);
        if (rc == 0)
            return;
        if (uvx_stanza_child_name_ns(features, "auth", NS_IQ_AUTH_FEATURE)) {
            neg_legacy_auth_start(conn);
            return;
        }
        neg_fail(conn, UVX_STATUS_CONNFAIL,
                 plain_blocked ? "plain-not-allowed" : "no-auth-mech", NULL);
        return;
    }
    /* No SASL at all: XEP-0078 legacy auth, as Strophe falls back to it. */
    conn_change_status(conn, UVX_STATUS_AUTHENTICATING, NULL, NULL);
    if (conn->closing || conn->state >= ST_CLOSING)
        return;
    neg_legacy_auth_start(conn);
}

static void neg_restart_stream(uvx_conn_t *conn)
{
    conn->state = ST_STREAM;
    uvx_parser_reset(conn->parser);
    conn->tp->open_stream(conn);
    conn_flush_now(conn);
}

static const char *neg_first_child_name(uvx_stanza_t *s)
{
    uvx_stanza_t *c = uvx_stanza_first_element(s);
    return c ? uvx_stanza_name(c) : NULL;
}

static void neg_on_sasl(uvx_conn_t *conn, uvx_stanza_t *elem, const char *name)
{
    buf_t data = BUF_INIT;
    if (strcmp(name, "challenge") == 0 && conn->mech) {
        buf_t out = BUF_INIT;
        int rc = neg_decode(elem, &data);
        if (rc == 0 && conn->mech->challenge)
            rc = conn->mech->challenge(&conn->sasl, data.data ? data.data : "", data.len, &out);
        else if (rc == 0)
            rc = UVX_EAUTH; /* a mechanism with no challenge step got one */
        if (rc == 0)
            rc = neg_send_sasl(conn, "response", NULL, &out, 1);
        buf_free(&out);
        buf_free(&data);
        if (rc < 0) {
            /* abort the exchange (RFC 6120 §6.4.4) and fail */
            conn_queue_raw(conn, "<abort xmlns='" UVX_NS_SASL "'/>", 49);
            neg_fail(conn, UVX_STATUS_AUTHFAIL, "bad-challenge", elem);
        }
        return;
    }
    if (strcmp(name, "success") == 0 && conn->mech) {
        int rc = neg_decode(elem, &data);
        if (rc == 0 && conn->mech->success)
            rc = conn->mech->success(&conn->sasl, data.data ? data.data : "", data.len);
        buf_free(&data);
        if (rc < 0) {
            neg_fail(conn, UVX_STATUS_AUTHFAIL, "server-signature-mismatch", elem);
            return;
        }
        conn->authenticated = 1;
        handlers_authenticated(conn);
        neg_restart_stream(conn);
        return;
    }
    if (strcmp(name, "failure") == 0) {
        const char *condition = neg_first_child_name(elem);
        int i = conn->mech ? neg_mech_index(conn->mech->name) : -1;
        if (i >= 0)
            conn->tried_mechs |= 1u << i;
        /* libstrophe-style fallback: the next acceptable mechanism. */
        uvx_stanza_t *mechs = conn->features ? uvx_stanza_child_name_ns(conn->features, "mechanisms",
                                                                         UVX_NS_SASL)
                                             : NULL;
        int plain_blocked = 0;
        if (mechs && neg_sasl_start(conn, mechs, &plain_blocked) == 0)
            return;
        neg_fail(conn, UVX_STATUS_AUTHFAIL, condition ? condition : "not-authorized", elem);
        return;
    }
    neg_fail(conn, UVX_STATUS_CONNFAIL, "unexpected-request", elem);
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
    neg_fail(conn, UVX_STATUS_CONNFAIL, cond && strcmp(cond, "conflict") == 0 ? "conflict"
                                                                               : "bad-format",
             iq);
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
