/*
 * The XML stream parser: libxml2's SAX2 push parser turned into stream
 * events (stream open, one stanza tree per depth-1 element, stream close,
 * at most one error).
 *
 *  - Input reaches xmlParseChunk() in slices of at most FEED_SLICE bytes, so
 *    the stanza size limit is checked at least once per slice and libxml2
 *    never holds much more than one stanza, whatever the caller feeds.
 *  - The SAX callbacks build each depth-1 element directly with the private
 *    constructors of stanza.h. Character data collects in one reused buffer
 *    and becomes a single text node when the next tag arrives.
 *  - Stream restarts (RFC 6120 §5.3.7, §6.4.6) are requested from inside a
 *    callback, where libxml2's context cannot be reset. We remember the
 *    stream offset just past the element, stop libxml2 (xmlStopParser), and
 *    once xmlParseChunk() has returned we reset the same context and feed it
 *    the bytes from that offset on.
 *  - XMPP is UTF-8 only (RFC 6120 §11.6). The encoding declaration is
 *    ignored and no converter is ever installed, so the stream offset of the
 *    parse position is simply input->consumed + (input->cur - input->base).
 *    Malformed UTF-8 is a libxml2 fatal error: "not-well-formed".
 *  - Restricted XML (RFC 6120 §11.1): a DOCTYPE (reported before its
 *    internal subset is read, so no entity is ever declared), entity
 *    declarations, processing instructions and comments stop the parser with
 *    UVX_ERESTRICTED "restricted-xml". Undeclared entity references are a
 *    libxml2 fatal error: UVX_EPARSE "not-well-formed".
 *  - Pooling (parser_set_pool()): an idle connection should not pin a
 *    libxml2 context (~16 KB with its input buffer and dictionary). A pooled
 *    parser borrows an "engine" (context + parse-time scratch) from a
 *    per-loop pool for the duration of a feed, and gives it back when the
 *    feed ends on a stanza boundary: stream open, depth 1, nothing but white
 *    space held unparsed. Such a parser is "parked". When bytes arrive again
 *    it takes back its own engine if no other parser took it, or any parked
 *    engine whose stream has the same start tag (name and namespace
 *    declarations: libxml2's state between stanzas is then the same);
 *    otherwise it resets an engine and replays a synthetic start tag with
 *    the real root's name and namespace declarations (no stream_open
 *    event), so the stanzas that follow resolve prefixes and the default
 *    namespace as before and the root's end tag still matches.
 *    All engines of a pool share one dictionary, which is replaced once it
 *    holds many names, so a long-lived loop does not grow it forever.
 *
 * Tree naming rules: an element keeps its local name and the namespace URI
 * libxml2 resolved (NULL for none). Attribute names are as written
 * ("type", "xml:lang", "foo:bar"). Namespace declarations are not
 * attributes, except that an element with a prefixed attribute (other than
 * xml:) also gets "xmlns:prefix" with that prefix's URI, so the tree
 * serializes back to the same names.
 */
#include "parser.h"

#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/xmlerror.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "stanza.h"

/* The largest piece of input libxml2 gets at once. */
#define FEED_SLICE (64 * 1024)
/* Scratch buffers (and stanza arenas) that grew beyond this are released
 * after use, so one big stanza does not pin its size in every idle
 * connection. */
#define SCRATCH_KEEP (16 * 1024)
/* Never XML_PARSE_NOENT, DTDLOAD or HUGE. IGNORE_ENC: see above. */
#define PARSE_OPTIONS (XML_PARSE_NONET | XML_PARSE_IGNORE_ENC)
/* Entries of the name length cache: 1 << NAME_CACHE_BITS, in pairs. With
 * 32 direct-mapped ones the ten or so names of a message stanza collided
 * often enough to cost two strlen()s per stanza. */
#define NAME_CACHE_BITS 6
#define NAME_CACHE (1 << NAME_CACHE_BITS)
/* Idle engines a pool keeps; more are freed. */
#define POOL_KEEP 4
/* Names in a pool's shared dictionary after which it starts a new one. */
#define POOL_DICT_NAMES 10000
/* An engine whose libxml2 input buffer had to hold more than this unparsed
 * (one huge token) is freed rather than kept in a pool with that memory.
 * Ordinary reads leave at most about a slice in each pooled engine. */
#define ENGINE_KEEP_PENDING FEED_SLICE

#define COND_PARSE "not-well-formed"
#define COND_RESTRICTED "restricted-xml"
#define COND_POLICY "policy-violation"
#define COND_MEMORY "resource-constraint"

/* Lengths of recently seen names and namespace URIs. libxml2 hands them
 * over interned in its dictionary, which lives as long as the context: a
 * pointer identifies its string for good. */
struct name_info {
    const xmlChar *name;
    unsigned len;     /* fits: the dictionary holds at most XML_MAX_DICTIONARY_LIMIT bytes */
    unsigned has_amp; /* see decode_amp() */
};

/* What only parsing needs: a pooled parser holds it only during a feed. */
typedef struct engine {
    xmlParserCtxtPtr ctxt;
    /* In a pool, after a parser parked it: that parser (until it restarts
     * or goes) and the start tag of the stream it holds open at depth 1. */
    uvx_parser_t *owner;
    struct prime_tag *prime;
    int grown;       /* held more than ENGINE_KEEP_PENDING bytes unparsed */
    buf_t text;      /* character data not yet added to the open element */
    buf_t name_buf;  /* scratch: "prefix:local" attribute names */
    buf_t value_buf; /* scratch: attribute values with '&' restored */
    /* Where the nodes of incoming stanzas are carved from: emptied and
     * reused for the next stanza once the previous one's nodes are gone. */
    stanza_arena_t *arena;
    struct name_info names[NAME_CACHE];
} engine_t;

/* The start tag a parked parser replays: "<stream:stream xmlns=... >".
 * Refcounted, because nearly every connection of a loop has the same one. */
typedef struct prime_tag {
    unsigned refs;
    size_t len;
    char text[];
} prime_tag_t;

struct parser_pool {
    unsigned refs;   /* parser_pool_new() + one per attached parser */
    xmlDictPtr dict; /* shared by the engines this pool creates */
    int nidle;       /* engines in idle[], oldest first */
    engine_t *idle[POOL_KEEP];
    prime_tag_t *last_prime; /* the most recent start tag, to share */
};

struct uvx_parser {
    engine_t *eng; /* NULL while parked (or pooled and idle) */
    parser_pool_t *pool;
    prime_tag_t *prime; /* pooled: what to replay after parking, or NULL */
    uvx_parser_callbacks_t cb;
    void *ud;
    size_t max_stanza_size;
    unsigned max_depth;

    unsigned depth;       /* elements open in the current stream */
    uvx_stanza_t *stanza; /* the depth-1 element being built, or NULL */
    uvx_stanza_t *cur;    /* its innermost open element */
    buf_t carry;          /* input of the next stream that only libxml2 held */

    /* Offsets in the current stream's bytes (as the engine saw them: after
     * a replay, counted from the start of the replayed tag). */
    size_t fed;         /* given to libxml2 so far */
    size_t slice_start; /* where the slice being parsed begins */
    size_t mark;        /* where the top-level element being received began */
    size_t event_end;   /* just past the markup of the event being reported */

    int err;                     /* the error reported, or 0 */
    unsigned char halted;        /* ignore SAX events until xmlParseChunk() returns */
    unsigned char stopped;       /* uvx_parser_stop() */
    unsigned char in_feed;       /* inside uvx_parser_feed() */
    unsigned char reset_pending; /* uvx_parser_reset() during a feed */
    unsigned char quiet_open;    /* parser_prime() or a replay: no stream_open event */
    unsigned char replaying;     /* feeding `prime` to a borrowed engine */
    unsigned char free_pending;  /* uvx_parser_free() during a feed */
    unsigned char parked;        /* eng == NULL with the stream open at depth 1 */
};

/* ---- Small helpers ------------------------------------------------------ */

/* Stream offset of libxml2's parse position (valid: no encoding converter). */
static size_t parsed_offset(const uvx_parser_t *p)
{
    const xmlParserInput *in = p->eng->ctxt->input;
    return (size_t)in->consumed + (size_t)(in->cur - in->base);
}

/* Length (and whether it holds a '&') of a string from libxml2's
 * dictionary, remembered by address in a two-way cache: a new name takes
 * the first slot of its pair and moves the name there to the second. */
static const struct name_info *dict_name(uvx_parser_t *p, const xmlChar *name)
{
    /* Fibonacci hashing: interned names sit next to each other in memory. */
    size_t pair =
        (size_t)(((uint64_t)(uintptr_t)name * 0x9E3779B97F4A7C15u) >> (64 - (NAME_CACHE_BITS - 1)));
    struct name_info *n = &p->eng->names[2 * pair];
    if (n[0].name == name)
        return &n[0];
    if (n[1].name == name)
        return &n[1];
    size_t len = strlen((const char *)name);
    n[1] = n[0];
    n[0].name = name;
    n[0].len = (unsigned)len;
    n[0].has_amp = memchr(name, '&', len) != NULL;
    return &n[0];
}

static size_t dict_strlen(uvx_parser_t *p, const xmlChar *name)
{
    return dict_name(p, name)->len;
}

static void trim_scratch(buf_t *b)
{
    if (b->cap > SCRATCH_KEEP)
        buf_free(b);
    else
        buf_reset(b);
}

/* Before a stanza: empties the engine's arena for it, or lets go of the
 * arena when a node of an earlier stanza still lives there (or it is big);
 * the first node carved then makes a new one. */
static void prepare_arena(engine_t *e)
{
    if (e->arena != NULL && (e->arena->size > SCRATCH_KEEP || !stanza_arena_recycle(e->arena))) {
        stanza_arena_release(e->arena);
        e->arena = NULL;
    }
}

static void drop_partial_stanza(uvx_parser_t *p)
{
    uvx_stanza_unref(p->stanza);
    p->stanza = p->cur = NULL;
    if (p->eng != NULL)
        trim_scratch(&p->eng->text);
}

/* Reports the stream's one error and ignores everything after it. */
static void fail(uvx_parser_t *p, int err, const char *condition)
{
    if (p->err != 0 || p->stopped)
        return;
    p->err = err;
    p->halted = 1;
    drop_partial_stanza(p);
    if (p->cb.error != NULL)
        p->cb.error(p->ud, err, condition);
}

/* fail() from a SAX callback after which libxml2 may be stopped at once. */
static void fail_and_stop(uvx_parser_t *p, int err, const char *condition)
{
    fail(p, err, condition);
    xmlStopParser(p->eng->ctxt);
}

/* ---- Restarting the stream ------------------------------------------------ */

/* A reset was requested from an event callback: the next stream begins at
 * event_end. Bytes from there up to slice_start came with earlier slices and
 * exist only in libxml2's input buffer, which xmlStopParser() frees: keep
 * them to feed again. */
static void keep_buffered_input(uvx_parser_t *p)
{
    if (p->event_end >= p->slice_start)
        return;
    const xmlParserInput *in = p->eng->ctxt->input;
    size_t here = parsed_offset(p);
    size_t n = p->slice_start - p->event_end;
    const char *from = (const char *)in->cur + (p->event_end - here);
    if (p->event_end < here || n > (size_t)((const char *)in->end - from) ||
        buf_append(&p->carry, from, n) != 0) {
        p->reset_pending = 0;
        fail(p, UVX_ENOMEM, COND_MEMORY);
    }
}

/* Runs after an event callback, from a SAX callback where libxml2 tolerates
 * being stopped: acts on a reset or stop the callback asked for. */
static void after_event(uvx_parser_t *p)
{
    if (p->reset_pending && p->err == 0)
        keep_buffered_input(p);
    if (p->halted)
        xmlStopParser(p->eng->ctxt);
}

/* Gives the engine's context a new stream. */
static int reset_context(uvx_parser_t *p)
{
    xmlParserCtxtPtr ctxt = p->eng->ctxt;
    ctxt->userData = p; /* libxml2 reports errors of the reset too */
    p->eng->owner = NULL;
    p->eng->grown = 0; /* the reset gives it a new input buffer */
    if (xmlCtxtResetPush(ctxt, NULL, 0, NULL, NULL) != 0)
        return UVX_ENOMEM;
    xmlCtxtUseOptions(ctxt, PARSE_OPTIONS);
    /* Make sure no namespace binding of the old stream survives, and that
     * lookahead starts as in a new context (xmlCtxtReset() leaves
     * `progressive` set). */
    ctxt->nsNr = 0;
    ctxt->progressive = 0;
    return 0;
}

static void pool_disown(parser_pool_t *pool, const uvx_parser_t *p);

/* Starts a new stream; a parser without an engine resets the one it
 * borrows next. */
static int restart(uvx_parser_t *p)
{
    drop_partial_stanza(p);
    p->depth = 0;
    p->fed = p->slice_start = p->mark = p->event_end = 0;
    p->err = 0;
    p->halted = p->stopped = p->reset_pending = p->quiet_open = p->parked = 0;
    if (p->eng == NULL) {
        pool_disown(p->pool, p);
        return 0;
    }
    if (reset_context(p) != 0) {
        p->err = UVX_ENOMEM;
        p->halted = 1;
        return UVX_ENOMEM;
    }
    return 0;
}

/* ---- Building elements ---------------------------------------------------- */

static int is_xml_prefix(const char *prefix)
{
    return prefix[0] == 'x' && prefix[1] == 'm' && prefix[2] == 'l' && prefix[3] == '\0';
}

/* Without entity replacement libxml2 hands over a '&' in an attribute value
 * (namespace declarations included) as "&#38;", for later reparsing by its
 * tree builder; every other reference arrives decoded, and a literal '&'
 * cannot occur. Undoes that into the value scratch buffer. */
static int decode_amp(uvx_parser_t *p, const char *value, size_t value_len)
{
    buf_t *v = &p->eng->value_buf;
    buf_reset(v);
    int rc = buf_reserve(v, value_len);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < value_len; i++) {
        v->data[v->len++] = value[i];
        if (value[i] == '&' && value_len - i >= 5 && memcmp(value + i, "&#38;", 5) == 0)
            i += 4;
    }
    v->data[v->len] = '\0';
    return 0;
}

static int push_attr(uvx_parser_t *p, uvx_stanza_t *el, const char *name, size_t name_len,
                     const char *value, size_t value_len)
{
    stanza_arena_t *a = p->eng->arena;
    if (memchr(value, '&', value_len) == NULL)
        return stanza_push_attr_in(a, el, name, name_len, value, value_len);
    int rc = decode_amp(p, value, value_len);
    if (rc == 0)
        rc = stanza_push_attr_in(a, el, name, name_len, p->eng->value_buf.data,
                                 p->eng->value_buf.len);
    trim_scratch(&p->eng->value_buf);
    return rc;
}

static int has_attr(const uvx_stanza_t *el, const char *name, size_t name_len)
{
    for (int i = 0; i < el->nattrs; i++)
        if (strncmp(el->attrs[i].name, name, name_len) == 0 && el->attrs[i].name[name_len] == '\0')
            return 1;
    return 0;
}

/* Adds "xmlns:prefix" = uri to `el` unless it is there already. */
static int declare_prefix(uvx_parser_t *p, uvx_stanza_t *el, const xmlChar *prefix,
                          const xmlChar *uri)
{
    buf_t *n = &p->eng->name_buf;
    buf_reset(n);
    int rc = buf_append(n, "xmlns:", 6);
    if (rc == 0)
        rc = buf_append(n, (const char *)prefix, dict_strlen(p, prefix));
    if (rc == 0 && !has_attr(el, n->data, n->len))
        rc = push_attr(p, el, n->data, n->len, (const char *)uri, dict_strlen(p, uri));
    return rc;
}

/* "prefix:local" in the name scratch buffer. */
static int join_qname(uvx_parser_t *p, const xmlChar *prefix, const xmlChar *local)
{
    size_t plen = dict_strlen(p, prefix), llen = dict_strlen(p, local);
    buf_t *n = &p->eng->name_buf;
    buf_reset(n);
    int rc = buf_reserve(n, plen + 1 + llen);
    if (rc != 0)
        return rc;
    memcpy(n->data, prefix, plen);
    n->data[plen] = ':';
    memcpy(n->data + plen + 1, local, llen);
    n->len = plen + 1 + llen;
    n->data[n->len] = '\0';
    return 0;
}

static int push_prefixed_attr(uvx_parser_t *p, uvx_stanza_t *el, const xmlChar *prefix,
                              const xmlChar *local, const xmlChar *uri, const char *value,
                              size_t value_len)
{
    int rc = 0;
    if (!is_xml_prefix((const char *)prefix) && uri != NULL)
        rc = declare_prefix(p, el, prefix, uri);
    if (rc == 0)
        rc = join_qname(p, prefix, local);
    if (rc == 0)
        rc = push_attr(p, el, p->eng->name_buf.data, p->eng->name_buf.len, value, value_len);
    trim_scratch(&p->eng->name_buf);
    return rc;
}

/* new_element() for the common case: at most STANZA_FAST_ATTRS attributes,
 * none in a namespace other than xml: and none with a '&' to restore, so
 * they go into the element's block as they are. NULL with *fits = 0 when
 * the element is not such a case. */
static uvx_stanza_t *new_plain_element(uvx_parser_t *p, const xmlChar *localname, const char *ns,
                                       size_t ns_len, int nb_attrs, const xmlChar **attrs,
                                       int *fits)
{
    stanza_attr_src_t src[STANZA_FAST_ATTRS];
    *fits = 0;
    if (nb_attrs > STANZA_FAST_ATTRS)
        return NULL;
    for (int i = 0; i < nb_attrs; i++, attrs += 5) {
        const xmlChar *prefix = attrs[1];
        size_t value_len = (size_t)(attrs[4] - attrs[3]);
        if ((prefix != NULL && !is_xml_prefix((const char *)prefix)) ||
            memchr(attrs[3], '&', value_len) != NULL)
            return NULL;
        src[i].prefix = (const char *)prefix;
        src[i].prefix_len = prefix != NULL ? 3 : 0;
        src[i].local = (const char *)attrs[0];
        src[i].local_len = dict_strlen(p, attrs[0]);
        src[i].value = (const char *)attrs[3];
        src[i].value_len = value_len;
    }
    *fits = 1;
    return stanza_new_element_with(&p->eng->arena, (const char *)localname,
                                   dict_strlen(p, localname), ns, ns_len, src, nb_attrs);
}

/* An element from a SAX2 start tag. `attrs` holds nb_attrs groups of
 * (localname, prefix, URI, value, value end). */
static uvx_stanza_t *new_element(uvx_parser_t *p, const xmlChar *localname, const xmlChar *uri,
                                 int nb_attrs, const xmlChar **attrs)
{
    const char *ns = (const char *)uri;
    size_t ns_len = 0;
    if (uri != NULL) {
        const struct name_info *u = dict_name(p, uri);
        ns_len = u->len;
        if (u->has_amp) {
            if (decode_amp(p, ns, ns_len) != 0)
                return NULL;
            ns = p->eng->value_buf.data;
            ns_len = p->eng->value_buf.len;
        }
    }
    int fits;
    uvx_stanza_t *el = new_plain_element(p, localname, ns, ns_len, nb_attrs, attrs, &fits);
    if (fits)
        return el;
    int slots = nb_attrs;
    for (int i = 0; i < nb_attrs; i++) {
        const xmlChar *prefix = attrs[5 * i + 1];
        if (prefix != NULL && !is_xml_prefix((const char *)prefix))
            slots++; /* room for its xmlns:prefix */
    }
    /* No room reserved for attribute strings: the element is the block
     * carved last, and its pool grows with each attribute pushed. */
    el = stanza_new_element_in(&p->eng->arena, (const char *)localname, dict_strlen(p, localname),
                               ns, ns_len, slots, 0);
    if (el == NULL)
        return NULL;
    for (int i = 0; i < nb_attrs; i++, attrs += 5) {
        const char *value = (const char *)attrs[3];
        size_t value_len = (size_t)(attrs[4] - attrs[3]);
        int rc;
        if (attrs[1] == NULL)
            rc = push_attr(p, el, (const char *)attrs[0], dict_strlen(p, attrs[0]), value,
                           value_len);
        else
            rc = push_prefixed_attr(p, el, attrs[1], attrs[0], attrs[2], value, value_len);
        if (rc != 0) {
            uvx_stanza_unref(el);
            return NULL;
        }
    }
    return el;
}

/* Turns the collected character data into a text child of `cur`. */
static int flush_text(uvx_parser_t *p)
{
    if (p->eng->text.len == 0)
        return 0;
    int rc = stanza_append_text_in(&p->eng->arena, p->cur, p->eng->text.data, p->eng->text.len);
    trim_scratch(&p->eng->text);
    return rc;
}

static int stanza_too_big(const uvx_parser_t *p, size_t offset)
{
    return offset - p->mark > p->max_stanza_size;
}

/* ---- The start tag a parked parser replays --------------------------------- */

static void prime_unref(prime_tag_t *t)
{
    if (t != NULL && --t->refs == 0)
        free(t);
}

/* Appends a namespace name as an attribute value libxml2 reads back as the
 * same string. A '&' in it can only be part of the "&#38;" libxml2 made of
 * one (see decode_amp()), and "&#38;" reads back as exactly that. */
static int append_ns_value(buf_t *b, const char *v)
{
    int rc = 0;
    for (; *v != '\0' && rc == 0; v++) {
        switch (*v) {
        case '<':
            rc = buf_append(b, "&lt;", 4);
            break;
        case '\'':
            rc = buf_append(b, "&apos;", 6);
            break;
        case '\n':
            rc = buf_append(b, "&#10;", 5);
            break;
        case '\r':
            rc = buf_append(b, "&#13;", 5);
            break;
        case '\t':
            rc = buf_append(b, "&#9;", 4);
            break;
        default:
            rc = buf_append(b, v, 1);
        }
    }
    return rc;
}

/* "<prefix:local xmlns='...' xmlns:p='...'>": the root's name and the
 * namespace declarations it made (nb_ns pairs of prefix, URI). */
static int build_prime(buf_t *b, const xmlChar *prefix, const xmlChar *localname, int nb_ns,
                       const xmlChar **namespaces)
{
    int rc = buf_append(b, "<", 1);
    if (rc == 0 && prefix != NULL) {
        rc = buf_append_str(b, (const char *)prefix);
        if (rc == 0)
            rc = buf_append(b, ":", 1);
    }
    if (rc == 0)
        rc = buf_append_str(b, (const char *)localname);
    for (int i = 0; i < nb_ns && rc == 0; i++) {
        const char *ns_prefix = (const char *)namespaces[2 * i];
        const char *uri = (const char *)namespaces[2 * i + 1];
        rc = buf_append_str(b, ns_prefix != NULL ? " xmlns:" : " xmlns");
        if (rc == 0 && ns_prefix != NULL)
            rc = buf_append_str(b, ns_prefix);
        if (rc == 0)
            rc = buf_append(b, "='", 2);
        if (rc == 0)
            rc = append_ns_value(b, uri != NULL ? uri : "");
        if (rc == 0)
            rc = buf_append(b, "'", 1);
    }
    if (rc == 0)
        rc = buf_append(b, ">", 1);
    return rc;
}

/* Keeps the tag to replay after parking, shared with the previous stream
 * of the pool when equal. Out of memory, the parser just never parks. */
static void remember_prime(uvx_parser_t *p, const xmlChar *prefix, const xmlChar *localname,
                           int nb_ns, const xmlChar **namespaces)
{
    parser_pool_t *pool = p->pool;
    buf_t *b = &p->eng->name_buf;
    prime_unref(p->prime);
    p->prime = NULL;
    buf_reset(b);
    if (build_prime(b, prefix, localname, nb_ns, namespaces) != 0) {
        trim_scratch(b);
        return;
    }
    prime_tag_t *t = pool->last_prime;
    if (t == NULL || t->len != b->len || memcmp(t->text, b->data, b->len) != 0) {
        t = malloc(sizeof(*t) + b->len + 1);
        if (t != NULL) {
            t->refs = 1; /* the pool's */
            t->len = b->len;
            memcpy(t->text, b->data, b->len + 1);
            prime_unref(pool->last_prime);
            pool->last_prime = t;
        }
    }
    if (t != NULL) {
        t->refs++;
        p->prime = t;
    }
    trim_scratch(b);
}

/* ---- SAX callbacks -------------------------------------------------------- */

static void open_stream(uvx_parser_t *p, const xmlChar *localname, const xmlChar *prefix,
                        const xmlChar *uri, int nb_ns, const xmlChar **namespaces, int nb_attrs,
                        const xmlChar **attrs)
{
    /* libxml2 reports the start tag with its position on the closing '>'
     * or "/>": the next stream, after a restart, begins past it. */
    const xmlChar *c = p->eng->ctxt->input->cur;
    size_t tag_rest = c[0] == '>' ? 1 : (c[0] == '/' && c[1] == '>') ? 2 : 0;
    p->event_end = parsed_offset(p) + tag_rest;
    /* A replayed tag is ours, not the peer's: it does not count. */
    if (!p->replaying && stanza_too_big(p, p->event_end)) {
        fail_and_stop(p, UVX_ETOOBIG, COND_POLICY);
        return;
    }
    p->mark = p->event_end;
    if (p->pool != NULL && !p->replaying)
        remember_prime(p, prefix, localname, nb_ns, namespaces);
    if (p->quiet_open) {
        p->quiet_open = 0;
        return;
    }
    if (p->cb.stream_open == NULL)
        return;
    uvx_stanza_t *root = new_element(p, localname, uri, nb_attrs, attrs);
    if (root == NULL) {
        fail_and_stop(p, UVX_ENOMEM, COND_MEMORY);
        return;
    }
    p->cb.stream_open(p->ud, root);
    uvx_stanza_unref(root);
    after_event(p);
}

static void on_start(void *ctx, const xmlChar *localname, const xmlChar *prefix, const xmlChar *uri,
                     int nb_ns, const xmlChar **namespaces, int nb_attrs, int nb_defaulted,
                     const xmlChar **attrs)
{
    uvx_parser_t *p = ctx;
    (void)nb_defaulted;
    if (p->halted) {
        xmlStopParser(p->eng->ctxt);
        return;
    }
    unsigned depth = p->depth++;
    if (depth >= p->max_depth) {
        fail_and_stop(p, UVX_ETOODEEP, COND_POLICY);
        return;
    }
    if (depth == 0) {
        open_stream(p, localname, prefix, uri, nb_ns, namespaces, nb_attrs, attrs);
        return;
    }
    if (stanza_too_big(p, parsed_offset(p))) {
        fail_and_stop(p, UVX_ETOOBIG, COND_POLICY);
        return;
    }
    if (depth > 1 && flush_text(p) != 0) {
        fail_and_stop(p, UVX_ENOMEM, COND_MEMORY);
        return;
    }
    if (depth == 1)
        prepare_arena(p->eng);
    uvx_stanza_t *el = new_element(p, localname, uri, nb_attrs, attrs);
    if (el == NULL) {
        fail_and_stop(p, UVX_ENOMEM, COND_MEMORY);
        return;
    }
    if (depth == 1)
        p->stanza = el;
    else
        stanza_append_child(p->cur, el);
    p->cur = el;
}

static void close_stream(uvx_parser_t *p)
{
    p->event_end = p->mark = parsed_offset(p);
    if (p->cb.stream_close != NULL)
        p->cb.stream_close(p->ud);
    after_event(p);
}

static void end_stanza(uvx_parser_t *p)
{
    uvx_stanza_t *s = p->stanza;
    p->stanza = p->cur = NULL;
    if (s == NULL)
        return;
    p->event_end = parsed_offset(p);
    if (stanza_too_big(p, p->event_end)) {
        uvx_stanza_unref(s);
        fail_and_stop(p, UVX_ETOOBIG, COND_POLICY);
        return;
    }
    p->mark = p->event_end;
    if (p->cb.stanza != NULL)
        p->cb.stanza(p->ud, s);
    uvx_stanza_unref(s);
    after_event(p);
}

static void on_end(void *ctx, const xmlChar *localname, const xmlChar *prefix, const xmlChar *uri)
{
    uvx_parser_t *p = ctx;
    (void)localname, (void)prefix, (void)uri;
    if (p->halted) {
        xmlStopParser(p->eng->ctxt);
        return;
    }
    unsigned depth = --p->depth;
    if (depth == 0) {
        close_stream(p);
        return;
    }
    if (flush_text(p) != 0) {
        fail_and_stop(p, UVX_ENOMEM, COND_MEMORY);
        return;
    }
    if (depth == 1)
        end_stanza(p);
    else
        p->cur = p->cur->parent;
}

/* Character data and white space alike. libxml2 does not cope with being
 * stopped from here, so errors only halt (see fail()). */
static void on_text(void *ctx, const xmlChar *text, int len)
{
    uvx_parser_t *p = ctx;
    if (p->halted)
        return;
    if (p->depth >= 2) {
        /* Text is never longer than its markup, so this cap holds it within
         * the stanza limit; the stanza itself is measured at each tag, at
         * its end and after every slice. */
        if (p->eng->text.len + (size_t)len > p->max_stanza_size) {
            fail(p, UVX_ETOOBIG, COND_POLICY);
            return;
        }
        buf_t *t = &p->eng->text;
        if (t->cap - t->len > (size_t)len) { /* the common case, inline */
            memcpy(t->data + t->len, text, (size_t)len);
            t->len += (size_t)len;
            t->data[t->len] = '\0';
        } else if (buf_append(t, (const char *)text, (size_t)len) != 0) {
            fail(p, UVX_ENOMEM, COND_MEMORY);
        }
    } else if (p->depth == 1) {
        /* White space between stanzas (keepalives) is not part of the next
         * one; text at this level is dropped. */
        p->mark = parsed_offset(p);
    }
}

/* 1 if s[0..len) is UTF-8 without overlong forms, surrogates or values
 * past U+10FFFF. */
static int strict_utf8(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i], cp, min;
        size_t n;
        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xE0) == 0xC0)
            n = 2, cp = c & 0x1F, min = 0x80;
        else if ((c & 0xF0) == 0xE0)
            n = 3, cp = c & 0x0F, min = 0x800;
        else if ((c & 0xF8) == 0xF0)
            n = 4, cp = c & 0x07, min = 0x10000;
        else
            return 0;
        if (len - i < n)
            return 0;
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += n;
    }
    return 1;
}

/* CDATA sections: libxml2 2.9's push parser checks their UTF-8 only by the
 * decoded value, so overlong forms (C0 A4 for '$') would reach the tree and
 * make our own output unparseable. Check them properly. */
static void on_cdata(void *ctx, const xmlChar *text, int len)
{
    uvx_parser_t *p = ctx;
    if (p->halted)
        return;
    if (!strict_utf8(text, (size_t)len))
        fail(p, UVX_EPARSE, COND_PARSE);
    else
        on_text(ctx, text, len);
}

static void restricted(void *ctx)
{
    uvx_parser_t *p = ctx;
    if (p->halted)
        xmlStopParser(p->eng->ctxt);
    else
        fail_and_stop(p, UVX_ERESTRICTED, COND_RESTRICTED);
}

static void on_subset(void *ctx, const xmlChar *name, const xmlChar *external_id,
                      const xmlChar *system_id)
{
    (void)name, (void)external_id, (void)system_id;
    restricted(ctx);
}

static void on_entity_decl(void *ctx, const xmlChar *name, int type, const xmlChar *public_id,
                           const xmlChar *system_id, xmlChar *content)
{
    (void)name, (void)type, (void)public_id, (void)system_id, (void)content;
    restricted(ctx);
}

static void on_pi(void *ctx, const xmlChar *target, const xmlChar *data)
{
    (void)target, (void)data;
    restricted(ctx);
}

static void on_comment(void *ctx, const xmlChar *value)
{
    (void)value;
    restricted(ctx);
}

/* Every libxml2 diagnostic for this context lands here (nothing reaches
 * stderr). Warnings are harmless; errors include namespace errors, which
 * libxml2 would let pass. */
static void on_xml_error(void *ctx, xmlErrorPtr e)
{
    uvx_parser_t *p = ctx;
    if (e == NULL || e->level < XML_ERR_ERROR || p->halted)
        return;
    if (e->code == XML_ERR_NO_MEMORY)
        fail(p, UVX_ENOMEM, COND_MEMORY);
    else
        fail(p, UVX_EPARSE, COND_PARSE);
}

/* The legacy printf-style channels, in case libxml2 uses them anyway. */
static void on_xml_message(void *ctx, const char *msg, ...)
{
    (void)ctx, (void)msg;
}

/* ---- Feeding -------------------------------------------------------------- */

/* 1 if all input libxml2 holds unparsed is white space. It keeps short runs
 * of it (until a '<' shows they are not the start of longer text), and
 * whitespace keepalives between stanzas must not count toward the next. */
static int only_space_pending(const uvx_parser_t *p)
{
    const xmlParserInput *in = p->eng->ctxt->input;
    for (const xmlChar *c = in->cur; c < in->end; c++)
        if (*c != ' ' && *c != '\n' && *c != '\r' && *c != '\t')
            return 0;
    return 1;
}

/* Gives data[0..len) to libxml2 in slices. Returns how many of the bytes
 * belong to the current stream: all of them, or on a restart those before
 * the restart point. */
static size_t push_slices(uvx_parser_t *p, const char *data, size_t len)
{
    size_t off = 0;
    while (off < len) {
        size_t n = len - off < FEED_SLICE ? len - off : FEED_SLICE;
        p->slice_start = p->fed;
        p->fed += n;
        int rc = xmlParseChunk(p->eng->ctxt, data + off, (int)n, 0);
        if (p->reset_pending && p->err == 0)
            return off + (p->event_end > p->slice_start ? p->event_end - p->slice_start : 0);
        if (p->halted)
            return len;
        if (rc != 0) {
            fail(p, UVX_EPARSE, COND_PARSE);
            return len;
        }
        const xmlParserInput *in = p->eng->ctxt->input;
        if ((size_t)(in->end - in->cur) > ENGINE_KEEP_PENDING)
            p->eng->grown = 1;
        if (p->depth == 1 && only_space_pending(p))
            p->mark = p->fed;
        /* Counts what libxml2 buffers unparsed too (e.g. a huge start tag). */
        if (stanza_too_big(p, p->fed)) {
            fail(p, UVX_ETOOBIG, COND_POLICY);
            return len;
        }
        off += n;
    }
    return len;
}

/* Feeds `data`, preceded by any carried-over input, through restarts. */
static int run(uvx_parser_t *p, const char *data, size_t len)
{
    for (;;) {
        if (p->stopped) {
            buf_free(&p->carry);
            return p->err;
        }
        if (p->carry.len > 0) {
            buf_t c = p->carry;
            p->carry = (buf_t)BUF_INIT;
            size_t used = push_slices(p, c.data, c.len);
            if (p->reset_pending && p->err == 0 &&
                buf_append(&p->carry, c.data + used, c.len - used) != 0) {
                p->reset_pending = 0;
                fail(p, UVX_ENOMEM, COND_MEMORY);
            }
            buf_free(&c);
        } else if (len > 0) {
            size_t used = push_slices(p, data, len);
            data += used;
            len -= used;
        } else {
            return p->err;
        }
        if (p->reset_pending && !p->stopped) {
            /* A reset from the error callback drops the rest of the input:
             * its position is unknown and it is likely garbage anyway. */
            int err = p->err;
            if (err != 0)
                buf_free(&p->carry);
            if (restart(p) != 0) {
                buf_free(&p->carry);
                return UVX_ENOMEM;
            }
            if (err != 0)
                return err;
            continue;
        }
        if (p->err != 0) {
            buf_free(&p->carry);
            return p->err;
        }
    }
}

/* ---- Engines and pools ---------------------------------------------------- */

static void engine_free(engine_t *e)
{
    if (e == NULL)
        return;
    if (e->ctxt != NULL)
        xmlFreeParserCtxt(e->ctxt);
    prime_unref(e->prime);
    stanza_arena_release(e->arena);
    buf_free(&e->text);
    buf_free(&e->name_buf);
    buf_free(&e->value_buf);
    free(e);
}

/* Makes `ctxt` intern its names in `dict` instead of its own dictionary,
 * as libxml2 itself does for contexts that share one. The context must
 * hold no name yet (it is reset before use). */
static int use_dict(xmlParserCtxtPtr ctxt, xmlDictPtr dict)
{
    const xmlChar *xml = xmlDictLookup(dict, BAD_CAST "xml", 3);
    const xmlChar *xmlns = xmlDictLookup(dict, BAD_CAST "xmlns", 5);
    const xmlChar *xml_ns = xmlDictLookup(dict, XML_XML_NAMESPACE, 36);
    if (xml == NULL || xmlns == NULL || xml_ns == NULL)
        return UVX_ENOMEM;
    xmlDictFree(ctxt->dict);
    ctxt->dict = dict;
    xmlDictReference(dict);
    /* libxml2 recognizes these by address. */
    ctxt->str_xml = xml;
    ctxt->str_xmlns = xmlns;
    ctxt->str_xml_ns = xml_ns;
    return 0;
}

/* A new engine for `p`, on the pool's dictionary if it has a pool. Its
 * context needs a reset_context() before use. */
static engine_t *engine_new(uvx_parser_t *p)
{
    engine_t *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    xmlSAXHandler sax;
    memset(&sax, 0, sizeof(sax));
    sax.initialized = XML_SAX2_MAGIC;
    sax.startElementNs = on_start;
    sax.endElementNs = on_end;
    sax.characters = on_text;
    sax.ignorableWhitespace = on_text;
    sax.cdataBlock = on_cdata;
    sax.internalSubset = on_subset;
    sax.externalSubset = on_subset;
    sax.entityDecl = on_entity_decl;
    sax.processingInstruction = on_pi;
    sax.comment = on_comment;
    sax.serror = on_xml_error;
    sax.warning = on_xml_message;
    sax.error = on_xml_message;
    sax.fatalError = on_xml_message;

    xmlInitParser();
    e->ctxt = xmlCreatePushParserCtxt(&sax, p, NULL, 0, NULL);
    if (e->ctxt == NULL || (p->pool != NULL && use_dict(e->ctxt, p->pool->dict) != 0)) {
        engine_free(e);
        return NULL;
    }
    return e;
}

/* A fresh dictionary once the shared one holds many names: names peers
 * sent once do not stay in memory for the life of the loop. Engines on the
 * old one are freed as they come back; it goes with the last of them. */
static void pool_renew_dict(parser_pool_t *pool)
{
    if (xmlDictSize(pool->dict) <= POOL_DICT_NAMES)
        return;
    xmlDictPtr dict = xmlDictCreate();
    if (dict == NULL)
        return;
    xmlDictSetLimit(dict, XML_MAX_DICTIONARY_LIMIT);
    xmlDictFree(pool->dict);
    pool->dict = dict;
    for (int i = 0; i < pool->nidle; i++)
        engine_free(pool->idle[i]);
    pool->nidle = 0;
}

static int same_prime(const prime_tag_t *a, const prime_tag_t *b)
{
    return a != NULL && b != NULL &&
           (a == b || (a->len == b->len && memcmp(a->text, b->text, a->len) == 0));
}

/* Takes an idle engine for `p`, best first: the one p parked; one parked
 * with p's start tag (for a parked p); one holding no stream; while the
 * pool is full, the oldest. NULL: better make a new one. `*same_stream`:
 * the engine holds a stream p can go on with. */
static engine_t *pool_take(parser_pool_t *pool, const uvx_parser_t *p, int *same_stream)
{
    int pick = -1;
    *same_stream = 1;
    for (int i = pool->nidle - 1; i >= 0 && pick < 0 && p->parked; i--)
        if (pool->idle[i]->owner == p)
            pick = i;
    for (int i = pool->nidle - 1; i >= 0 && pick < 0 && p->parked; i--)
        if (same_prime(pool->idle[i]->prime, p->prime))
            pick = i;
    if (pick < 0)
        *same_stream = 0;
    for (int i = pool->nidle - 1; i >= 0 && pick < 0; i--)
        if (pool->idle[i]->prime == NULL)
            pick = i;
    if (pick < 0 && pool->nidle == POOL_KEEP)
        pick = 0;
    if (pick < 0)
        return NULL;
    engine_t *e = pool->idle[pick];
    memmove(&pool->idle[pick], &pool->idle[pick + 1],
            (size_t)(pool->nidle - pick - 1) * sizeof(pool->idle[0]));
    pool->nidle--;
    prime_unref(e->prime);
    e->prime = NULL;
    return e;
}

/* Keeps `e` for later, evicting the oldest engine when full. */
static void pool_put(parser_pool_t *pool, engine_t *e)
{
    pool_renew_dict(pool);
    if (e->grown || e->ctxt->dict != pool->dict) {
        engine_free(e);
        return;
    }
    if (pool->nidle == POOL_KEEP) {
        engine_free(pool->idle[0]);
        memmove(&pool->idle[0], &pool->idle[1], (POOL_KEEP - 1) * sizeof(pool->idle[0]));
        pool->nidle--;
    }
    pool->idle[pool->nidle++] = e;
}

/* The engine `p` parked no longer holds its stream (p restarts or goes). */
static void pool_disown(parser_pool_t *pool, const uvx_parser_t *p)
{
    for (int i = 0; pool != NULL && i < pool->nidle; i++)
        if (pool->idle[i]->owner == p)
            pool->idle[i]->owner = NULL;
}

static void pool_unref(parser_pool_t *pool)
{
    if (pool == NULL || --pool->refs > 0)
        return;
    for (int i = 0; i < pool->nidle; i++)
        engine_free(pool->idle[i]);
    prime_unref(pool->last_prime);
    xmlDictFree(pool->dict);
    free(pool);
}

/* Hands the engine back to the pool; `parked`: p's stream stays open and
 * the engine still holds it, for p to take back untouched. */
static void give_back(uvx_parser_t *p, int parked)
{
    engine_t *e = p->eng;
    p->eng = NULL;
    p->parked = (unsigned char)parked;
    trim_scratch(&e->text);
    trim_scratch(&e->name_buf);
    trim_scratch(&e->value_buf);
    prepare_arena(e);
    e->owner = parked ? p : NULL;
    e->prime = NULL;
    if (parked) {
        e->prime = p->prime;
        p->prime->refs++;
    }
    pool_put(p->pool, e);
}

/* 1 if p's stream can continue from a replay of its start tag: the root
 * is open, no stanza is, and libxml2 holds nothing but white space between
 * stanzas (which the stream drops anyway). */
static int at_stanza_boundary(const uvx_parser_t *p)
{
    const xmlParserCtxt *ctxt = p->eng->ctxt;
    return p->prime != NULL && p->depth == 1 && p->stanza == NULL && p->carry.len == 0 &&
           !p->halted && !p->reset_pending && p->eng->text.len == 0 &&
           ctxt->instate == XML_PARSER_CONTENT && ctxt->nameNr == 1 && only_space_pending(p);
}

/* After a feed (or a reset, or a stop) outside any feed: a pooled parser
 * that does not need its engine gives it back. */
static void park_if_idle(uvx_parser_t *p)
{
    if (p->pool == NULL || p->eng == NULL || p->in_feed)
        return;
    if (p->err != 0 || p->stopped) /* feeds do not parse until a reset */
        give_back(p, 0);
    else if (p->depth == 0 && p->fed == 0 && p->carry.len == 0) /* a new stream */
        give_back(p, 0);
    else if (at_stanza_boundary(p))
        give_back(p, 1);
}

/* Feeds the remembered start tag to a reset engine: depth 1 again, with
 * the root's namespaces, and no event. Stream offsets restart with it. */
static int replay_prime(uvx_parser_t *p)
{
    p->depth = 0;
    p->fed = p->slice_start = p->mark = p->event_end = 0;
    p->quiet_open = p->replaying = 1;
    push_slices(p, p->prime->text, p->prime->len);
    p->quiet_open = p->replaying = 0;
    if (p->err == 0 && p->depth != 1)
        fail(p, UVX_EPARSE, COND_PARSE); /* cannot happen: the tag came from libxml2 */
    return p->err;
}

/* Gives an engine-less parser an engine to feed: one holding a stream it
 * can go on with, or another one reset (and primed when a stream is open). */
static int borrow(uvx_parser_t *p)
{
    int same_stream = 0;
    engine_t *e = p->pool != NULL ? pool_take(p->pool, p, &same_stream) : NULL;
    if (e != NULL && same_stream) {
        if (e->owner != p) {
            /* Another parser's stream, equal in libxml2's eyes: carry on
             * from where its bytes end (all parsed, or white space). */
            const xmlParserInput *in = e->ctxt->input;
            p->fed = (size_t)in->consumed + (size_t)(in->end - in->base);
            p->slice_start = p->mark = p->event_end = p->fed;
        }
        e->owner = NULL;
        e->ctxt->userData = p;
        p->eng = e;
        p->parked = 0;
        return 0;
    }
    if (e == NULL)
        e = engine_new(p);
    if (e == NULL)
        return UVX_ENOMEM;
    p->eng = e;
    if (reset_context(p) != 0)
        return UVX_ENOMEM;
    if (!p->parked)
        return 0;
    p->parked = 0;
    return replay_prime(p);
}

/* ---- Public API ----------------------------------------------------------- */

uvx_parser_t *uvx_parser_new(const uvx_parser_callbacks_t *cb, void *ud,
                             const uvx_parser_limits_t *limits)
{
    uvx_parser_t *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    if (cb != NULL)
        p->cb = *cb;
    p->ud = ud;
    p->max_stanza_size = UVX_DEFAULT_MAX_STANZA_SIZE;
    p->max_depth = UVX_DEFAULT_MAX_DEPTH;
    if (limits != NULL && limits->max_stanza_size != 0)
        p->max_stanza_size = limits->max_stanza_size;
    if (limits != NULL && limits->max_depth != 0)
        p->max_depth = limits->max_depth;
    p->eng = engine_new(p);
    /* Starting with a reset gives the first stream exactly the state of a
     * restarted one (e.g. UTF-8 assumed, no guessing from the first bytes). */
    if (p->eng == NULL || restart(p) != 0) {
        uvx_parser_free(p);
        return NULL;
    }
    return p;
}

void uvx_parser_free(uvx_parser_t *p)
{
    if (p == NULL)
        return;
    if (p->in_feed) {
        /* Against the rules, but better late than a use after free. */
        p->free_pending = p->stopped = p->halted = 1;
        return;
    }
    uvx_stanza_unref(p->stanza);
    p->stanza = NULL;
    if (p->eng != NULL && p->pool != NULL)
        give_back(p, 0);
    engine_free(p->eng);
    pool_disown(p->pool, p);
    pool_unref(p->pool);
    prime_unref(p->prime);
    buf_free(&p->carry);
    free(p);
}

int uvx_parser_feed(uvx_parser_t *p, const char *buf, size_t len)
{
    if (p == NULL || (buf == NULL && len > 0))
        return UVX_EINVAL;
    if (p->in_feed)
        return UVX_ESTATE;
    if (p->stopped)
        return UVX_ECLOSED;
    if (p->err != 0)
        return p->err;
    if (p->eng == NULL && len == 0 && p->carry.len == 0)
        return 0;
    p->in_feed = 1;
    int rc = 0;
    if (p->eng == NULL && (rc = borrow(p)) != 0) {
        fail(p, rc, rc == UVX_ENOMEM ? COND_MEMORY : COND_PARSE);
        rc = p->err;
        if (p->reset_pending && !p->stopped) /* from the error callback */
            restart(p);
    } else {
        rc = run(p, buf, len);
    }
    p->in_feed = 0;
    if (p->free_pending) {
        uvx_parser_free(p);
        return UVX_ECLOSED;
    }
    park_if_idle(p);
    return rc;
}

void uvx_parser_stop(uvx_parser_t *p)
{
    if (p == NULL)
        return;
    p->stopped = p->halted = 1;
    park_if_idle(p);
}

int uvx_parser_reset(uvx_parser_t *p)
{
    if (p == NULL)
        return UVX_EINVAL;
    if (p->in_feed) {
        /* Deferred: see keep_buffered_input() and run(). */
        p->reset_pending = p->halted = 1;
        return 0;
    }
    buf_free(&p->carry);
    /* A pooled parser need not hold a context until bytes come. */
    if (p->pool != NULL && p->eng != NULL)
        give_back(p, 0);
    return restart(p);
}

int parser_prime(uvx_parser_t *p, const char *open_tag, size_t len)
{
    if (p == NULL || open_tag == NULL || p->in_feed)
        return UVX_EINVAL;
    int rc = uvx_parser_reset(p);
    if (rc != 0)
        return rc;
    p->quiet_open = 1;
    rc = uvx_parser_feed(p, open_tag, len);
    p->quiet_open = 0;
    if (rc == 0 && p->depth != 1)
        rc = UVX_EINVAL;
    return rc;
}

parser_pool_t *parser_pool_new(void)
{
    parser_pool_t *pool = calloc(1, sizeof(*pool));
    if (pool == NULL)
        return NULL;
    xmlInitParser();
    pool->dict = xmlDictCreate();
    if (pool->dict == NULL) {
        free(pool);
        return NULL;
    }
    /* The limit each context's own dictionary would have. */
    xmlDictSetLimit(pool->dict, XML_MAX_DICTIONARY_LIMIT);
    pool->refs = 1;
    return pool;
}

void parser_pool_free(parser_pool_t *pool)
{
    pool_unref(pool);
}

void parser_set_pool(uvx_parser_t *p, parser_pool_t *pool)
{
    if (p == NULL || p->pool == pool || p->in_feed)
        return;
    /* An engine with a stream under way stays until the stream is done
     * with it (pool_put() frees one on another dictionary); a fresh one
     * goes now, so a new connection holds none until bytes arrive. */
    if (p->eng != NULL && p->depth == 0 && p->fed == 0 && p->carry.len == 0 && p->err == 0) {
        engine_free(p->eng);
        p->eng = NULL;
        p->parked = 0;
    }
    pool_disown(p->pool, p);
    pool_unref(p->pool);
    p->pool = pool;
    if (pool != NULL)
        pool->refs++;
}

int parser_is_parked(const uvx_parser_t *p)
{
    return p != NULL && p->eng == NULL;
}

int parser_between_stanzas(const uvx_parser_t *p)
{
    if (p == NULL || p->err != 0 || p->stopped || p->depth != 1 || p->stanza != NULL ||
        p->carry.len != 0)
        return 0;
    if (p->eng == NULL)
        return 1; /* parked, which it only ever is between stanzas */
    const xmlParserCtxt *ctxt = p->eng->ctxt;
    return p->eng->text.len == 0 && ctxt->instate == XML_PARSER_CONTENT && ctxt->nameNr == 1 &&
           only_space_pending(p);
}
