/*
 * uvxmpp — an XMPP client connection library for libuv.
 *
 * Copyright (c) 2026 the uvxmpp developers. MIT licensed (see LICENSE).
 *
 * The whole public API lives in this header. Conventions:
 *  - Functions that can fail return 0 (or a pointer) on success and a
 *    negative error code on failure: UVX_E* below, or a libuv code passed
 *    through. uvx_strerror() names both.
 *  - Stanzas are reference counted. Each function that takes or returns a
 *    stanza says who owns the reference ("borrowed": valid for the duration
 *    of the call / while the owner keeps it; "new reference": the caller
 *    must uvx_stanza_unref() it).
 *  - Strings passed in are copied unless said otherwise. Strings returned
 *    as `const char *` are borrowed from the object they came from.
 */
#ifndef UVXMPP_H
#define UVXMPP_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

#define UVX_VERSION_MAJOR 0
#define UVX_VERSION_MINOR 1
#define UVX_VERSION_PATCH 0

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

/* uvxmpp's own error codes. They sit below libuv's range (libuv uses
 * negated errno values and codes down to about -4100), so one int carries
 * either kind. */
enum {
    UVX_ENOMEM = -20001,      /* out of memory */
    UVX_EINVAL = -20002,      /* invalid argument (API misuse) */
    UVX_EPARSE = -20003,      /* malformed XML */
    UVX_ERESTRICTED = -20004, /* XML that RFC 6120 §11 forbids (DTD, PI, comment) */
    UVX_ETOOBIG = -20005,     /* stanza larger than the configured limit */
    UVX_ETOODEEP = -20006,    /* element nesting deeper than the limit */
    UVX_EJID = -20007,        /* malformed JID */
    UVX_ESTATE = -20008,      /* call not valid in the current state */
    UVX_ENOTSUP = -20009,     /* not supported (yet), e.g. an unknown URL scheme */
    UVX_ENOTFOUND = -20010,   /* no such item (handler, child, attribute) */
    UVX_ETIMEDOUT = -20011,   /* an uvxmpp timer expired */
    UVX_EAUTH = -20012,       /* authentication failed */
    UVX_ESTREAM = -20013,     /* the peer sent a stream error */
    UVX_ECLOSED = -20014,     /* the connection is closed or closing */
    UVX_ETLS = -20015,        /* TLS failed (handshake, certificate, alert) */
};

/* A static, human readable description of an uvxmpp or libuv error code. */
const char *uvx_strerror(int err);

/* ------------------------------------------------------------------------ */
/* Well-known namespaces                                                    */
/* ------------------------------------------------------------------------ */

#define UVX_NS_CLIENT "jabber:client"
#define UVX_NS_STREAMS "http://etherx.jabber.org/streams"
#define UVX_NS_STREAMS_ERR "urn:ietf:params:xml:ns:xmpp-streams"
#define UVX_NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"
#define UVX_NS_TLS "urn:ietf:params:xml:ns:xmpp-tls"
#define UVX_NS_SASL "urn:ietf:params:xml:ns:xmpp-sasl"
#define UVX_NS_BIND "urn:ietf:params:xml:ns:xmpp-bind"
#define UVX_NS_SESSION "urn:ietf:params:xml:ns:xmpp-session"
#define UVX_NS_FRAMING "urn:ietf:params:xml:ns:xmpp-framing"
#define UVX_NS_AUTH "jabber:iq:auth"
#define UVX_NS_PING "urn:xmpp:ping"
#define UVX_NS_XML "http://www.w3.org/XML/1998/namespace"

/* ------------------------------------------------------------------------ */
/* Stanzas: a reference-counted XML element tree                            */
/* ------------------------------------------------------------------------ */

/* One node of a tree: an element (name, namespace, ordered attributes,
 * children) or a text node. A node belongs to at most one parent. */
typedef struct uvx_stanza uvx_stanza_t;

/* A new element named `name` with no namespace. New reference; NULL when
 * out of memory or `name` is NULL/empty. */
uvx_stanza_t *uvx_stanza_new(const char *name);

/* A new text node holding `text` (unescaped, UTF-8). New reference. */
uvx_stanza_t *uvx_stanza_new_text(const char *text);

/* Like uvx_stanza_new_text() with an explicit length (text may hold NULs
 * only in the sense that `len` bytes are copied; XML forbids NUL). */
uvx_stanza_t *uvx_stanza_new_text_len(const char *text, size_t len);

/* Takes another reference to `s` and returns it. */
uvx_stanza_t *uvx_stanza_ref(uvx_stanza_t *s);

/* Drops a reference; the node (and its subtree) is freed with the last one.
 * A child is kept alive by its parent. NULL is ignored. */
void uvx_stanza_unref(uvx_stanza_t *s);

/* A deep copy of `s` and its subtree, with no parent. New reference. */
uvx_stanza_t *uvx_stanza_copy(const uvx_stanza_t *s);

/* 1 if `s` is an element / a text node, else 0. */
int uvx_stanza_is_element(const uvx_stanza_t *s);
int uvx_stanza_is_text(const uvx_stanza_t *s);

/* The element's local name (NULL for text nodes). Borrowed. */
const char *uvx_stanza_name(const uvx_stanza_t *s);
int uvx_stanza_set_name(uvx_stanza_t *s, const char *name);

/* The element's namespace URI, or NULL when it has none. Borrowed.
 * For Strophe users: the attribute "xmlns" reads and writes the same value
 * (uvx_stanza_attr(s, "xmlns") == uvx_stanza_ns(s)). */
const char *uvx_stanza_ns(const uvx_stanza_t *s);
int uvx_stanza_set_ns(uvx_stanza_t *s, const char *ns);

/* Attributes keep their insertion order. Names are qualified names as
 * written ("type", "xml:lang"). uvx_stanza_attr() returns NULL when the
 * attribute is absent. set replaces an existing value in place. */
const char *uvx_stanza_attr(const uvx_stanza_t *s, const char *name);
int uvx_stanza_set_attr(uvx_stanza_t *s, const char *name, const char *value);
/* UVX_ENOTFOUND when absent. */
int uvx_stanza_remove_attr(uvx_stanza_t *s, const char *name);
/* Number of attributes (not counting the namespace) and the i-th one. */
int uvx_stanza_attr_count(const uvx_stanza_t *s);
int uvx_stanza_attr_at(const uvx_stanza_t *s, int i, const char **name, const char **value);

/* Shorthands for the common stanza attributes. Borrowed / copied. */
const char *uvx_stanza_id(const uvx_stanza_t *s);
const char *uvx_stanza_type(const uvx_stanza_t *s);
const char *uvx_stanza_to(const uvx_stanza_t *s);
const char *uvx_stanza_from(const uvx_stanza_t *s);
int uvx_stanza_set_id(uvx_stanza_t *s, const char *id);
int uvx_stanza_set_type(uvx_stanza_t *s, const char *type);
int uvx_stanza_set_to(uvx_stanza_t *s, const char *to);
int uvx_stanza_set_from(uvx_stanza_t *s, const char *from);

/* Tree navigation. All borrowed (NULL when there is none). Iterate the
 * children with: for (c = uvx_stanza_children(s); c; c = uvx_stanza_next(c)) */
uvx_stanza_t *uvx_stanza_parent(const uvx_stanza_t *s);
uvx_stanza_t *uvx_stanza_children(const uvx_stanza_t *s);
uvx_stanza_t *uvx_stanza_next(const uvx_stanza_t *s);
/* The first child element with that name / namespace / both. */
uvx_stanza_t *uvx_stanza_child(const uvx_stanza_t *s, const char *name);
uvx_stanza_t *uvx_stanza_child_ns(const uvx_stanza_t *s, const char *ns);
uvx_stanza_t *uvx_stanza_child_name_ns(const uvx_stanza_t *s, const char *name, const char *ns);
/* The first element child, skipping text. */
uvx_stanza_t *uvx_stanza_first_element(const uvx_stanza_t *s);

/* Appends `child` as the last child of `parent`; the parent takes its own
 * reference (the caller keeps theirs). UVX_EINVAL if `child` already has a
 * parent, is `parent` itself or one of its ancestors, or `parent` is text. */
int uvx_stanza_add_child(uvx_stanza_t *parent, uvx_stanza_t *child);
/* Same, but takes over the caller's reference to `child` (on success and on
 * failure alike): handy for uvx_stanza_adopt(p, uvx_stanza_new("x")). */
int uvx_stanza_adopt(uvx_stanza_t *parent, uvx_stanza_t *child);
/* Detaches `child` from its parent and drops the parent's reference. */
int uvx_stanza_remove_child(uvx_stanza_t *parent, uvx_stanza_t *child);

/* The concatenated text of `s`: for a text node its text, for an element the
 * text of its direct text children. Borrowed pointer valid until `s`
 * changes; "" when there is none. (Elements cache the concatenation.) */
const char *uvx_stanza_text(uvx_stanza_t *s);
/* Replaces all children of element `s` with one text node (or sets the
 * text of a text node). */
int uvx_stanza_set_text(uvx_stanza_t *s, const char *text);
/* The text of the first child element `name` (e.g. "body"), or NULL. */
const char *uvx_stanza_child_text(uvx_stanza_t *s, const char *name);

/* Serializes `s` as XML. Namespaces are declared only where an element's
 * namespace differs from its parent's; `outer_ns` is the default namespace
 * the output is placed under (pass UVX_NS_CLIENT for stanzas written on a
 * c2s stream, so <message/> carries no redundant xmlns; NULL to declare
 * the root's namespace always). Text and attribute values are escaped.
 * *out is a NUL-terminated malloc'd buffer the caller frees; *len (if not
 * NULL) gets its length. */
int uvx_stanza_serialize(const uvx_stanza_t *s, const char *outer_ns, char **out, size_t *len);
/* uvx_stanza_serialize(s, NULL, ...) returning the string, or NULL. */
char *uvx_stanza_to_string(const uvx_stanza_t *s);

/* Parses one XML element (a complete document without a prolog is fine)
 * into a tree, with the same restrictions and limits as the stream parser.
 * Returns a new reference or NULL with *err (if not NULL) set. */
uvx_stanza_t *uvx_stanza_from_string(const char *xml, size_t len, int *err);

/* printf-like construction in one expression. The format is XML; each %s
 * argument is escaped for where it stands (text or attribute value); %d,
 * %u, %ld, %lu, %zu print numbers; %% is a percent sign. Top-level message,
 * iq and presence elements without an xmlns get xmlns='jabber:client'.
 * Example:
 *   uvx_stanza_t *m = uvx_stanza_fmt(
 *       "<message to='%s' type='chat'><body>%s</body>"
 *       "<active xmlns='http://jabber.org/protocol/chatstates'/></message>",
 *       to, text);
 * Returns a new reference, or NULL on a bad format or malformed XML. */
uvx_stanza_t *uvx_stanza_fmt(const char *fmt, ...);
uvx_stanza_t *uvx_stanza_vfmt(const char *fmt, va_list ap);

/* ---- Reply helpers ---------------------------------------------------- */

/* An <iq type='result'/> answering `iq`: same id, to = iq's from, from =
 * iq's to (when present). New reference. */
uvx_stanza_t *uvx_stanza_reply(const uvx_stanza_t *iq);

/* RFC 6120 §8.3 error types and defined conditions. */
typedef enum {
    UVX_ERROR_TYPE_AUTH,
    UVX_ERROR_TYPE_CANCEL,
    UVX_ERROR_TYPE_CONTINUE,
    UVX_ERROR_TYPE_MODIFY,
    UVX_ERROR_TYPE_WAIT,
} uvx_error_type_t;

/* An error reply to `stanza` (any kind): same element name, id, swapped
 * to/from, type='error', the original's children copied (RFC 6120 §8.3.1
 * permits it; pass include_original = 0 to omit them), and
 * <error type='…'><CONDITION xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>
 * [<text>…</text>]</error>. `condition` is a defined condition such as
 * "service-unavailable"; `text` may be NULL. New reference or NULL. */
uvx_stanza_t *uvx_stanza_error_reply(const uvx_stanza_t *stanza, uvx_error_type_t type,
                                     const char *condition, const char *text, int include_original);

/* The default error type RFC 6120 §8.3.3 gives a condition, e.g. CANCEL
 * for "service-unavailable"; -1 for an unknown condition. */
int uvx_error_condition_type(const char *condition);

/* For an error stanza: its defined condition name (e.g. "item-not-found")
 * and its <text/>, or NULL. Borrowed. */
const char *uvx_stanza_error_condition(const uvx_stanza_t *stanza);
const char *uvx_stanza_error_text(uvx_stanza_t *stanza);

/* ---- Builder: Strophe's $build / $msg / $iq / $pres ------------------- */

/* A builder keeps a tree and a cursor. Each call returns the builder so
 * calls can nest; once an allocation fails the builder remembers it and
 * uvx_b_done() returns NULL. Attribute lists are name/value pairs ending
 * with NULL; a pair whose value is NULL is skipped (handy for optional
 * attributes). */
typedef struct uvx_builder uvx_builder_t;

/* $build(name, attrs): a new builder whose root is `name`. */
uvx_builder_t *uvx_build(const char *name, ...);
/* $msg / $iq / $pres: the root gets xmlns='jabber:client' as in Strophe. */
uvx_builder_t *uvx_msg(const char *first_attr, ...);
uvx_builder_t *uvx_iq(const char *first_attr, ...);
uvx_builder_t *uvx_pres(const char *first_attr, ...);
/* c(): add a child `name` under the cursor and move into it. */
uvx_builder_t *uvx_b_c(uvx_builder_t *b, const char *name, ...);
/* t(): add a text child under the cursor (the cursor stays). */
uvx_builder_t *uvx_b_t(uvx_builder_t *b, const char *text);
/* attrs(): set attributes on the cursor element. */
uvx_builder_t *uvx_b_attrs(uvx_builder_t *b, ...);
/* up(): move the cursor to its parent (stays at the root). */
uvx_builder_t *uvx_b_up(uvx_builder_t *b);
/* root(): move the cursor to the root. */
uvx_builder_t *uvx_b_root(uvx_builder_t *b);
/* cnode(): append a deep copy of `s` (borrowed) under the cursor and move
 * into the copy. */
uvx_builder_t *uvx_b_cnode(uvx_builder_t *b, const uvx_stanza_t *s);
/* The cursor element (borrowed), e.g. to set attributes by hand. */
uvx_stanza_t *uvx_b_node(uvx_builder_t *b);
/* tree(): frees the builder and returns the root (new reference), or NULL
 * if any step failed. NULL in, NULL out. */
uvx_stanza_t *uvx_b_done(uvx_builder_t *b);
/* Frees a builder without keeping its tree. */
void uvx_b_free(uvx_builder_t *b);

/* ------------------------------------------------------------------------ */
/* The XML stream parser                                                    */
/* ------------------------------------------------------------------------ */

/* A libxml2 SAX2 push parser that turns bytes, in chunks of any size, into
 * events: stream opened (the root element, without children), each
 * complete depth-1 element as a stanza, stream closed, or one error after
 * which it produces nothing until reset. Restricted XML (RFC 6120 §11.1):
 * DOCTYPE, entity declarations, processing instructions and comments are
 * errors; no entity beyond the five predefined and character references is
 * expanded (an undeclared one is "not-well-formed"); nothing is fetched
 * from the network. Input must be UTF-8 (the encoding declaration is
 * ignored; a byte-order mark, UTF-16 or invalid UTF-8, CDATA included, is
 * "not-well-formed"). Non-whitespace text between stanzas is dropped. */
typedef struct uvx_parser uvx_parser_t;

typedef struct uvx_parser_callbacks {
    /* The depth-0 start tag. `root` (borrowed) has the root's name, ns and
     * attributes (id, from, to, version, xml:lang, ...) and no children. */
    void (*stream_open)(void *ud, uvx_stanza_t *root);
    /* A complete depth-1 element. `stanza` is borrowed: take a reference to
     * keep it past the callback. */
    void (*stanza)(void *ud, uvx_stanza_t *stanza);
    /* The depth-0 end tag. */
    void (*stream_close)(void *ud);
    /* The input is bad. `err` is UVX_EPARSE, UVX_ERESTRICTED, UVX_ETOOBIG,
     * UVX_ETOODEEP or UVX_ENOMEM; `condition` the RFC 6120 stream error
     * condition to answer with ("not-well-formed", "restricted-xml",
     * "policy-violation", "resource-constraint"). Called at most once until
     * uvx_parser_reset(); a reset from inside it drops the rest of the
     * chunk and the next feed starts a fresh stream. */
    void (*error)(void *ud, int err, const char *condition);
} uvx_parser_callbacks_t;

/* Limits. Zero fields take the defaults. */
typedef struct uvx_parser_limits {
    size_t max_stanza_size; /* bytes of one depth-1 element (counted from the
                               end of the previous one; the stream header is
                               held to it too); default 1 MiB */
    unsigned max_depth;     /* element nesting, root = 1; default 64 */
} uvx_parser_limits_t;

#define UVX_DEFAULT_MAX_STANZA_SIZE (1024 * 1024)
#define UVX_DEFAULT_MAX_DEPTH 64

/* A new parser. `limits` may be NULL. Returns NULL when out of memory. */
uvx_parser_t *uvx_parser_new(const uvx_parser_callbacks_t *cb, void *ud,
                             const uvx_parser_limits_t *limits);
void uvx_parser_free(uvx_parser_t *p);

/* Feeds `len` bytes. Events fire from inside this call. Returns 0, or the
 * error code already reported through the error callback (then every
 * further feed returns it without parsing, until reset). The callbacks may
 * call uvx_parser_reset() (a stream restart): the rest of the chunk is
 * then parsed as a new stream. They must not feed the parser (that returns
 * UVX_ESTATE) nor free it: use uvx_parser_stop() and free it after
 * uvx_parser_feed() returns. */
int uvx_parser_feed(uvx_parser_t *p, const char *buf, size_t len);

/* Makes the current feed return as soon as the running callback does,
 * ignoring the rest of the chunk; further feeds return UVX_ECLOSED. */
void uvx_parser_stop(uvx_parser_t *p);

/* Starts over with a new stream (RFC 6120 stream restart), reusing the
 * libxml2 context. Also clears a uvx_parser_stop(). */
int uvx_parser_reset(uvx_parser_t *p);

/* ------------------------------------------------------------------------ */
/* JIDs (RFC 7622) and XEP-0106 escaping                                    */
/* ------------------------------------------------------------------------ */

/* Each part is limited to 1023 bytes. */
#define UVX_JID_PART_MAX 1023

/* Splits `jid` into parts (RFC 7622 §3.2: the resource is everything after
 * the first '/' and may hold '@' and '/'; the node is what precedes the
 * first '@' before it). Each out pointer may be NULL; the others get
 * malloc'd strings (NULL for an absent node or resource) the caller frees.
 * A trailing dot on the domain is stripped. No PRECIS mapping or
 * normalisation is done: parts are checked for length (1..1023 bytes),
 * well-formed UTF-8 without control characters, the characters RFC 7622
 * §3.3.1 forbids in a node (" & ' / : < > @ and space), and a domain of
 * non-empty labels or a bracketed IP literal. Nodes and resources compare
 * byte for byte. Returns 0, UVX_EINVAL (NULL jid), UVX_ENOMEM, or UVX_EJID
 * for an invalid JID; on failure every out pointer is set to NULL. */
int uvx_jid_split(const char *jid, char **node, char **domain, char **resource);
/* Malloc'd parts, NULL when absent or invalid. */
char *uvx_jid_node(const char *jid);
char *uvx_jid_domain(const char *jid);
char *uvx_jid_resource(const char *jid);
char *uvx_jid_bare(const char *jid);
/* Joins parts (node and resource may be NULL). Malloc'd, NULL if invalid.
 * A trailing dot on `domain` is stripped; the empty string is an invalid
 * part, not an absent one. */
char *uvx_jid_make(const char *node, const char *domain, const char *resource);
/* 1 if `jid` is valid, else 0. */
int uvx_jid_valid(const char *jid);
/* 1 if both JIDs have the same bare JID (domain compared
 * case-insensitively in ASCII), else 0. */
int uvx_jid_bare_equal(const char *a, const char *b);
/* XEP-0106: escape / unescape a node part. Malloc'd. A backslash is
 * escaped only where it begins one of the ten sequences (\20 \22 \26 \27
 * \2f \3a \3c \3e \40 \5c, lowercase). escape returns NULL if the result
 * would not be a valid node: empty, a leading or trailing space, control
 * characters, bad UTF-8, or over 1023 bytes. unescape decodes only those
 * sequences and is for display; its result need not be a valid node. */
char *uvx_jid_escape_node(const char *node);
char *uvx_jid_unescape_node(const char *node);

/* ------------------------------------------------------------------------ */
/* Contexts and connections                                                 */
/* ------------------------------------------------------------------------ */

/* A context holds what all connections on one libuv loop share (the read
 * buffer, the end-of-iteration flush hook, plugins). One per loop and per
 * thread; no global state, so N threads may each run their own loop.
 * As in any libuv program, the application should ignore SIGPIPE
 * (signal(SIGPIPE, SIG_IGN)): a write to a socket the server has just
 * closed raises it, and the library does not change process-wide signal
 * dispositions. */
typedef struct uvx_ctx uvx_ctx_t;

/* A new context on the caller's loop. NULL when out of memory. */
uvx_ctx_t *uvx_ctx_new(uv_loop_t *loop);
/* Frees a context. Every connection must have been closed (their close
 * callbacks run) first: UVX_ESTATE otherwise, and nothing is freed. */
int uvx_ctx_free(uvx_ctx_t *ctx);
uv_loop_t *uvx_ctx_loop(const uvx_ctx_t *ctx);

/* One XMPP client connection: Strophe.js's Strophe.Connection. */
typedef struct uvx_conn uvx_conn_t;

/* Strophe.Status, with Strophe's numeric values. */
typedef enum uvx_status {
    UVX_STATUS_ERROR = 0,
    UVX_STATUS_CONNECTING = 1,
    UVX_STATUS_CONNFAIL = 2,
    UVX_STATUS_AUTHENTICATING = 3,
    UVX_STATUS_AUTHFAIL = 4,
    UVX_STATUS_CONNECTED = 5,
    UVX_STATUS_DISCONNECTED = 6,
    UVX_STATUS_DISCONNECTING = 7,
    UVX_STATUS_ATTACHED = 8,
    UVX_STATUS_REDIRECT = 9,
    UVX_STATUS_CONNTIMEOUT = 10,
    UVX_STATUS_BINDREQUIRED = 11,
    UVX_STATUS_ATTACHFAIL = 12,
    UVX_STATUS_RECONNECTING = 13,
} uvx_status_t;

/* "CONNECTED", "AUTHFAIL", ... ("UNKNOWN" for other values). */
const char *uvx_status_name(int status);

/* The status callback. `condition` is NULL or a short reason:
 *  - an RFC 6120 stream error condition the server sent ("conflict",
 *    "host-unknown", "see-other-host", ...) or a SASL failure condition
 *    ("not-authorized", ...; see the SASL section for ours);
 *  - a local condition: "no-auth-mech" (no acceptable SASL mechanism),
 *    "tls-required" (no TLS and allow_plain off; see uvx_conn_options_t
 *    for the other "tls-*" conditions), "plain-not-allowed" (legacy auth
 *    would send the password in the clear), "bad-format" (bind failed /
 *    bad reply), "conflict" (resource conflict on bind), "session-failed",
 *    "invalid-namespace" (not an XMPP stream), "unexpected-request",
 *    "login-timeout" (not CONNECTED within login_timeout_ms),
 *    "x-uvx-parsererror: <cond>" (our parser rejected the server's XML;
 *    <cond> is the RFC 6120 condition we sent back), "connection-refused" /
 *    "host-unresolved" / "connection-timeout" / "connection-lost"
 *    (network), "out-of-memory";
 *  - WebSocket: "websocket-bad-accept", "websocket-no-subprotocol",
 *    "websocket-bad-response", "websocket-http-NNN" (the upgrade failed);
 *    "websocket-<close code name>" ("websocket-normal-closure",
 *    "-going-away", "-protocol-error", "-unsupported-data",
 *    "-invalid-payload", "-policy-violation", "-message-too-big", ...) or
 *    "websocket-close-NNNN" when a close frame ends the connection (ours
 *    too: a masked or binary frame, bad UTF-8, a message over
 *    max_stanza_size); "websocket-bad-framing" (a text message that was
 *    not exactly one whole element, RFC 7395 §3.3.3: we close with 1007);
 *    "unsupported-version" (an <open/> without version 1.0),
 *    "ping-timeout", "redirect-refused" (wss to ws), "redirect-invalid";
 *    REDIRECT carries the new URI. A redirect (<close see-other-uri/>,
 *    before or after CONNECTED) starts a new session at the new URI:
 *    REDIRECT, then CONNECTING, AUTHENTICATING, CONNECTED, with no
 *    DISCONNECTED in between. As on DISCONNECTED (and as Strophe's reset()
 *    on a redirect), handlers and timed handlers are dropped first and
 *    pending IQs get errb(NULL), so add handlers again on CONNECTED;
 *    sending fails (UVX_ESTATE) while the new connection is being made.
 *    A redirect answering our own <close/> (uvx_disconnect()) is not
 *    followed;
 *  - BOSH: see the BOSH section at the end.
 * `elem` (borrowed, may be NULL) is the stanza that caused the change. */
typedef void (*uvx_status_cb)(uvx_conn_t *conn, int status, const char *condition,
                              uvx_stanza_t *elem, void *ud);

/* What a TLS certificate verify callback sees of the server's certificate
 * (all borrowed, valid during the call). */
typedef struct uvx_tls_cert_info {
    const char *subject;     /* distinguished name, e.g. "CN=localhost" */
    const char *const *sans; /* dNSName subject alternative names, NULL-terminated */
    const char *sha256;      /* fingerprint of the DER certificate, "AB:CD:..." */
    const char *reason;      /* why verification failed: "not trusted",
                                "host name mismatch", "expired", ... */
    uint32_t flags;          /* mbedtls's MBEDTLS_X509_BADCERT_* bits */
} uvx_tls_cert_info_t;

/* Called when the server's certificate fails verification; return 1 to
 * accept it anyway (e.g. it matches a pinned fingerprint), 0 to fail the
 * connection with CONNFAIL "tls-cert-invalid". */
typedef int (*uvx_tls_verify_cb)(uvx_conn_t *conn, const uvx_tls_cert_info_t *cert, void *ud);

/* Options for uvx_conn_new(). Initialise with uvx_conn_options_init() and
 * set what you need; strings are copied. */
typedef struct uvx_conn_options {
    /* Local (source) address to bind before connecting, e.g. "127.0.0.2";
     * lets a load tool open more sessions than one port range holds. */
    const char *bind_address;
    /* Time allowed for each TCP connect attempt; default 10 000 ms. */
    unsigned connect_timeout_ms;
    /* Time allowed from uvx_connect() to CONNECTED (or BINDREQUIRED): a
     * server that accepts the connection and then stalls fails the login
     * with CONNFAIL "login-timeout". Default 30 000 ms. */
    unsigned login_timeout_ms;
    /* Allow an unencrypted stream (a server that does not offer STARTTLS,
     * or tls_disabled) and SASL PLAIN / token mechanisms / legacy auth on
     * it. Off by default: without TLS the login fails with CONNFAIL
     * "tls-required". STARTTLS is used whenever offered either way. */
    int allow_plain;
    /* NULL-terminated list of SASL mechanism names to use, in preference
     * order; NULL for all registered ones by priority. */
    const char *const *mechanisms;
    /* Report BINDREQUIRED and wait for uvx_bind() instead of binding. */
    int explicit_resource_binding;
    /* Parser limits; 0 for the defaults. */
    size_t max_stanza_size;
    unsigned max_depth;
    /* TLS: STARTTLS whenever the server offers it (RFC 6120 §5), or
     * direct TLS with "xmpps://". The server certificate is verified
     * against the system CA bundle (or tls_cafile / tls_cadir) and the
     * XMPP domain, TLS >= 1.2. Failures: CONNFAIL "tls-cert-invalid",
     * "tls-bad-ca", "tls-alert", "tls-handshake-failed",
     * "tls-protocol-error", "tls-failed" (the server refused STARTTLS),
     * "tls-required" (no TLS and allow_plain off). */
    const char *tls_cafile;
    const char *tls_cadir;
    int tls_insecure;          /* accept any certificate: for tests only */
    int tls_disabled;          /* never STARTTLS, even when offered (needs allow_plain) */
    const char *tls_cert_file; /* client certificate (PEM) for SASL EXTERNAL */
    const char *tls_key_file;  /* its key (default: tls_cert_file) */
    uvx_tls_verify_cb tls_verify_cb;
    void *tls_verify_ud;
    /* HTTP transports: extra request headers, NULL-terminated
     * "Name: value" strings (copied), sent with the WebSocket upgrade
     * request and with every BOSH request. */
    const char *const *http_headers;
    /* WebSocket: send a ping every ws_ping_interval_ms while connected (0:
     * never) and fail the connection ("ping-timeout") when no pong comes
     * within ws_pong_timeout_ms (default 10 000). Server pings are always
     * answered. */
    unsigned ws_ping_interval_ms;
    unsigned ws_pong_timeout_ms;
    /* BOSH (http://, https://; see "BOSH" at the end of this header):
     * the requests' Content-Type (default "text/xml; charset=utf-8");
     * cookies, NULL-terminated "name=value" strings sent as one Cookie
     * header; keepalive: cache {jid, sid, rids} after every response and
     * request through bosh_store, or else the file bosh_session_file, for
     * uvx_restore(). */
    const char *bosh_content_type;
    const char *const *bosh_cookies;
    int bosh_keepalive;
    const char *bosh_session_file;
    const struct uvx_bosh_store *bosh_store; /* copied */
    /* SCRAM-*-PLUS channel binding: "tls-unique", "tls-exporter" or
     * "tls-server-end-point" to force one; NULL (default) picks the first
     * type the server advertises (XEP-0440) that the connection can
     * compute, else tls-unique. A forced type the connection cannot
     * compute (tls-exporter without the extended master secret) keeps
     * -PLUS from being used. */
    const char *tls_channel_binding;
} uvx_conn_options_t;

void uvx_conn_options_init(uvx_conn_options_t *opts);

/* Creates a connection for `service`:
 *   "tcp://host[:port]"    RFC 6120 over TCP (port 5222 by default);
 *   "xmpps://host[:port]"  the same inside TLS from the first byte
 *                          (XEP-0368 direct TLS, port 5223 by default);
 *   "example.com"          a bare domain: like tcp://, host = the domain;
 *   "ws://host[:port]/path", "wss://..."   RFC 7395 WebSocket (ports 80 / 443);
 *   "http://host[:port]/path", "https://..."   XEP-0124/0206 BOSH (80 / 443).
 * Any other scheme: UVX_ENOTSUP.
 * `opts` may be NULL. On success *out is set and 0 returned. Nothing
 * happens on the network until uvx_connect(). */
int uvx_conn_new(uvx_ctx_t *ctx, const char *service, const uvx_conn_options_t *opts,
                 uvx_conn_t **out);

/* Closes the connection at once, like uv_close(): no stream close is sent
 * (use uvx_disconnect() for that), pending send_iq error callbacks are
 * not called, and `close_cb` (may be NULL) runs once every libuv handle is
 * closed; the connection is freed after it returns. No further status
 * callbacks are made. Safe to call from inside any uvxmpp callback. */
void uvx_conn_close(uvx_conn_t *conn, void (*close_cb)(uvx_conn_t *conn));

void uvx_conn_set_data(uvx_conn_t *conn, void *data);
void *uvx_conn_get_data(const uvx_conn_t *conn);
uvx_ctx_t *uvx_conn_ctx(const uvx_conn_t *conn);
/* The current status (the last one reported). */
int uvx_conn_status(const uvx_conn_t *conn);
/* The full JID once bound (else the JID given to uvx_connect). Borrowed. */
const char *uvx_conn_jid(const uvx_conn_t *conn);
/* The stream id the server gave, or NULL. Borrowed. */
const char *uvx_conn_stream_id(const uvx_conn_t *conn);
/* 1 once SASL (or legacy auth) succeeded, until disconnected. */
int uvx_conn_authenticated(const uvx_conn_t *conn);
/* 1 when the stream runs inside TLS (STARTTLS or direct TLS). */
int uvx_conn_secure(const uvx_conn_t *conn);

/* Strophe's optional connect() arguments. Zero for defaults. */
typedef struct uvx_connect_args {
    const char *route;                 /* BOSH's route (ignored by other transports) */
    const char *authcid;               /* authentication identity, default: the JID's node */
    unsigned disconnection_timeout_ms; /* graceful-close wait, default 3000 */
    unsigned wait, hold;               /* BOSH only */
    /* SCRAM keys from an earlier login (uvx_conn_scram_keys()), used
     * instead of running PBKDF2 when the server's salt and iteration count
     * still match; `pass` may then be NULL. Copied. See "SASL" below. */
    const struct uvx_scram_keys *scram_keys;
} uvx_connect_args_t;

/* Connects and logs in. `jid` is "node@domain[/resource]", or a bare
 * domain for SASL ANONYMOUS. `pass` may be NULL for ANONYMOUS. `cb` gets
 * every status change (CONNECTING, AUTHENTICATING, CONNECTED, ...).
 * Returns 0 (progress comes through `cb`), UVX_EJID, or UVX_ESTATE when
 * the connection is not DISCONNECTED. `args` may be NULL. */
int uvx_connect(uvx_conn_t *conn, const char *jid, const char *pass, uvx_status_cb cb, void *ud,
                const uvx_connect_args_t *args);

/* Graceful close: sends unavailable presence (when connected) and the
 * stream close, reports DISCONNECTING, waits for the server's stream close
 * up to disconnection_timeout (then CONNTIMEOUT), and reports
 * DISCONNECTED once the socket is closed. `reason` (may be NULL) is kept
 * as the DISCONNECTED condition. */
int uvx_disconnect(uvx_conn_t *conn, const char *reason);

/* Strophe's addProtocolErrorHandler: `cb` runs when the transport named
 * `protocol` ("websocket": the upgrade was answered with HTTP `status`
 * instead of 101; "HTTP": a BOSH request got HTTP `status`) meets that
 * status. One handler per (protocol, status); a second replaces the first.
 * The connection goes on failing as it would without a handler. 0,
 * UVX_EINVAL or UVX_ENOMEM. */
int uvx_add_protocol_error_handler(uvx_conn_t *conn, const char *protocol, int status,
                                   void (*cb)(uvx_conn_t *conn, int status, void *ud), void *ud);

/* Makes a DISCONNECTED connection ready for another uvx_connect(): drops
 * user handlers, timed handlers, the queue and the bound JID. */
int uvx_reset(uvx_conn_t *conn);

/* Resource binding after BINDREQUIRED (explicit_resource_binding).
 * `resource` may be NULL to let the server choose. */
int uvx_bind(uvx_conn_t *conn, const char *resource);

/* ---- Sending ----------------------------------------------------------- */

/* Queues a stanza (borrowed: it is serialized now, so the caller may change
 * or drop it after the call). The queue is written at the end of the
 * current loop iteration in one write (or at once by uvx_flush()).
 * UVX_ESTATE when not connected. */
int uvx_send(uvx_conn_t *conn, const uvx_stanza_t *stanza);
/* Queues several stanzas (borrowed), `n` of them. */
int uvx_send_many(uvx_conn_t *conn, const uvx_stanza_t *const *stanzas, size_t n);
/* Queues raw bytes as they are (the caller is responsible for them being
 * XML that fits the stream). */
int uvx_send_raw(uvx_conn_t *conn, const char *data, size_t len);
/* Writes the queue now (unless paused). */
int uvx_flush(uvx_conn_t *conn);
/* Holds the queue (nothing is written) / releases it (written at the end
 * of this iteration). */
void uvx_pause(uvx_conn_t *conn);
void uvx_resume(uvx_conn_t *conn);
/* Bytes queued but not yet handed to the socket. */
size_t uvx_queued_bytes(const uvx_conn_t *conn);
/* Back-pressure: `cb(conn, 1, ud)` when queued plus in-flight bytes rise
 * above `high` and `cb(conn, 0, ud)` when they fall to `high / 2` or below.
 * high = 0 turns it off. Default: off. */
void uvx_set_high_water(uvx_conn_t *conn, size_t high,
                        void (*cb)(uvx_conn_t *conn, int above, void *ud), void *ud);

/* A new id unique within this connection ("<uuid-ish>:<n>[:suffix]").
 * Borrowed from the connection, valid until the next call. */
const char *uvx_get_unique_id(uvx_conn_t *conn, const char *suffix);

/* ---- Handlers ---------------------------------------------------------- */

/* A stanza handler. `stanza` is borrowed (take a reference to keep it).
 * Return 1 to stay registered, 0 to be removed. */
typedef int (*uvx_handler_cb)(uvx_conn_t *conn, uvx_stanza_t *stanza, void *ud);

typedef struct uvx_handler uvx_handler_t;

/* Flags for uvx_add_handler(). */
enum {
    /* Compare `from` by bare JID. */
    UVX_MATCH_BARE_FROM = 1,
    /* Ignore the "#fragment" of namespaces when comparing. */
    UVX_IGNORE_NS_FRAGMENT = 2,
};

/* Strophe's addHandler(handler, ns, name, type, id, from, options). Each
 * criterion may be NULL (matches anything):
 *   ns    the stanza's namespace or that of any descendant element;
 *   name  the element name;
 *   type  the type attribute; several allowed, separated by spaces
 *         ("chat normal");
 *   id    the id attribute (such handlers are found in O(1));
 *   from  the from attribute (bare compare with UVX_MATCH_BARE_FROM).
 * User handlers see stanzas only once the connection is authenticated.
 * A handler added or deleted while stanzas are being dispatched takes
 * effect from the next stanza (a deleted one still sees the current one).
 * Returns the handle, or NULL when out of memory. */
uvx_handler_t *uvx_add_handler(uvx_conn_t *conn, uvx_handler_cb cb, void *ud, const char *ns,
                               const char *name, const char *type, const char *id, const char *from,
                               unsigned flags);
/* UVX_ENOTFOUND if `h` is not registered on `conn` (or was removed). */
int uvx_delete_handler(uvx_conn_t *conn, uvx_handler_t *h);

/* A timed handler: return 1 to run again after the period, 0 to stop. */
typedef int (*uvx_timed_cb)(uvx_conn_t *conn, void *ud);
typedef struct uvx_timed_handler uvx_timed_handler_t;
/* Runs `cb` every `period_ms` (a real libuv timer). User timed handlers
 * start once the connection is authenticated. NULL when out of memory. */
uvx_timed_handler_t *uvx_add_timed_handler(uvx_conn_t *conn, unsigned period_ms, uvx_timed_cb cb,
                                           void *ud);
int uvx_delete_timed_handler(uvx_conn_t *conn, uvx_timed_handler_t *th);

/* Sends an <iq/> (borrowed; an id is added when it has none, read it back
 * with uvx_stanza_id()) and calls `cb` with the type='result' reply or
 * `errb` with the type='error' reply, or `errb` with a NULL stanza after
 * `timeout_ms` (0: no timeout). Callback return values are ignored.
 * Either callback may be NULL. */
int uvx_send_iq(uvx_conn_t *conn, uvx_stanza_t *iq, uvx_handler_cb cb, uvx_handler_cb errb,
                void *ud, unsigned timeout_ms);
/* The same for a directed <presence/>: `errb` gets type='error' replies,
 * `cb` any other presence with that id. */
int uvx_send_presence(uvx_conn_t *conn, uvx_stanza_t *pres, uvx_handler_cb cb, uvx_handler_cb errb,
                      void *ud, unsigned timeout_ms);

/* ---- I/O hooks ----------------------------------------------------------- */

/* Raw bytes as read from / written to the stream (after TLS decryption /
 * before encryption). NULL turns a hook off. */
typedef void (*uvx_raw_hook)(uvx_conn_t *conn, const char *data, size_t len, void *ud);
void uvx_set_raw_hooks(uvx_conn_t *conn, uvx_raw_hook input, uvx_raw_hook output, void *ud);
/* Each stanza received (before the handlers) and each stanza sent with
 * uvx_send*() (borrowed). */
typedef void (*uvx_xml_hook)(uvx_conn_t *conn, const uvx_stanza_t *stanza, void *ud);
void uvx_set_xml_hooks(uvx_conn_t *conn, uvx_xml_hook input, uvx_xml_hook output, void *ud);

/* ---- Plugins ------------------------------------------------------------- */

/* Strophe's addConnectionPlugin, per context: every connection created on
 * the context after registration calls init(); its result is the plugin's
 * per-connection data (uvx_plugin_data()). status_changed() sees every
 * status change before the user's callback; destroy() runs when the
 * connection is freed. Any callback may be NULL. The struct is copied;
 * `name` must stay valid. */
typedef struct uvx_plugin {
    const char *name;
    void *(*init)(uvx_conn_t *conn, void *plugin_ud);
    void (*status_changed)(uvx_conn_t *conn, int status, const char *condition, void *conn_data);
    void (*destroy)(uvx_conn_t *conn, void *conn_data);
    void *plugin_ud;
} uvx_plugin_t;

/* UVX_EINVAL if the name is taken. */
int uvx_ctx_add_plugin(uvx_ctx_t *ctx, const uvx_plugin_t *plugin);
/* The per-connection data of plugin `name`, or NULL. */
void *uvx_plugin_data(const uvx_conn_t *conn, const char *name);

/* ---- SASL ---------------------------------------------------------------- */

/* Built-in mechanisms and their default priorities (Strophe.js 5, plus
 * the channel-binding forms above every plain SCRAM):
 *   SCRAM-SHA-512-PLUS 82, SCRAM-SHA-384-PLUS 81, SCRAM-SHA-256-PLUS 80,
 *   SCRAM-SHA-1-PLUS 75,
 *   SCRAM-SHA-512 72, SCRAM-SHA-384 71, SCRAM-SHA-256 70, SCRAM-SHA-1 60,
 *   PLAIN 50, OAUTHBEARER 40, X-OAUTH2 30, ANONYMOUS 20, EXTERNAL 10.
 * The -PLUS mechanisms bind the login to the TLS connection with
 * tls-unique (RFC 5802 §6, RFC 5929) and are eligible only on a transport
 * that has that data (TCP under direct TLS or STARTTLS). Plain SCRAM sends
 * the GS2 flag "y" when this connection could bind but the server offered
 * no -PLUS (downgrade protection, RFC 5802 §6), else "n".
 * The connection picks the highest-priority mechanism the server offers
 * whose test passes (or follows the `mechanisms` option's order), and after
 * a <failure/> tries the next acceptable one before reporting AUTHFAIL.
 * Tests: SCRAM needs a node (or authcid) and a password or matching cached
 * keys; PLAIN, OAUTHBEARER and X-OAUTH2 send a reusable secret and need an
 * encrypted stream or allow_plain; OAUTHBEARER and X-OAUTH2 take the token
 * as the password; ANONYMOUS needs a JID without a node; EXTERNAL is always
 * eligible (the TLS client certificate decides).
 *
 * SASL conditions reported with AUTHFAIL besides the server's own
 * ("not-authorized", ...):
 *   "bad-challenge"             a server message the mechanism cannot parse
 *   "scram-nonce-mismatch"      the server nonce does not extend ours
 *   "scram-iterations"          iteration count below 4096 or above
 *                               UVX_SCRAM_MAX_ITERATIONS
 *   "scram-extension"           a mandatory extension (m=) we don't know
 *   "scram-server-error"        the server-final message carried e=...
 *   "scram-keys-stale"          cached keys don't fit this salt/iteration
 *                               count and no password was given
 *   "server-signature-mismatch" the server could not prove it knows the
 *                               password (never followed by CONNECTED)
 *   "bad-success"               undecodable <success/> data, or a user
 *                               mechanism's success hook refused it
 *   "aborted"                   uvx_sasl_abort() left no mechanism to try */

#define UVX_SCRAM_MIN_ITERATIONS 4096
#define UVX_SCRAM_MAX_ITERATIONS 1000000
#define UVX_SCRAM_MAX_SALT 128
#define UVX_SCRAM_MAX_KEY 64

/* The keys a SCRAM login derived from the password (Strophe's scram_keys).
 * Keep them instead of the password: passed back through
 * uvx_connect_args_t.scram_keys they skip PBKDF2 while the server keeps the
 * same salt and iteration count. (Servers that store plaintext passwords,
 * like Prosody's internal_plain, pick a new salt every login; then the
 * password is needed again.) Treat them as secret as the password. */
typedef struct uvx_scram_keys {
    char hash[16];       /* "SHA-1", "SHA-256", "SHA-384" or "SHA-512" */
    unsigned iterations; /* the server's i= */
    size_t salt_len;
    unsigned char salt[UVX_SCRAM_MAX_SALT]; /* decoded s= */
    size_t key_len;                         /* the hash's output size */
    unsigned char client_key[UVX_SCRAM_MAX_KEY];
    unsigned char server_key[UVX_SCRAM_MAX_KEY];
} uvx_scram_keys_t;

/* Copies the keys of the last successful SCRAM login on `conn` (valid from
 * AUTHENTICATING's success on, until the next uvx_connect()/uvx_reset()).
 * 0, UVX_EINVAL, or UVX_ENOTFOUND when the last login used no SCRAM. */
int uvx_conn_scram_keys(const uvx_conn_t *conn, uvx_scram_keys_t *keys);

/* Returned by a mechanism's start or challenge hook: the answer will come
 * later through uvx_sasl_respond() (or uvx_sasl_abort()). */
#define UVX_SASL_PENDING 1

/* A user mechanism: Strophe's registerSASLMechanism. Hooks get the
 * connection and `ud`. During a hook (or later, for UVX_SASL_PENDING) the
 * mechanism answers with uvx_sasl_respond(); it reads the login's
 * credentials with uvx_sasl_authcid() and friends.
 *   test      1 if the mechanism may be used for this login. NULL: always.
 *   start     the initial response. Return 0 having called
 *             uvx_sasl_respond() (sent with <auth/>) or not (no initial
 *             response), UVX_SASL_PENDING to answer later, or a negative
 *             code to pass (the next mechanism is tried).
 *   challenge answers a (decoded) server challenge: 0 (an empty response
 *             unless uvx_sasl_respond() was called), UVX_SASL_PENDING, or
 *             negative to abort with AUTHFAIL "bad-challenge". NULL: any
 *             challenge is an error.
 *   success   sees the additional data of <success/> (decoded, may be
 *             empty): 0 to accept, negative for AUTHFAIL "bad-success".
 *   failure   told the condition of a <failure/> for this mechanism
 *             (before the next mechanism is tried).
 * Any hook but start may be NULL. */
typedef struct uvx_sasl_mechanism {
    const char *name; /* as the server lists it; copied */
    int priority;     /* higher is preferred */
    int (*test)(uvx_conn_t *conn, void *ud);
    int (*start)(uvx_conn_t *conn, void *ud);
    int (*challenge)(uvx_conn_t *conn, const char *data, size_t len, void *ud);
    int (*success)(uvx_conn_t *conn, const char *data, size_t len, void *ud);
    void (*failure)(uvx_conn_t *conn, const char *condition, void *ud);
    void *ud;
} uvx_sasl_mechanism_t;

/* Adds a mechanism to the context (copied), replacing a built-in or
 * earlier one of the same name. Connections select from the context's set
 * at each login. UVX_EINVAL (no name or start), UVX_ENOMEM. */
int uvx_ctx_register_sasl_mechanism(uvx_ctx_t *ctx, const uvx_sasl_mechanism_t *mech);
/* Removes a mechanism (built-in or not) from the context's set.
 * UVX_ENOTFOUND when it is not there. */
int uvx_ctx_unregister_sasl_mechanism(uvx_ctx_t *ctx, const char *name);
/* The context's mechanism names by priority, highest first, into names[]
 * (borrowed, valid until the set changes); returns how many there are
 * (possibly more than max). */
int uvx_ctx_sasl_mechanisms(uvx_ctx_t *ctx, const char **names, int max);

/* Answers the server: the initial response (after start) or a challenge
 * response. Raw bytes; the library base64-encodes them. Inside a hook the
 * answer goes out when the hook returns; after UVX_SASL_PENDING it goes
 * out now. UVX_ESTATE when no answer is awaited. */
int uvx_sasl_respond(uvx_conn_t *conn, const void *data, size_t len);
/* Gives up on the current exchange after UVX_SASL_PENDING: before <auth/>
 * the next mechanism is tried at once; after it an <abort/> is sent and the
 * server's <failure/> leads to the next mechanism. UVX_ESTATE otherwise. */
int uvx_sasl_abort(uvx_conn_t *conn);
/* The login's credentials, for mechanisms (borrowed, NULL when absent):
 * the authentication identity (the JID's node or connect args' authcid),
 * the bare JID to authorize as, the password (or token), and the name of
 * the mechanism in use (or, once SASL ended, the last one tried). */
const char *uvx_sasl_authcid(const uvx_conn_t *conn);
const char *uvx_sasl_authzid(const uvx_conn_t *conn);
const char *uvx_sasl_password(const uvx_conn_t *conn);
const char *uvx_sasl_mechanism(const uvx_conn_t *conn);

/* ------------------------------------------------------------------------ */
/* BOSH (XEP-0124 / XEP-0206)                                               */
/* ------------------------------------------------------------------------ */

/* "http://host[:port]/path" and "https://..." connect over BOSH: HTTP/1.1
 * POSTs on keep-alive connections, at most hold+1 (or the server's
 * `requests`) in flight. uvx_connect_args_t's wait (default 60 s) and hold
 * (default 1) go into the session request; the server's values win.
 * Everything sent in one loop iteration leaves in one <body/>; while
 * authenticated one request always waits at the server, so stanzas arrive
 * as soon as the server has them. Strophe's timing: a request unanswered
 * after 1.1 x wait s (0.1 x wait once a later one was answered first) is
 * sent again with the same rid on a fresh connection, up to 5 times with a
 * back-off; HTTP status 0 (no answer, a broken response) and 5xx count as
 * errors and are retried too. More than 4 errors in a row, or no retries
 * left: CONNFAIL "giving-up" before CONNECTED, CONNTIMEOUT after, then
 * DISCONNECTED. HTTP 4xx: DISCONNECTING "http-<status>" (after CONNFAIL
 * with the same condition before CONNECTED), then DISCONNECTED. Every
 * non-200 status also runs the "HTTP" protocol error handler for it
 * (uvx_add_protocol_error_handler). A server <body type='terminate'/>
 * reports CONNFAIL with its condition ("conflict" for a remote-stream-error
 * carrying <conflict/>, "unknown" for none), then DISCONNECTED. A response
 * that is not a <body xmlns='http://jabber.org/protocol/httpbind'/>:
 * CONNFAIL (or ERROR once connected) "invalid-namespace".
 * max_stanza_size limits a whole <body/> here (default 16 MiB for BOSH).
 * The xml hooks see the stanzas, not the <body/> wrappers; see
 * uvx_bosh_set_body_hooks() for those. */

#define UVX_NS_HTTPBIND "http://jabber.org/protocol/httpbind"
#define UVX_NS_XBOSH "urn:xmpp:xbosh"

/* A BOSH session as the keepalive option caches it.
 *
 * `rid` is the oldest rid whose response the client has not received
 * whole: the request the server holds (or has just answered) when the
 * process dies. It equals `next_rid` when every request sent was answered.
 * uvx_restore() sends it again, with an empty body, and so gets what the
 * server wrote into the dead process's connection: a server answers a rid
 * it answered already with the same response (XEP-0124 §14; Prosody 0.12
 * and ejabberd 23.01 do, for their last `requests` rids), and one it still
 * holds by answering the old request empty and holding the new one. Rids
 * older than next_rid - requests are not cached (the server could no
 * longer answer them again). The cache is written before a response's
 * stanzas are handled, so a stanza that reached the handlers is not
 * delivered again after a restore (if the process dies while handlers run,
 * the rest of that response is lost instead).
 *
 * `next_rid` is the rid after the last one sent, and bit i of `answered`
 * is set when the response to rid + i (below next_rid) was received
 * already (responses to different connections may come out of order):
 * those are not asked for again. next_rid 0 (a store that does not keep
 * these fields, a cache written by an older version) means `rid` is where
 * the new requests start, the meaning it had before. */
typedef struct uvx_bosh_session {
    char jid[3072]; /* the full JID (or the JID given to uvx_connect) */
    char sid[256];
    uint64_t rid;
    unsigned wait, hold, requests;
    uint64_t next_rid;
    unsigned answered;
} uvx_bosh_session_t;

/* Where the keepalive option keeps the session (Strophe keeps it in
 * sessionStorage). save() runs while connected whenever the session's rids
 * change (a response came, a new request went out), load() from
 * uvx_restore() (return 0, or UVX_ENOTFOUND when there is none), clear()
 * when the session ends (terminate, a fatal HTTP error; not on
 * uvx_conn_close(), so that a new process can take the session over).
 * The default store is the file named by bosh_session_file (written to
 * FILE.tmp and renamed, readable by its owner only), one line each: jid,
 * sid, rid, "wait hold requests", "next_rid answered". A file without the
 * last line (as earlier versions wrote it) is read with next_rid 0. */
typedef struct uvx_bosh_store {
    int (*save)(const uvx_bosh_session_t *session, void *ud);
    int (*load)(uvx_bosh_session_t *session, void *ud);
    void (*clear)(void *ud);
    void *ud;
} uvx_bosh_store_t;

/* Strophe's attach(): takes over a BOSH session another party made (a
 * prebinding web backend, an earlier process). `jid` is the session's full
 * JID, `sid` its id and `rid` the first rid to send: the last one used
 * plus one, or the oldest one whose response the earlier party did not
 * receive (the server then answers it again, see uvx_bosh_session_t); the
 * requests go on from there. wait/hold/wind (the server's `requests`) may
 * be 0 for 60 / 1 / hold+1. No login happens: `cb` gets ATTACHED at once (from inside this
 * call), user handlers run from then on and a request is sent to collect
 * what the server has for the session. A session the server does not know
 * ends with an HTTP 404 (see above). Returns 0; UVX_ENOTSUP (and ATTACHFAIL
 * through `cb`) on a connection that is not BOSH; UVX_EINVAL (and
 * ATTACHFAIL "bad-format") for a missing sid, an invalid JID or a rid of 0
 * or >= 2^53; UVX_ESTATE when the connection is not DISCONNECTED. */
int uvx_attach(uvx_conn_t *conn, const char *jid, const char *sid, uint64_t rid, uvx_status_cb cb,
               void *ud, unsigned wait, unsigned hold, unsigned wind);

/* Strophe's restore(): uvx_attach() to the session the keepalive option
 * cached (through bosh_store or bosh_session_file): the rids from the
 * cached `rid` to next_rid - 1 whose responses had not come are sent again
 * (empty), then new requests start at next_rid. With `jid` given, the
 * cached session must be for the same bare JID (or, for a bare domain, the
 * same domain). Returns what uvx_attach() returns, or UVX_ENOTFOUND with
 * no callback when there is nothing to restore (no store, nothing cached,
 * or another JID's session): connect normally then. */
int uvx_restore(uvx_conn_t *conn, const char *jid, uvx_status_cb cb, void *ud);

/* Strophe's nextValidRid: `cb` gets the next valid rid after each
 * response (the answered rid plus one). UVX_ENOTSUP on a non-BOSH
 * connection. */
int uvx_bosh_set_rid_hook(uvx_conn_t *conn, void (*cb)(uvx_conn_t *conn, uint64_t rid, void *ud),
                          void *ud);

/* The <body/> wrappers themselves (borrowed): `input` sees each response
 * body before its stanzas are handled, `output` each request body as it is
 * sent (parsed back from the bytes, so only set it for debugging). NULL
 * turns a hook off. UVX_ENOTSUP on a non-BOSH connection. */
int uvx_bosh_set_body_hooks(uvx_conn_t *conn, uvx_xml_hook input, uvx_xml_hook output, void *ud);

/* The session's sid and the next rid (for handing the session to another
 * party, as a prebinding backend does). UVX_ENOTFOUND before the session
 * exists, UVX_ENOTSUP on a non-BOSH connection. `sid` is borrowed. */
int uvx_bosh_session(const uvx_conn_t *conn, const char **sid, uint64_t *rid);

#ifdef __cplusplus
}
#endif
#endif /* UVXMPP_H */
