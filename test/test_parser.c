/*
 * Unit tests for the XML stream parser (lib/parser.c): events, namespaces,
 * chunking independence, stream restarts, limits, restricted and hostile
 * XML, and the captured server streams in test/data.
 *
 * Events are recorded as text lines in the canonical form the corpus uses:
 * "OPEN " + canon(root), canon(stanza) per depth-1 element, "CLOSE", plus
 * "ERROR <condition>" for the error callback.
 */
#include "uvxmpp.h"
#include "buf.h"
#include "parser.h"
#include "tap.h"

#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NS_STREAMS "http://etherx.jabber.org/streams"

#define STREAM_HEAD                                                                                \
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "                                   \
    "xmlns:stream='http://etherx.jabber.org/streams' from='example.com' id='s1' "                  \
    "version='1.0' xml:lang='en'>"

#define CANON_HEAD                                                                                 \
    "OPEN <{http://etherx.jabber.org/streams}stream from=\"example.com\" id=\"s1\" "               \
    "version=\"1.0\" xml:lang=\"en\"></>\n"

/* ---- Canonical form --------------------------------------------------------- */

static void die_if(int failed)
{
    if (failed) {
        fprintf(stderr, "out of memory\n");
        abort();
    }
}

static void put(buf_t *b, const char *s)
{
    die_if(buf_append_str(b, s) != 0);
}

static void put_escaped(buf_t *b, const char *s)
{
    static const char *const escapes[256] = {
        ['&'] = "&amp;",  ['<'] = "&lt;",   ['>'] = "&gt;",  ['"'] = "&quot;",
        ['\n'] = "&#10;", ['\r'] = "&#13;", ['\t'] = "&#9;",
    };
    for (; *s; s++) {
        const char *escape = escapes[(unsigned char)*s];
        if (escape != NULL)
            put(b, escape);
        else
            die_if(buf_append(b, s, 1) != 0);
    }
}

static int is_ns_declaration(const char *name)
{
    return strcmp(name, "xmlns") == 0 || strncmp(name, "xmlns:", 6) == 0;
}

static const uvx_stanza_t *sort_subject;

static int by_attr_name(const void *a, const void *b)
{
    const char *na, *nb;
    uvx_stanza_attr_at(sort_subject, *(const int *)a, &na, NULL);
    uvx_stanza_attr_at(sort_subject, *(const int *)b, &nb, NULL);
    return strcmp(na, nb);
}

static void canon(buf_t *b, uvx_stanza_t *e)
{
    const char *ns = uvx_stanza_ns(e);
    put(b, "<{");
    put(b, ns ? ns : "");
    put(b, "}");
    put(b, uvx_stanza_name(e));
    int n = uvx_stanza_attr_count(e);
    int *order = malloc(sizeof(int) * (size_t)(n + 1));
    die_if(order == NULL);
    for (int i = 0; i < n; i++)
        order[i] = i;
    sort_subject = e;
    qsort(order, (size_t)n, sizeof(int), by_attr_name);
    for (int i = 0; i < n; i++) {
        const char *name, *value;
        uvx_stanza_attr_at(e, order[i], &name, &value);
        if (is_ns_declaration(name))
            continue;
        put(b, " ");
        put(b, name);
        put(b, "=\"");
        put_escaped(b, value);
        put(b, "\"");
    }
    free(order);
    put(b, ">");
    for (uvx_stanza_t *c = uvx_stanza_children(e); c; c = uvx_stanza_next(c)) {
        if (uvx_stanza_is_text(c))
            put_escaped(b, uvx_stanza_text(c));
        else
            canon(b, c);
    }
    put(b, "</>");
}

static char *canon_string(uvx_stanza_t *e)
{
    buf_t b = BUF_INIT;
    canon(&b, e);
    return buf_steal(&b, NULL);
}

/* ---- Recording events --------------------------------------------------------- */

typedef struct run_opts {
    uvx_parser_limits_t limits;
    int client_restarts;  /* reset after <proceed/> and <success/>, as a client does */
    const char *stop_on;  /* uvx_parser_stop() in the callback of this stanza */
    const char *reset_on; /* uvx_parser_reset() in the callback of this stanza */
    int reset_in_open;    /* uvx_parser_reset() in the first stream_open */
    int reset_on_error;   /* uvx_parser_reset() in the error callback */
    int feed_in_callback; /* try a nested feed from the stanza callback */
} run_opts_t;

typedef struct rec {
    buf_t log;
    uvx_parser_t *p;
    const run_opts_t *o;
    int errors, opens, stanzas, closes;
    int nested_rc;
} rec_t;

static void on_open(void *ud, uvx_stanza_t *root)
{
    rec_t *r = ud;
    r->opens++;
    CHECK(uvx_stanza_children(root) == NULL);
    put(&r->log, "OPEN ");
    canon(&r->log, root);
    put(&r->log, "\n");
    if (r->o->reset_in_open && r->opens == 1)
        uvx_parser_reset(r->p);
}

static int restarts_stream(uvx_stanza_t *s)
{
    const char *name = uvx_stanza_name(s), *ns = uvx_stanza_ns(s);
    if (ns == NULL)
        return 0;
    return (strcmp(name, "proceed") == 0 && strcmp(ns, UVX_NS_TLS) == 0) ||
           (strcmp(name, "success") == 0 && strcmp(ns, UVX_NS_SASL) == 0);
}

static void on_stanza(void *ud, uvx_stanza_t *s)
{
    rec_t *r = ud;
    r->stanzas++;
    CHECK(uvx_stanza_parent(s) == NULL);
    canon(&r->log, s);
    put(&r->log, "\n");
    const char *name = uvx_stanza_name(s);
    if (r->o->feed_in_callback)
        r->nested_rc = uvx_parser_feed(r->p, "<x/>", 4);
    if ((r->o->client_restarts && restarts_stream(s)) ||
        (r->o->reset_on && strcmp(name, r->o->reset_on) == 0))
        uvx_parser_reset(r->p);
    if (r->o->stop_on && strcmp(name, r->o->stop_on) == 0)
        uvx_parser_stop(r->p);
}

static void on_close(void *ud)
{
    rec_t *r = ud;
    r->closes++;
    put(&r->log, "CLOSE\n");
}

static void on_error(void *ud, int err, const char *condition)
{
    rec_t *r = ud;
    r->errors++;
    put(&r->log, "ERROR ");
    put(&r->log, condition);
    put(&r->log, " ");
    put(&r->log, uvx_strerror(err));
    put(&r->log, "\n");
    if (r->o->reset_on_error)
        uvx_parser_reset(r->p);
}

static const uvx_parser_callbacks_t record_cb = {on_open, on_stanza, on_close, on_error};

/* Set while the cases run again with pooled parsers (see run_pooled()):
 * rec_init() attaches every parser to it, and parse_cuts() has other
 * parsers use the pool between two feeds, so that the next feed goes on in
 * a context another stream left (same start tag) or from a replayed start
 * tag, rather than in the parser's own context. */
static parser_pool_t *test_pool;

/* Parsers that each park a stream in the pool, in turn with the start tag
 * of no test stream, of STREAM_HEAD, and of the short "<s>" root. */
static void disturb_pool(void)
{
    static const char *const streams[] = {
        "<o:other xmlns='urn:other' xmlns:o='urn:o' xmlns:stream='urn:x'><stream:a/>",
        STREAM_HEAD "<message><body>x</body></message> \n",
        "<s xmlns='jabber:client'><presence/>\r",
    };
    static unsigned turn;
    if (test_pool == NULL)
        return;
    const char *in = streams[turn++ % 3];
    for (int i = 0; i < 8; i++) {
        uvx_parser_t *p = uvx_parser_new(NULL, NULL, NULL);
        die_if(p == NULL);
        parser_set_pool(p, test_pool);
        CHECK_INT(uvx_parser_feed(p, in, strlen(in)), 0);
        CHECK(parser_is_parked(p));
        uvx_parser_free(p);
    }
}

/* A new pool that rec_init() attaches every parser to until drop_pool(). */
static parser_pool_t *use_new_pool(void)
{
    parser_pool_t *pool = parser_pool_new();
    die_if(pool == NULL);
    test_pool = pool;
    return pool;
}

static void drop_pool(parser_pool_t *pool)
{
    test_pool = NULL;
    parser_pool_free(pool);
}

static void rec_init(rec_t *r, const run_opts_t *o)
{
    static const run_opts_t defaults;
    memset(r, 0, sizeof(*r));
    r->o = o ? o : &defaults;
    r->p = uvx_parser_new(&record_cb, r, &r->o->limits);
    die_if(r->p == NULL);
    if (test_pool != NULL) {
        parser_set_pool(r->p, test_pool);
        CHECK(parser_is_parked(r->p));
    }
}

/* Two recorders whose parsers share a new pool. */
static parser_pool_t *pooled_pair(rec_t *a, rec_t *b)
{
    parser_pool_t *pool = use_new_pool();
    rec_init(a, NULL);
    rec_init(b, NULL);
    return pool;
}

/* Frees the parser and returns the log (malloc'd). */
static char *rec_finish(rec_t *r)
{
    uvx_parser_free(r->p);
    char *log = buf_steal(&r->log, NULL);
    return log ? log : strdup("");
}

/* Feeds a NUL-terminated string; the feed's result. */
static int feed(rec_t *r, const char *s)
{
    return uvx_parser_feed(r->p, s, strlen(s));
}

/* Parses `in` cut into chunks ending at cuts[0..ncuts) (then the rest).
 * Returns the log; *last_rc (if not NULL) gets the last feed's result. */
static char *parse_cuts(const char *in, size_t len, const size_t *cuts, int ncuts,
                        const run_opts_t *o, int *last_rc)
{
    rec_t r;
    rec_init(&r, o);
    size_t at = 0;
    int rc = 0;
    for (int i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        rc = uvx_parser_feed(r.p, in + at, end - at);
        at = end;
        if (i < ncuts)
            disturb_pool();
    }
    if (last_rc)
        *last_rc = rc;
    return rec_finish(&r);
}

static char *parse_whole(const char *in, const run_opts_t *o, int *last_rc)
{
    return parse_cuts(in, strlen(in), NULL, 0, o, last_rc);
}

/* A small deterministic generator (xorshift32), so failures reproduce. */
static uint32_t rng_state = 2463534242u;

static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

/* Random cut points: mostly small chunks, sometimes single bytes. */
static int random_cuts(size_t len, size_t *cuts, int max_cuts)
{
    int n = 0;
    size_t at = 0;
    size_t max_chunk = 1 + rng() % 64;
    while (n < max_cuts) {
        at += 1 + rng() % max_chunk;
        if (at >= len)
            break;
        cuts[n++] = at;
    }
    return n;
}

/* Checks that every two-chunk split and `rounds` random chunkings of `in`
 * produce the same events as feeding it whole. */
static void check_chunking(const char *in, const run_opts_t *o, int rounds)
{
    size_t len = strlen(in);
    int whole_rc;
    char *want = parse_whole(in, o, &whole_rc);
    int mismatches = 0;
    for (size_t i = 0; i <= len; i++) {
        int rc;
        char *got = parse_cuts(in, len, &i, 1, o, &rc);
        if ((strcmp(got, want) != 0 || rc != whole_rc) && mismatches++ < 3)
            tap_fail(__FILE__, __LINE__, "split at %zu:\n%s\nexpected:\n%s", i, got, want);
        free(got);
    }
    static size_t cuts[1 << 16];
    for (int k = 0; k < rounds; k++) {
        int n = random_cuts(len, cuts, 1 << 16);
        int rc;
        char *got = parse_cuts(in, len, cuts, n, o, &rc);
        if ((strcmp(got, want) != 0 || rc != whole_rc) && mismatches++ < 3)
            tap_fail(__FILE__, __LINE__, "random chunking %d (%d cuts):\n%s\nexpected:\n%s", k, n,
                     got, want);
        free(got);
    }
    CHECK_INT(mismatches, 0);
    free(want);
}

/* Checks the events of `in` fed whole against `want`, then that no
 * chunking changes them. */
static void check_events(const char *in, const run_opts_t *o, const char *want, int rounds)
{
    char *log = parse_whole(in, o, NULL);
    CHECK_STR(log, want);
    free(log);
    check_chunking(in, o, rounds);
}

/* ---- Test streams --------------------------------------------------------------- */

static const char *const stream_basic =
    STREAM_HEAD "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/>"
                "</starttls></stream:features>\n"
                "<message to='juliet@example.com/balcony' from='romeo@example.net/orchard' "
                "type='chat' id='m1' xml:lang='fr'><body>Caf\xc3\xa9 &amp; th\xc3\xa9 &lt;3 "
                "&#x1F600; &#233;</body><active xmlns='http://jabber.org/protocol/chatstates'/>"
                "</message>\n  "
                "<iq type='result' id='i1'><query xmlns='jabber:iq:roster' ver='1'>"
                "<item jid='a@b' name='A &apos;x&apos; &quot;y&quot;'><group>G</group></item>"
                "</query></iq><presence/>"
                "<message><body><![CDATA[<not markup> & ]]>tail</body></message>"
                "</stream:stream>";

static const char *const canon_basic = CANON_HEAD
    "<{http://etherx.jabber.org/streams}features>"
    "<{urn:ietf:params:xml:ns:xmpp-tls}starttls><{urn:ietf:params:xml:ns:xmpp-tls}required></>"
    "</></>\n"
    "<{jabber:client}message from=\"romeo@example.net/orchard\" id=\"m1\" "
    "to=\"juliet@example.com/balcony\" type=\"chat\" xml:lang=\"fr\">"
    "<{jabber:client}body>Caf\xc3\xa9 &amp; th\xc3\xa9 &lt;3 \xf0\x9f\x98\x80 \xc3\xa9</>"
    "<{http://jabber.org/protocol/chatstates}active></></>\n"
    "<{jabber:client}iq id=\"i1\" type=\"result\"><{jabber:iq:roster}query ver=\"1\">"
    "<{jabber:iq:roster}item jid=\"a@b\" name=\"A 'x' &quot;y&quot;\">"
    "<{jabber:iq:roster}group>G</></></></>\n"
    "<{jabber:client}presence></>\n"
    "<{jabber:client}message><{jabber:client}body>&lt;not markup&gt; &amp; tail</></>\n"
    "CLOSE\n";

static void test_events(void)
{
    rec_t r;
    rec_init(&r, NULL);
    CHECK_INT(feed(&r, stream_basic), 0);
    CHECK_INT(r.opens, 1);
    CHECK_INT(r.stanzas, 5);
    CHECK_INT(r.closes, 1);
    CHECK_INT(r.errors, 0);
    char *log = rec_finish(&r);
    CHECK_STR(log, canon_basic);
    free(log);
}

/* Events arrive as soon as their last byte does, not later. */
static void test_events_are_prompt(void)
{
    rec_t r;
    rec_init(&r, NULL);
    const char *head = STREAM_HEAD;
    CHECK_INT(uvx_parser_feed(r.p, head, strlen(head) - 1), 0);
    CHECK_INT(r.opens, 0);
    CHECK_INT(uvx_parser_feed(r.p, head + strlen(head) - 1, 1), 0);
    CHECK_INT(r.opens, 1);
    CHECK_INT(feed(&r, "<presence/"), 0);
    CHECK_INT(r.stanzas, 0);
    CHECK_INT(feed(&r, ">"), 0);
    CHECK_INT(r.stanzas, 1);
    CHECK_INT(feed(&r, "<message><body>hi</body></message"), 0);
    CHECK_INT(r.stanzas, 1);
    CHECK_INT(feed(&r, ">"), 0);
    CHECK_INT(r.stanzas, 2);
    CHECK_INT(feed(&r, "</stream:stream>"), 0);
    CHECK_INT(r.closes, 1);
    free(rec_finish(&r));
}

/* The stanza handed to the callback is a proper tree the API can read. */
static uvx_stanza_t *kept;

static void keep_stanza(void *ud, uvx_stanza_t *s)
{
    (void)ud;
    uvx_stanza_unref(kept);
    kept = uvx_stanza_ref(s);
}

static void test_tree_api(void)
{
    uvx_parser_callbacks_t cb = {NULL, keep_stanza, NULL, NULL};
    uvx_parser_t *p = uvx_parser_new(&cb, NULL, NULL);
    const char *in = STREAM_HEAD "<message to='a@b' type='chat' id='x1' xml:lang='de'>"
                                 "<body>one &amp; two</body><thread>t</thread></message>";
    CHECK_INT(uvx_parser_feed(p, in, strlen(in)), 0);
    uvx_parser_free(p);
    CHECK(kept != NULL);
    if (kept == NULL)
        return;
    CHECK_STR(uvx_stanza_name(kept), "message");
    CHECK_STR(uvx_stanza_ns(kept), "jabber:client");
    CHECK_STR(uvx_stanza_to(kept), "a@b");
    CHECK_STR(uvx_stanza_type(kept), "chat");
    CHECK_STR(uvx_stanza_id(kept), "x1");
    CHECK_STR(uvx_stanza_attr(kept, "xml:lang"), "de");
    CHECK_INT(uvx_stanza_attr_count(kept), 4);
    CHECK_STR(uvx_stanza_child_text(kept, "body"), "one & two");
    uvx_stanza_t *body = uvx_stanza_child(kept, "body");
    CHECK(body != NULL && uvx_stanza_children(body) != NULL &&
          uvx_stanza_next(uvx_stanza_children(body)) == NULL); /* one merged text node */
    CHECK_STR(uvx_stanza_child_text(kept, "thread"), "t");
    uvx_stanza_unref(kept);
    kept = NULL;
}

/* ---- Namespaces ------------------------------------------------------------------ */

static const char *const stream_ns = STREAM_HEAD
    "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
    "<mechanism>PLAIN</mechanism></mechanisms></stream:features>"
    "<message xml:lang='en'><body>x</body><x xmlns=''><y/></x>"
    "<ps:pubsub xmlns:ps='http://jabber.org/protocol/pubsub'><ps:items node='n'/></ps:pubsub>"
    "<e xmlns='urn:e' xmlns:a='urn:a' a:attr='1' b:other='2' xmlns:b='urn:b'>"
    "<f a:deep='3'/></e></message>"
    "<iq xmlns:q='urn:q' q:x='1'><q:query/></iq>"
    "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"
    "</stream:stream>";

static const char *const canon_ns =
    CANON_HEAD "<{http://etherx.jabber.org/streams}features>"
               "<{urn:ietf:params:xml:ns:xmpp-sasl}mechanisms>"
               "<{urn:ietf:params:xml:ns:xmpp-sasl}mechanism>PLAIN</></></>\n"
               "<{jabber:client}message xml:lang=\"en\"><{jabber:client}body>x</>"
               "<{}x><{}y></></>"
               "<{http://jabber.org/protocol/pubsub}pubsub>"
               "<{http://jabber.org/protocol/pubsub}items node=\"n\"></></>"
               "<{urn:e}e a:attr=\"1\" b:other=\"2\"><{urn:e}f a:deep=\"3\"></></></>\n"
               "<{jabber:client}iq q:x=\"1\"><{urn:q}query></></>\n"
               "<{http://etherx.jabber.org/streams}error>"
               "<{urn:ietf:params:xml:ns:xmpp-streams}conflict></></>\n"
               "CLOSE\n";

static uvx_stanza_t *stanzas[16];
static int nstanzas;

static void collect(void *ud, uvx_stanza_t *s)
{
    (void)ud;
    if (nstanzas < 16)
        stanzas[nstanzas++] = uvx_stanza_ref(s);
}

/* Parses `in` keeping its stanzas in stanzas[] (the caller unrefs them):
 * 1 when there are `want` of them. */
static int collect_stanzas(const char *in, int want)
{
    uvx_parser_callbacks_t cb = {NULL, collect, NULL, NULL};
    uvx_parser_t *p = uvx_parser_new(&cb, NULL, NULL);
    nstanzas = 0;
    CHECK_INT(uvx_parser_feed(p, in, strlen(in)), 0);
    uvx_parser_free(p);
    CHECK_INT(nstanzas, want);
    return nstanzas == want;
}

/* Parses `xml`, the serialized `orig`, back and checks that the tree is
 * the same; returns the copy (NULL if it did not parse). */
static uvx_stanza_t *check_reparse(uvx_stanza_t *orig, const char *xml)
{
    int err = 0;
    uvx_stanza_t *again = xml ? uvx_stanza_from_string(xml, strlen(xml), &err) : NULL;
    CHECK_INT(err, 0);
    if (again != NULL) {
        char *a = canon_string(orig), *b = canon_string(again);
        CHECK_STR(b, a);
        free(a);
        free(b);
    }
    return again;
}

static void test_namespaces(void)
{
    char *log = parse_whole(stream_ns, NULL, NULL);
    CHECK_STR(log, canon_ns);
    free(log);

    if (!collect_stanzas(stream_ns, 4))
        return;
    /* Prefixed attributes carry their xmlns:prefix on their own element. */
    uvx_stanza_t *e = uvx_stanza_child(stanzas[1], "e");
    CHECK_STR(uvx_stanza_attr(e, "a:attr"), "1");
    CHECK_STR(uvx_stanza_attr(e, "xmlns:a"), "urn:a");
    CHECK_STR(uvx_stanza_attr(e, "xmlns:b"), "urn:b");
    CHECK_INT(uvx_stanza_attr_count(e), 4);
    uvx_stanza_t *f = uvx_stanza_child(e, "f");
    CHECK_STR(uvx_stanza_attr(f, "xmlns:a"), "urn:a");
    CHECK_STR(uvx_stanza_attr(f, "a:deep"), "3");
    /* Unused declarations are not attributes; the namespace is a field. */
    uvx_stanza_t *ps = uvx_stanza_child(stanzas[1], "pubsub");
    CHECK_INT(uvx_stanza_attr_count(ps), 0);
    CHECK_STR(uvx_stanza_attr(stanzas[2], "xmlns:q"), "urn:q");
    CHECK(uvx_stanza_ns(uvx_stanza_child(stanzas[1], "x")) == NULL);

    /* parse -> serialize -> parse keeps every name and namespace. */
    for (int i = 0; i < nstanzas; i++) {
        char *xml = NULL;
        CHECK_INT(uvx_stanza_serialize(stanzas[i], NULL, &xml, NULL), 0);
        uvx_stanza_t *again = check_reparse(stanzas[i], xml);
        if (again != NULL) {
            /* And once more through the serializer with the stream's default ns. */
            char *xml2 = NULL;
            CHECK_INT(uvx_stanza_serialize(again, UVX_NS_CLIENT, &xml2, NULL), 0);
            char *doc = NULL;
            if (xml2 && asprintf(&doc, STREAM_HEAD "%s", xml2) > 0) {
                rec_t r;
                rec_init(&r, NULL);
                CHECK_INT(feed(&r, doc), 0);
                char *got = rec_finish(&r);
                char *want = NULL;
                char *c = canon_string(stanzas[i]);
                CHECK(asprintf(&want, CANON_HEAD "%s\n", c) > 0);
                CHECK_STR(got, want);
                free(c);
                free(want);
                free(got);
            }
            free(doc);
            free(xml2);
        }
        uvx_stanza_unref(again);
        free(xml);
        uvx_stanza_unref(stanzas[i]);
    }
}

/* ---- Chunking ----------------------------------------------------------------------- */

static void test_split_every_offset(void)
{
    check_chunking(stream_basic, NULL, 0);
    check_chunking(stream_ns, NULL, 0);
}

static void test_random_chunks(void)
{
    rng_state = 2463534242u;
    check_chunking(stream_basic, NULL, 300);
    check_chunking(stream_ns, NULL, 300);
}

/* A chunk ending in '\r' makes libxml2 hold the byte back: harmless. */
static void test_carriage_returns(void)
{
    const char *in = STREAM_HEAD "<message>\r\n<body>a\rb\r\n</body>\r</message>\r\n"
                                 "<message\r\nto='x'/></stream:stream>";
    check_events(in, NULL,
                 CANON_HEAD "<{jabber:client}message>&#10;<{jabber:client}body>a&#10;b&#10;</>"
                            "&#10;</>\n<{jabber:client}message to=\"x\"></>\nCLOSE\n",
                 100);
}

/* ---- Stream restarts ---------------------------------------------------------------------- */

#define RESTART_HEAD(id)                                                                           \
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "                                   \
    "xmlns:stream='http://etherx.jabber.org/streams' id='" id "' version='1.0'>"
#define RESTART_CANON(id)                                                                          \
    "OPEN <{http://etherx.jabber.org/streams}stream id=\"" id "\" version=\"1.0\"></>\n"

static const char *const restart_parts[] = {
    RESTART_HEAD("a") "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
                      "</stream:features><proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
    RESTART_HEAD("b") "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
                      "<mechanism>PLAIN</mechanism></mechanisms></stream:features>\n "
                      "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>dGVzdA==</success>",
    RESTART_HEAD("c") "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"
                      "</stream:features><message to='me'><body>hi</body></message>"
                      "</stream:stream>",
};

static void test_restart_every_offset(void)
{
    run_opts_t o = {.client_restarts = 1};
    /* Expected: each part parsed on its own by a new parser. */
    buf_t want = BUF_INIT, all = BUF_INIT;
    for (size_t i = 0; i < sizeof(restart_parts) / sizeof(*restart_parts); i++) {
        char *log = parse_whole(restart_parts[i], NULL, NULL);
        put(&want, log);
        put(&all, restart_parts[i]);
        free(log);
    }
    char *whole = parse_whole(all.data, &o, NULL);
    CHECK_STR(whole, want.data);
    CHECK(strstr(whole, RESTART_CANON("c")) != NULL);
    free(whole);
    check_chunking(all.data, &o, 300);

    /* Every pair of cut points: the restart lands at every position
     * relative to both chunk boundaries. */
    size_t len = all.len;
    int mismatches = 0;
    for (size_t i = 0; i <= len; i += 3) {
        for (size_t j = i; j <= len; j += 7) {
            size_t cuts[2] = {i, j};
            char *got = parse_cuts(all.data, len, cuts, 2, &o, NULL);
            if (strcmp(got, want.data) != 0 && mismatches++ < 3)
                tap_fail(__FILE__, __LINE__, "cuts %zu,%zu:\n%s", i, j, got);
            free(got);
        }
    }
    CHECK_INT(mismatches, 0);
    buf_free(&want);
    buf_free(&all);
}

/* Restarting at any element boundary, whatever comes next. */
static void test_restart_anywhere(void)
{
    run_opts_t o = {.reset_on = "r"};
    const char *in2 = RESTART_HEAD("a") "<m>1</m><r/>" RESTART_HEAD(
        "b") "<m>2</m><r>x</r>" RESTART_HEAD("c") "<m>3</m></stream:stream>";
    const char *want2 =
        RESTART_CANON("a") "<{jabber:client}m>1</>\n<{jabber:client}r></"
                           ">\n" RESTART_CANON("b") "<{jabber:client}m>2</>\n<{jabber:client}r>x</"
                                                    ">\n" RESTART_CANON("c") "<{jabber:client}m>3</"
                                                                             ">\nCLOSE\n";
    check_events(in2, &o, want2, 200);

    /* A reset in stream_open: the next stream starts right after the
     * start tag. */
    const char *in3 = RESTART_HEAD("a") RESTART_HEAD("b") "<m/></stream:stream>";
    run_opts_t o3 = {.reset_in_open = 1};
    check_events(in3, &o3, RESTART_CANON("a") RESTART_CANON("b") "<{jabber:client}m></>\nCLOSE\n",
                 100);
}

/* The restarted context must not remember the old stream's namespaces. */
static void test_restart_forgets_namespaces(void)
{
    const char *in = "<stream:stream xmlns='jabber:client' "
                     "xmlns:stream='http://etherx.jabber.org/streams' xmlns:old='urn:old'>"
                     "<old:r/><stream:stream xmlns:stream='http://etherx.jabber.org/streams'>"
                     "<old:m/></stream:stream>";
    run_opts_t o = {.reset_on = "r"};
    char *log = parse_whole(in, &o, NULL);
    CHECK(strstr(log, "ERROR not-well-formed") != NULL);
    CHECK(strstr(log, "urn:old}m") == NULL);
    free(log);

    /* Same after uvx_parser_reset() between feeds. */
    rec_t r;
    rec_init(&r, NULL);
    const char *a = "<s xmlns='urn:s' xmlns:p='urn:p'><p:x/>";
    CHECK_INT(feed(&r, a), 0);
    CHECK_INT(uvx_parser_reset(r.p), 0);
    const char *b = "<s xmlns='urn:s'><p:x/>";
    CHECK_INT(feed(&r, b), UVX_EPARSE);
    CHECK_INT(r.errors, 1);
    CHECK_INT(r.opens, 2);
    CHECK_INT(r.stanzas, 1);
    free(rec_finish(&r));
}

/* ---- stop, reset, feed from callbacks ------------------------------------------------- */

static void test_stop(void)
{
    const char *in = STREAM_HEAD "<a/><b/><c/></stream:stream>";
    run_opts_t o = {.stop_on = "b"};
    rec_t r;
    rec_init(&r, &o);
    CHECK_INT(feed(&r, in), 0);
    CHECK_INT(r.stanzas, 2);
    CHECK_INT(r.closes, 0);
    CHECK_INT(feed(&r, "<d/>"), UVX_ECLOSED);
    CHECK_INT(r.stanzas, 2);
    /* A reset starts over. */
    CHECK_INT(uvx_parser_reset(r.p), 0);
    CHECK_INT(feed(&r, in), 0);
    CHECK_INT(r.opens, 2);
    CHECK_INT(r.stanzas, 4);
    free(rec_finish(&r));

    /* Stop outside a feed. */
    rec_init(&r, NULL);
    uvx_parser_stop(r.p);
    CHECK_INT(feed(&r, in), UVX_ECLOSED);
    CHECK_INT(r.opens, 0);
    free(rec_finish(&r));
}

static void test_feed_from_callback(void)
{
    const char *in = STREAM_HEAD "<a/>";
    run_opts_t o = {.feed_in_callback = 1};
    rec_t r;
    rec_init(&r, &o);
    CHECK_INT(feed(&r, in), 0);
    CHECK_INT(r.nested_rc, UVX_ESTATE);
    CHECK_INT(r.stanzas, 1);
    free(rec_finish(&r));
}

static void test_reset_in_error_callback(void)
{
    run_opts_t o = {.reset_on_error = 1};
    rec_t r;
    rec_init(&r, &o);
    const char *bad = STREAM_HEAD "<a></b><c/>";
    CHECK_INT(feed(&r, bad), UVX_EPARSE);
    CHECK_INT(r.errors, 1);
    CHECK_INT(r.stanzas, 0); /* the rest of that input was dropped */
    const char *good = STREAM_HEAD "<d/>";
    CHECK_INT(feed(&r, good), 0);
    CHECK_INT(r.opens, 2);
    CHECK_INT(r.stanzas, 1);
    free(rec_finish(&r));
}

static void test_reset_between_feeds(void)
{
    rec_t r;
    rec_init(&r, NULL);
    const char *a = STREAM_HEAD "<a><b>partial";
    CHECK_INT(feed(&r, a), 0);
    CHECK_INT(uvx_parser_reset(r.p), 0);
    const char *b = STREAM_HEAD "<c/>";
    CHECK_INT(feed(&r, b), 0);
    CHECK_INT(r.opens, 2);
    CHECK_INT(r.stanzas, 1);
    /* After an error, feeds return it until a reset. */
    CHECK_INT(feed(&r, "<x></y>"), UVX_EPARSE);
    CHECK_INT(feed(&r, "<z/>"), UVX_EPARSE);
    CHECK_INT(r.errors, 1);
    CHECK_INT(uvx_parser_reset(r.p), 0);
    CHECK_INT(feed(&r, b), 0);
    CHECK_INT(r.stanzas, 2);
    free(rec_finish(&r));
}

/* ---- parser_prime (WebSocket / BOSH framing) --------------------------------------------- */

static void test_prime(void)
{
    rec_t r;
    rec_init(&r, NULL);
    const char *open = "<stream:stream xmlns='jabber:client' "
                       "xmlns:stream='http://etherx.jabber.org/streams'>";
    CHECK_INT(parser_prime(r.p, open, strlen(open)), 0);
    CHECK_INT(r.opens, 0);
    const char *msgs[] = {
        "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.com' version='1.0'/>",
        "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>",
        "<message to='a@b'><body>x &amp; y</body></message>",
        "  <presence/>",
    };
    for (size_t i = 0; i < sizeof(msgs) / sizeof(*msgs); i++)
        CHECK_INT(feed(&r, msgs[i]), 0);
    CHECK_INT(r.opens, 0);
    CHECK_INT(r.stanzas, 4);
    /* Priming again starts over (a new WebSocket session). */
    CHECK_INT(parser_prime(r.p, open, strlen(open)), 0);
    CHECK_INT(feed(&r, "<iq type='get' id='1'/>"), 0);
    CHECK_INT(r.errors, 0);
    char *log = rec_finish(&r);
    CHECK_STR(log, "<{urn:ietf:params:xml:ns:xmpp-framing}open to=\"example.com\" version=\"1.0\">"
                   "</>\n<{http://etherx.jabber.org/streams}features>"
                   "<{urn:ietf:params:xml:ns:xmpp-bind}bind></></>\n"
                   "<{jabber:client}message to=\"a@b\"><{jabber:client}body>x &amp; y</></>\n"
                   "<{jabber:client}presence></>\n<{jabber:client}iq id=\"1\" type=\"get\"></>\n");
    free(log);

    rec_init(&r, NULL);
    CHECK_INT(parser_prime(r.p, "<a", 2), UVX_EINVAL);
    CHECK_INT(parser_prime(r.p, "<a></b>", 7), UVX_EPARSE);
    CHECK_INT(r.errors, 1);
    CHECK_INT(parser_prime(r.p, "<a>", 3), 0);
    CHECK_INT(feed(&r, "<b/>"), 0);
    CHECK_INT(r.stanzas, 1);
    free(rec_finish(&r));
}

/* ---- Text and attribute values ----------------------------------------------------------- */

static void test_values(void)
{
    const char *in = STREAM_HEAD
        "<m a='x&amp;y&#38;z&lt;&gt;&apos;&quot;' b=\"&#10;tab&#9;\" c='caf\xc3\xa9 &#x65E5;'"
        " d='&#38;#38;' e='line\nbreak' f=''>"
        "&#38;#38; &amp;amp; &#x10FFFF;<![CDATA[]]><![CDATA[&amp;]]></m>"
        "<n xmlns='urn:a&amp;b'><o xmlns:p='urn:p&amp;q' p:x='1'/></n>";
    check_events(in, NULL,
                 CANON_HEAD "<{jabber:client}m a=\"x&amp;y&amp;z&lt;&gt;'&quot;\" "
                            "b=\"&#10;tab&#9;\" c=\"caf\xc3\xa9 \xe6\x97\xa5\" d=\"&amp;#38;\" "
                            "e=\"line break\" f=\"\">&amp;#38; &amp;amp; \xf4\x8f\xbf\xbf"
                            "&amp;amp;</>\n<{urn:a&b}n><{urn:a&b}o p:x=\"1\"></></>\n",
                 100);

    /* libxml2 passes '&' in namespace names as "&#38;": it must not leak
     * into the tree, or the tree would not serialize back. */
    if (!collect_stanzas(in, 2))
        return;
    uvx_stanza_t *n = stanzas[1], *o = uvx_stanza_child(n, "o");
    CHECK_STR(uvx_stanza_ns(n), "urn:a&b");
    CHECK_STR(uvx_stanza_attr(o, "xmlns:p"), "urn:p&q");
    CHECK_STR(uvx_stanza_attr(stanzas[0], "a"), "x&y&z<>'\"");
    for (int i = 0; i < nstanzas; i++) {
        char *xml = uvx_stanza_to_string(stanzas[i]);
        uvx_stanza_unref(check_reparse(stanzas[i], xml));
        free(xml);
        uvx_stanza_unref(stanzas[i]);
    }
}

/* ---- Limits -------------------------------------------------------------------------------- */

static void test_stanza_size_exact(void)
{
    const char *stanza = "<message to='a'><body>0123456789</body></message>";
    size_t size = strlen(stanza);
    char *in = NULL;
    /* A short stream header: the limit applies to it too. */
    CHECK(asprintf(&in, "<s xmlns='jabber:client'>%s\n \n%s  \n%s</s>", stanza, stanza, stanza) >
          0);
    run_opts_t o = {.limits = {.max_stanza_size = size}};
    char *log = parse_whole(in, &o, NULL);
    CHECK(strstr(log, "ERROR") == NULL);
    CHECK(strstr(log, "CLOSE") != NULL);
    free(log);
    check_chunking(in, &o, 50);

    o.limits.max_stanza_size = size - 1;
    int rc;
    log = parse_whole(in, &o, &rc);
    CHECK_INT(rc, UVX_ETOOBIG);
    CHECK_STR(log,
              "OPEN <{jabber:client}s></>\nERROR policy-violation stanza exceeds the size limit\n");
    free(log);
    check_chunking(in, &o, 50);
    free(in);
}

/* Keepalive white space between stanzas does not add up. */
static void test_whitespace_keepalives(void)
{
    run_opts_t o = {.limits = {.max_stanza_size = 64}};
    rec_t r;
    rec_init(&r, &o);
    const char *head = "<s xmlns='jabber:client'>";
    CHECK_INT(feed(&r, head), 0);
    for (int i = 0; i < 1000; i++) {
        CHECK_INT(feed(&r, " "), 0);
        if (i % 100 == 0)
            CHECK_INT(feed(&r, "<presence/>"), 0);
    }
    CHECK_INT(r.stanzas, 10);
    CHECK_INT(r.errors, 0);
    free(rec_finish(&r));
}

/* Feeds `total` bytes produced by `gen` in `chunk`-byte pieces until an
 * error; returns how many bytes had been fed when it came. */
typedef void (*gen_fn)(char *dst, size_t off, size_t n);

static size_t feed_until_error(rec_t *r, const char *prefix, gen_fn gen, size_t total, size_t chunk,
                               int *rc_out)
{
    int rc = feed(r, prefix);
    size_t fed = 0;
    char *buf = malloc(chunk);
    die_if(buf == NULL);
    while (rc == 0 && fed < total) {
        size_t n = total - fed < chunk ? total - fed : chunk;
        gen(buf, fed, n);
        rc = uvx_parser_feed(r->p, buf, n);
        fed += n;
    }
    free(buf);
    *rc_out = rc;
    return fed;
}

static void gen_text(char *dst, size_t off, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = "abcdefgh &amp;xyz "[(off + i) % 18];
}

static void gen_nested(char *dst, size_t off, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = "<a>"[(off + i) % 3];
}

static void gen_attr(char *dst, size_t off, size_t n)
{
    (void)off;
    memset(dst, 'v', n);
}

static void test_big_stanza(void)
{
    const size_t ten_mb = 10 * 1024 * 1024;
    int rc;
    rec_t r;

    /* 10 MB of body text, 4 KiB at a time: stops soon after 1 MiB. */
    rec_init(&r, NULL);
    size_t fed = feed_until_error(&r, STREAM_HEAD "<message><body>", gen_text, ten_mb, 4096, &rc);
    CHECK_INT(rc, UVX_ETOOBIG);
    CHECK(fed <= UVX_DEFAULT_MAX_STANZA_SIZE + 64 * 1024);
    CHECK_INT(r.errors, 1);
    CHECK_INT(feed(&r, "</body></message>"), UVX_ETOOBIG);
    free(rec_finish(&r));

    /* One huge start tag libxml2 cannot parse until its '>' arrives. */
    rec_init(&r, NULL);
    fed = feed_until_error(&r, STREAM_HEAD "<message to='", gen_attr, ten_mb, 100000, &rc);
    CHECK_INT(rc, UVX_ETOOBIG);
    CHECK(fed <= UVX_DEFAULT_MAX_STANZA_SIZE + 100000);
    free(rec_finish(&r));

    /* The same fed in one call. */
    char *big = malloc(ten_mb + 200);
    die_if(big == NULL);
    strcpy(big, STREAM_HEAD "<message><body>");
    size_t head = strlen(big);
    gen_text(big + head, 0, ten_mb);
    rec_init(&r, NULL);
    CHECK_INT(uvx_parser_feed(r.p, big, head + ten_mb), UVX_ETOOBIG);
    CHECK_INT(r.errors, 1);
    free(rec_finish(&r));
    free(big);

    /* A small limit applies to the stream header too. */
    run_opts_t o = {.limits = {.max_stanza_size = 32}};
    int last;
    char *log = parse_whole(STREAM_HEAD, &o, &last);
    CHECK_INT(last, UVX_ETOOBIG);
    free(log);
}

static void test_depth(void)
{
    int rc;
    rec_t r;
    /* 100 000 nested elements: stops at the default limit of 64. */
    rec_init(&r, NULL);
    size_t fed = feed_until_error(&r, STREAM_HEAD, gen_nested, 300000, 1000, &rc);
    CHECK_INT(rc, UVX_ETOODEEP);
    CHECK(fed <= 1000);
    CHECK_STR(r.log.data, CANON_HEAD "ERROR policy-violation element nesting exceeds the depth "
                                     "limit\n");
    free(rec_finish(&r));

    /* Exactly the limit is fine (root = 1), one more is not. */
    run_opts_t o = {.limits = {.max_depth = 4}};
    char *log = parse_whole("<s><m><a><b/></a></m></s>", &o, NULL);
    CHECK_STR(log, "OPEN <{}s></>\n<{}m><{}a><{}b></></></>\nCLOSE\n");
    free(log);
    log = parse_whole("<s><m><a><b><c/></b></a></m></s>", &o, &rc);
    CHECK_INT(rc, UVX_ETOODEEP);
    free(log);

    /* Beyond libxml2's own limit of 256 when the caller allows it. */
    o.limits.max_depth = 1000;
    rec_init(&r, &o);
    fed = feed_until_error(&r, "<s>", gen_nested, 3 * 900, 64, &rc);
    CHECK_INT(rc, 0);
    CHECK_INT(r.errors, 0);
    free(rec_finish(&r));
}

/* ---- Restricted and malformed XML ------------------------------------------------------------ */

typedef struct bad_case {
    const char *name;
    const char *xml;
    int err;
} bad_case_t;

static const bad_case_t bad_cases[] = {
    {"billion laughs",
     "<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>"
     "<!ENTITY lol1 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>"
     "<!ENTITY lol2 '&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;'>"
     "<!ENTITY lol3 '&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;'>]>"
     "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'><m>&lol3;</m>",
     UVX_ERESTRICTED},
    {"external entity",
     "<?xml version='1.0'?><!DOCTYPE foo [<!ENTITY xxe SYSTEM 'file:///etc/passwd'>]>"
     "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'><m>&xxe;</m>",
     UVX_ERESTRICTED},
    {"external DTD", "<!DOCTYPE s SYSTEM 'http://127.0.0.1:1/evil.dtd'><s><m/>", UVX_ERESTRICTED},
    {"DOCTYPE", "<!DOCTYPE s><s><m/>", UVX_ERESTRICTED},
    {"PI in prolog", "<?xml version='1.0'?><?evil x?><s><m/>", UVX_ERESTRICTED},
    {"PI in stanza", STREAM_HEAD "<m><?evil x?></m>", UVX_ERESTRICTED},
    {"PI between stanzas", STREAM_HEAD "<?evil?><m/>", UVX_ERESTRICTED},
    {"comment in prolog", "<!-- hi --><s><m/>", UVX_ERESTRICTED},
    {"comment in stanza", STREAM_HEAD "<m><!-- hi --></m>", UVX_ERESTRICTED},
    {"comment between stanzas", STREAM_HEAD "<!----><m/>", UVX_ERESTRICTED},
    {"undeclared entity", STREAM_HEAD "<m>&foo;</m>", UVX_EPARSE},
    {"undeclared entity in attribute", STREAM_HEAD "<m a='&foo;'/>", UVX_EPARSE},
    {"mismatched tags", STREAM_HEAD "<m><body></m>", UVX_EPARSE},
    {"unclosed tag at stream end", STREAM_HEAD "<m><body></stream:stream>", UVX_EPARSE},
    {"second root", "<s/><s/>", UVX_EPARSE},
    {"text before root", "hello<s/>", UVX_EPARSE},
    {"XML declaration mid-stream", STREAM_HEAD "<?xml version='1.0'?><m/>", UVX_EPARSE},
    {"undefined prefix", STREAM_HEAD "<x:m/>", UVX_EPARSE},
    {"undefined attribute prefix", STREAM_HEAD "<m x:a='1'/>", UVX_EPARSE},
    {"duplicate attribute", STREAM_HEAD "<m a='1' a='2'/>", UVX_EPARSE},
    {"duplicate expanded attribute",
     STREAM_HEAD "<m xmlns:p='urn:x' xmlns:q='urn:x' p:a='1' q:a='2'/>", UVX_EPARSE},
    {"lt in attribute", STREAM_HEAD "<m a='<'/><n/>", UVX_EPARSE},
    {"bad char ref", STREAM_HEAD "<m>&#0;</m>", UVX_EPARSE},
    {"surrogate char ref", STREAM_HEAD "<m>&#xD800;</m>", UVX_EPARSE},
    {"control char", STREAM_HEAD "<m>\x01</m>", UVX_EPARSE},
    {"invalid UTF-8 in text", STREAM_HEAD "<m>\xff\xfe</m>", UVX_EPARSE},
    {"truncated UTF-8 in text", STREAM_HEAD "<m>\xc3</m>", UVX_EPARSE},
    {"overlong UTF-8", STREAM_HEAD "<m>\xc0\xaf</m>", UVX_EPARSE},
    {"UTF-8 surrogate", STREAM_HEAD "<m>\xed\xa0\x80</m>", UVX_EPARSE},
    {"invalid UTF-8 in attribute", STREAM_HEAD "<m a='\xe6\x97'/>", UVX_EPARSE},
    {"invalid UTF-8 in name", STREAM_HEAD "<m\xff/>", UVX_EPARSE},
    {"invalid UTF-8 in CDATA", STREAM_HEAD "<m><![CDATA[\xf8\x88\x80\x80\x80]]></m>", UVX_EPARSE},
    {"overlong UTF-8 in CDATA",
     STREAM_HEAD "<m><![CDATA[a\xc0\xa4"
                 "b]]></m>",
     UVX_EPARSE},
    {"3-byte overlong in CDATA", STREAM_HEAD "<m><![CDATA[\xe0\x80\xbc]]></m>", UVX_EPARSE},
    {"UTF-16 stream", "\xff\xfe<\0s\0/\0>\0", UVX_EPARSE},
    {"UTF-8 BOM", "\xef\xbb\xbf<s/>", UVX_EPARSE},
    {"NUL byte", STREAM_HEAD "<m>a\0b</m>", UVX_EPARSE},
    {"latin-1 declared", "<?xml version='1.0' encoding='ISO-8859-1'?><s><m>\xe9</m>", UVX_EPARSE},
};

/* Length of a case: up to the last byte of the literal (they may hold NULs). */
static size_t case_len(const bad_case_t *c)
{
    if (strcmp(c->name, "UTF-16 stream") == 0)
        return 10;
    if (strcmp(c->name, "NUL byte") == 0)
        return strlen(c->xml) + 7;
    return strlen(c->xml);
}

static void check_bad_case(const bad_case_t *c, size_t len, size_t chunk)
{
    rec_t r;
    rec_init(&r, NULL);
    int rc = 0;
    for (size_t at = 0; at < len && rc == 0; at += chunk)
        rc = uvx_parser_feed(r.p, c->xml + at, len - at < chunk ? len - at : chunk);
    if (rc != c->err)
        tap_fail(__FILE__, __LINE__, "%s (chunk %zu): rc %d, expected %d", c->name, chunk, rc,
                 c->err);
    CHECK_INT(r.errors, 1);
    CHECK(r.stanzas == 0 || c->err == UVX_EPARSE);
    CHECK_INT(feed(&r, "<m/>"), c->err);
    CHECK_INT(r.errors, 1);
    const char *cond = c->err == UVX_ERESTRICTED ? "ERROR restricted-xml" : "ERROR not-well-formed";
    CHECK(strstr(r.log.data, cond) != NULL);
    free(rec_finish(&r));
}

static void test_hostile(void)
{
    /* libxml2 must print nothing: catch stderr in a file. */
    fflush(stderr);
    int saved = dup(2);
    FILE *errs = tmpfile();
    die_if(errs == NULL || saved < 0);
    dup2(fileno(errs), 2);

    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(*bad_cases); i++) {
        size_t len = case_len(&bad_cases[i]);
        check_bad_case(&bad_cases[i], len, len);
        check_bad_case(&bad_cases[i], len, 1);
        check_bad_case(&bad_cases[i], len, 7);
    }

    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    fseek(errs, 0, SEEK_END);
    CHECK_INT(ftell(errs), 0);
    fclose(errs);
}

/* A multi-byte character split across feeds is not an encoding error. */
static void test_utf8_across_chunks(void)
{
    buf_t in = BUF_INIT;
    put(&in, STREAM_HEAD "<message><body>");
    for (int i = 0; i < 200; i++)
        put(&in, "\xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80");
    put(&in, "</body></message><m a='\xe6\x97\xa5\xf0\x9f\x98\x80'/></stream:stream>");
    char *log = parse_whole(in.data, NULL, NULL);
    CHECK(strstr(log, "ERROR") == NULL);
    CHECK(strstr(log, "CLOSE") != NULL);
    free(log);
    check_chunking(in.data, NULL, 50);
    buf_free(&in);
}

/* ---- Server stream corpus ----------------------------------------------------------------------
 */

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    buf_t b = BUF_INIT;
    char tmp[65536];
    size_t n;
    while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
        die_if(buf_append(&b, tmp, n) != 0);
    fclose(f);
    if (b.data == NULL)
        die_if(buf_reserve(&b, 0) != 0);
    return buf_steal(&b, len);
}

/* Compares the events of one captured stream, fed whole and in random
 * chunks, with the canonical form an independent parser produced. */
static void check_corpus_stream(const char *name, const char *xml, size_t len, const char *expect)
{
    run_opts_t o = {.client_restarts = 1};
    char *want = NULL;
    size_t elen = strlen(expect);
    if (elen > 0 && expect[elen - 1] != '\n')
        die_if(asprintf(&want, "%s\n", expect) < 0);
    else
        want = strdup(expect);
    char *got = parse_cuts(xml, len, NULL, 0, &o, NULL);
    if (strcmp(got, want) != 0)
        tap_fail(__FILE__, __LINE__, "%s (whole):\n%s\nexpected:\n%s", name, got, want);
    free(got);
    size_t *cuts = malloc(sizeof(size_t) * (len + 1));
    die_if(cuts == NULL);
    for (int k = 0; k < 20; k++) {
        int n = random_cuts(len, cuts, (int)len);
        got = parse_cuts(xml, len, cuts, n, &o, NULL);
        if (strcmp(got, want) != 0) {
            tap_fail(__FILE__, __LINE__, "%s (random chunking %d):\n%s", name, k, got);
            free(got);
            break;
        }
        free(got);
    }
    free(cuts);
    free(want);
}

/* A hand-written server stream, so the corpus path runs even without files. */
static const char *const inline_stream =
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    "xmlns:stream='http://etherx.jabber.org/streams' id='x' from='localhost' version='1.0' "
    "xml:lang='en'><stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
    "<mechanism>SCRAM-SHA-1</mechanism><mechanism>PLAIN</mechanism></mechanisms>"
    "</stream:features><success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    "xmlns:stream='http://etherx.jabber.org/streams' id='y' from='localhost' version='1.0' "
    "xml:lang='en'><stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"
    "</stream:features><iq type='result' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
    "<jid>alice@localhost/r</jid></bind></iq>\n"
    "<message from='bob@localhost/x' to='alice@localhost/r' type='chat' xml:lang='en'>"
    "<body>a &lt;b&gt; &amp; \"c\"\n\td</body></message></stream:stream>";

static const char *const inline_canon =
    "OPEN <{http://etherx.jabber.org/streams}stream from=\"localhost\" id=\"x\" version=\"1.0\" "
    "xml:lang=\"en\"></>\n"
    "<{http://etherx.jabber.org/streams}features><{urn:ietf:params:xml:ns:xmpp-sasl}mechanisms>"
    "<{urn:ietf:params:xml:ns:xmpp-sasl}mechanism>SCRAM-SHA-1</>"
    "<{urn:ietf:params:xml:ns:xmpp-sasl}mechanism>PLAIN</></></>\n"
    "<{urn:ietf:params:xml:ns:xmpp-sasl}success></>\n"
    "OPEN <{http://etherx.jabber.org/streams}stream from=\"localhost\" id=\"y\" version=\"1.0\" "
    "xml:lang=\"en\"></>\n"
    "<{http://etherx.jabber.org/streams}features><{urn:ietf:params:xml:ns:xmpp-bind}bind></></>\n"
    "<{jabber:client}iq id=\"b1\" type=\"result\"><{urn:ietf:params:xml:ns:xmpp-bind}bind>"
    "<{urn:ietf:params:xml:ns:xmpp-bind}jid>alice@localhost/r</></></>\n"
    "<{jabber:client}message from=\"bob@localhost/x\" to=\"alice@localhost/r\" type=\"chat\" "
    "xml:lang=\"en\"><{jabber:client}body>a &lt;b&gt; &amp; &quot;c&quot;&#10;&#9;d</></>\n"
    "CLOSE";

static int corpus_files;

static void test_corpus_inline(void)
{
    check_corpus_stream("inline", inline_stream, strlen(inline_stream), inline_canon);
}

static void test_corpus(void)
{
    corpus_files = 0;
    DIR *d = opendir(TEST_DATA_DIR);
    if (d == NULL)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n < 5 || strcmp(de->d_name + n - 4, ".xml") != 0)
            continue;
        char *xml_path = NULL, *canon_path = NULL;
        die_if(asprintf(&xml_path, "%s/%s", TEST_DATA_DIR, de->d_name) < 0);
        die_if(asprintf(&canon_path, "%s/%.*s.canon", TEST_DATA_DIR, (int)(n - 4), de->d_name) < 0);
        size_t len;
        char *xml = read_file(xml_path, &len);
        char *expect = read_file(canon_path, NULL);
        if (xml != NULL && expect != NULL) {
            corpus_files++;
            check_corpus_stream(de->d_name, xml, len, expect);
        }
        free(xml);
        free(expect);
        free(xml_path);
        free(canon_path);
    }
    closedir(d);
    printf("# corpus: %d captured stream(s) with a .canon in %s\n", corpus_files, TEST_DATA_DIR);
}

/* ---- Pooled parsers ---------------------------------------------------------------------------
 */

/* Streams with different roots and bindings: a context another stream
 * used must come back with exactly this stream's namespaces. */
static const char *const pool_stream_odd =
    "<p:root xmlns='urn:a&amp;b' xmlns:p='urn:p' xmlns:q=\"urn:q'x&#38;y\">"
    "<m q:attr='1'><p:x/></m>\n <p:y/>\t<z xmlns=''/><q:w/></p:root>";
static const char *const pool_stream_no_ns = "<root><a/><b><c/></b> </root>";

static const char *pool_stream(int k, buf_t *restarts)
{
    switch (k % 5) {
    case 0:
        return stream_basic;
    case 1:
        return stream_ns;
    case 2:
        return pool_stream_odd;
    case 3:
        return pool_stream_no_ns;
    default:
        return restarts->data;
    }
}

#define NPOOLED 7 /* more parsers than the pool keeps contexts */

/* Parsers sharing one pool, each fed its own stream in chunks, one chunk
 * per parser in turn, log exactly what one unpooled parser does. */
static void test_pool_interleaved(void)
{
    run_opts_t o = {.client_restarts = 1};
    buf_t restarts = BUF_INIT;
    for (size_t i = 0; i < sizeof(restart_parts) / sizeof(*restart_parts); i++)
        put(&restarts, restart_parts[i]);
    char *want[NPOOLED];
    size_t len[NPOOLED], maxlen = 0;
    for (int k = 0; k < NPOOLED; k++) {
        want[k] = parse_whole(pool_stream(k, &restarts), &o, NULL);
        len[k] = strlen(pool_stream(k, &restarts));
        maxlen = len[k] > maxlen ? len[k] : maxlen;
    }
    CHECK(strstr(want[2], "<{urn:a&b}m q:attr=\"1\"><{urn:p}x></></>") != NULL);
    CHECK(strstr(want[2], "<{urn:q'x&y}w></>") != NULL);
    CHECK(strstr(want[2], "ERROR") == NULL);

    parser_pool_t *pool = use_new_pool();
    int mismatches = 0, parked = 0;
    /* Every split offset (two chunks each), then random chunkings. */
    for (size_t round = 0; round <= maxlen + 200; round++) {
        rec_t r[NPOOLED];
        size_t at[NPOOLED];
        size_t cuts[NPOOLED][512];
        int ncuts[NPOOLED], next[NPOOLED];
        for (int k = 0; k < NPOOLED; k++) {
            rec_init(&r[k], &o);
            at[k] = 0;
            next[k] = 0;
            if (round <= maxlen) {
                ncuts[k] = 1;
                cuts[k][0] = round < len[k] ? round : len[k];
            } else {
                ncuts[k] = random_cuts(len[k], cuts[k], 512);
            }
        }
        for (int busy = 1; busy;) {
            busy = 0;
            for (int k = 0; k < NPOOLED; k++) {
                if (at[k] == len[k] && next[k] > ncuts[k])
                    continue;
                size_t end = next[k] < ncuts[k] ? cuts[k][next[k]] : len[k];
                next[k]++;
                uvx_parser_feed(r[k].p, pool_stream(k, &restarts) + at[k], end - at[k]);
                at[k] = end;
                parked += parser_is_parked(r[k].p);
                busy = 1;
            }
        }
        for (int k = 0; k < NPOOLED; k++) {
            char *got = rec_finish(&r[k]);
            if (strcmp(got, want[k]) != 0 && mismatches++ < 3)
                tap_fail(__FILE__, __LINE__, "round %zu, parser %d:\n%s\nexpected:\n%s", round, k,
                         got, want[k]);
            free(got);
        }
    }
    CHECK_INT(mismatches, 0);
    CHECK(parked > 1000); /* the replays really happened */
    drop_pool(pool);
    for (int k = 0; k < NPOOLED; k++)
        free(want[k]);
    buf_free(&restarts);
}

typedef struct park_step {
    const char *in;
    int parked; /* expected parser_is_parked() after the feed; -1: either */
} park_step_t;

static void run_park_steps(rec_t *r, const park_step_t *steps, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        CHECK_INT(feed(r, steps[i].in), 0);
        if (steps[i].parked >= 0 && parser_is_parked(r->p) != steps[i].parked)
            tap_fail(__FILE__, __LINE__, "after \"%s\": parked %d, expected %d", steps[i].in,
                     parser_is_parked(r->p), steps[i].parked);
        disturb_pool();
    }
}

/* A pooled parser holds no context between stanzas, and keeps it while
 * anything of a stanza is pending. */
static void test_pool_parks_at_boundaries(void)
{
    static const park_step_t steps[] = {
        {"<?xml version='1.0'?>", 0},
        {"<stream:stream xmlns='jabber:client' xmlns:stream='" NS_STREAMS "' id='s1'", 0},
        {">", 1},
        {"<message><body>hel", 0},
        {"lo</body></message>", 1},
        {" \r\n ", 1},
        {"\r", 1},
        {"<presence", 0},
        {"/>", 1},
        {"<iq type='get'/><iq", 0},
        {" type='set'/>", 1},
        {"<stream:features><x xmlns='urn:x'>", 0},
        {"</x></stream:features>", 1},
        {"<m>&amp", 0},
        {";</m>", 1},
        {"<![CDATA[dropped", 0},
        {"]]>", 1},
        {"<![CDATA[  ", 0}, /* libxml2 holds only white space, inside a section */
        {"  ]]>", 1},
        {"<a/", 0},
        {">", 1},
        {"</stream:stream>", 0}, /* keeps it: what follows is an error */
    };
    const char *canon = "OPEN <{" NS_STREAMS "}stream id=\"s1\"></>\n"
                        "<{jabber:client}message><{jabber:client}body>hello</></>\n"
                        "<{jabber:client}presence></>\n<{jabber:client}iq type=\"get\"></>\n"
                        "<{jabber:client}iq type=\"set\"></>\n"
                        "<{" NS_STREAMS "}features><{urn:x}x></></>\n"
                        "<{jabber:client}m>&amp;</>\n<{jabber:client}a></>\nCLOSE\n";
    parser_pool_t *pool = use_new_pool();
    rec_t r;
    rec_init(&r, NULL);
    run_park_steps(&r, steps, sizeof(steps) / sizeof(*steps));
    CHECK_STR(r.log.data, canon);
    CHECK_INT(feed(&r, "<x/>"), UVX_EPARSE);
    CHECK(parser_is_parked(r.p)); /* an error needs no context */
    CHECK_INT(feed(&r, "<x/>"), UVX_EPARSE);
    CHECK_INT(r.errors, 1);

    /* A reset parks it, and the next stream starts from scratch. */
    CHECK_INT(uvx_parser_reset(r.p), 0);
    CHECK(parser_is_parked(r.p));
    const char *head = "<s xmlns='urn:s' xmlns:p='urn:p'>";
    CHECK_INT(feed(&r, head), 0);
    CHECK(parser_is_parked(r.p));
    CHECK_INT(feed(&r, "<p:a/>"), 0);
    CHECK_INT(uvx_parser_reset(r.p), 0);
    CHECK_INT(feed(&r, "<s xmlns='urn:t'><p:a/>"), UVX_EPARSE);
    CHECK_INT(r.errors, 2);
    CHECK(strstr(r.log.data, "OPEN <{urn:s}s></>\n<{urn:p}a></>\nOPEN <{urn:t}s></>\nERROR") !=
          NULL);
    /* A stop too. */
    CHECK_INT(uvx_parser_reset(r.p), 0);
    CHECK_INT(feed(&r, "<s><a>"), 0);
    CHECK(!parser_is_parked(r.p));
    uvx_parser_stop(r.p);
    CHECK(parser_is_parked(r.p));
    CHECK_INT(feed(&r, "</a>"), UVX_ECLOSED);
    free(rec_finish(&r));

    /* Primed (WebSocket): parked after every message. */
    rec_init(&r, NULL);
    const char *open = "<stream:stream xmlns='jabber:client' xmlns:stream='" NS_STREAMS "'>";
    CHECK_INT(parser_prime(r.p, open, strlen(open)), 0);
    CHECK(parser_is_parked(r.p));
    static const park_step_t msgs[] = {
        {"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='x' version='1.0'/>", 1},
        {"<stream:features/>", 1},
        {"<message><body>a</body></message>", 1},
    };
    run_park_steps(&r, msgs, sizeof(msgs) / sizeof(*msgs));
    CHECK_INT(r.stanzas, 3);
    CHECK_INT(r.opens, 0);
    CHECK_INT(r.errors, 0);
    CHECK(strstr(r.log.data, "<{" NS_STREAMS "}features></>\n<{jabber:client}message>") != NULL);
    free(rec_finish(&r));
    drop_pool(pool);
}

/* A context taken from a parked parser brings none of its bindings along,
 * and the parked parser gets its own back by replay. */
static void test_pool_steal(void)
{
    rec_t a, b;
    parser_pool_t *pool = pooled_pair(&a, &b);
    const char *head_a =
        "<stream:stream xmlns='jabber:client' xmlns:stream='" NS_STREAMS "' xmlns:old='urn:old'>";
    const char *head_b = "<s xmlns='urn:s'>";
    CHECK_INT(feed(&a, head_a), 0);
    CHECK(parser_is_parked(a.p));
    CHECK_INT(feed(&b, head_b), 0); /* takes a's context */
    CHECK_INT(feed(&b, "<old:m/>"), UVX_EPARSE);
    CHECK_INT(b.errors, 1);
    CHECK_INT(feed(&a, "<old:m/><stream:x/>"), 0);
    CHECK_INT(feed(&a, "<m/></stream:stream>"), 0);
    CHECK_INT(a.errors, 0);
    CHECK_INT(a.closes, 1);
    char *la = rec_finish(&a), *lb = rec_finish(&b);
    CHECK_STR(la, "OPEN <{" NS_STREAMS "}stream></>\n<{urn:old}m></>\n<{" NS_STREAMS "}x></>\n"
                  "<{jabber:client}m></>\nCLOSE\n");
    CHECK_STR(lb, "OPEN <{urn:s}s></>\nERROR not-well-formed malformed XML\n");
    free(la);
    free(lb);
    drop_pool(pool);
}

/* parser_pool_free() before the parsers: they go on working, the pool
 * goes with the last of them (checked by the sanitizers). */
static void test_pool_freed_first(void)
{
    rec_t a, b;
    parser_pool_t *pool = pooled_pair(&a, &b);
    test_pool = NULL;
    CHECK_INT(feed(&a, STREAM_HEAD), 0);
    parser_pool_free(pool);
    CHECK_INT(feed(&b, STREAM_HEAD "<a/>"), 0);
    CHECK_INT(feed(&a, "<b/><c>"), 0);
    free(rec_finish(&a));
    CHECK_INT(feed(&b, "<d/>"), 0);
    CHECK_INT(b.stanzas, 2);
    free(rec_finish(&b));
    /* Leaving the pool: back to a context of its own. */
    pool = parser_pool_new();
    die_if(pool == NULL);
    rec_init(&a, NULL);
    parser_set_pool(a.p, pool);
    CHECK_INT(feed(&a, STREAM_HEAD "<a/>"), 0);
    CHECK(parser_is_parked(a.p));
    parser_set_pool(a.p, NULL);
    parser_pool_free(pool);
    CHECK_INT(feed(&a, "<b/>"), 0);
    CHECK(!parser_is_parked(a.p));
    CHECK_INT(a.stanzas, 2);
    CHECK_INT(a.errors, 0);
    free(rec_finish(&a));
}

/* More distinct names than one shared dictionary is allowed to collect:
 * it is replaced under parked parsers without changing any event. */
static void test_pool_many_names(void)
{
    rec_t a, b;
    parser_pool_t *pool = pooled_pair(&a, &b);
    CHECK_INT(feed(&a, STREAM_HEAD), 0);
    CHECK_INT(feed(&b, STREAM_HEAD), 0);
    char in[128], want[128];
    int bad = 0;
    for (int i = 0; i < 30000; i++) {
        rec_t *r = i % 2 ? &a : &b;
        snprintf(in, sizeof(in), "<n%d xmlns:p%d='urn:%d' p%d:a%d='v'/>", i, i, i, i, i);
        CHECK_INT(feed(r, in), 0);
        if (!parser_is_parked(r->p))
            bad++;
        snprintf(want, sizeof(want), "<{jabber:client}n%d p%d:a%d=\"v\"></>\n", i, i, i);
        size_t wl = strlen(want);
        if (r->log.len < wl || strcmp(r->log.data + r->log.len - wl, want) != 0)
            bad++;
    }
    CHECK_INT(bad, 0);
    CHECK_INT(a.stanzas + b.stanzas, 30000);
    CHECK_INT(a.errors + b.errors, 0);
    free(rec_finish(&a));
    free(rec_finish(&b));
    drop_pool(pool);
}

/* Runs a case of the suite above again with every parser pooled. */
static void run_pooled(const char *name, void (*fn)(void))
{
    parser_pool_t *pool = use_new_pool();
    tap_run(name, fn);
    drop_pool(pool);
}

/* ---- API misuse ------------------------------------------------------------------------------ */

static void test_misuse(void)
{
    CHECK_INT(uvx_parser_feed(NULL, "x", 1), UVX_EINVAL);
    CHECK_INT(uvx_parser_reset(NULL), UVX_EINVAL);
    uvx_parser_stop(NULL);
    uvx_parser_free(NULL);
    uvx_parser_t *p = uvx_parser_new(NULL, NULL, NULL); /* no callbacks at all */
    CHECK(p != NULL);
    CHECK_INT(uvx_parser_feed(p, NULL, 1), UVX_EINVAL);
    CHECK_INT(uvx_parser_feed(p, NULL, 0), 0);
    CHECK_INT(uvx_parser_feed(p, stream_basic, strlen(stream_basic)), 0);
    CHECK_INT(uvx_parser_feed(p, "<x/>", 4), UVX_EPARSE); /* after the stream's end */
    uvx_parser_free(p);
}

int main(void)
{
    tap_run("events", test_events);
    tap_run("events are prompt", test_events_are_prompt);
    tap_run("tree api", test_tree_api);
    tap_run("namespaces and round trip", test_namespaces);
    tap_run("split at every offset", test_split_every_offset);
    tap_run("random chunks", test_random_chunks);
    tap_run("carriage returns", test_carriage_returns);
    tap_run("restart at every offset", test_restart_every_offset);
    tap_run("restart anywhere", test_restart_anywhere);
    tap_run("restart forgets namespaces", test_restart_forgets_namespaces);
    tap_run("stop", test_stop);
    tap_run("feed from callback", test_feed_from_callback);
    tap_run("reset in error callback", test_reset_in_error_callback);
    tap_run("reset between feeds", test_reset_between_feeds);
    tap_run("prime", test_prime);
    tap_run("attribute and text values", test_values);
    tap_run("stanza size limit is exact", test_stanza_size_exact);
    tap_run("white space keepalives", test_whitespace_keepalives);
    tap_run("10 MB stanza", test_big_stanza);
    tap_run("depth", test_depth);
    tap_run("hostile and restricted XML", test_hostile);
    tap_run("UTF-8 across chunks", test_utf8_across_chunks);
    tap_run("corpus: inline stream", test_corpus_inline);
    tap_run("corpus: test/data", test_corpus);
    tap_run("misuse", test_misuse);
    tap_run("pooled: interleaved parsers log what unpooled ones do", test_pool_interleaved);
    tap_run("pooled: parks between stanzas only", test_pool_parks_at_boundaries);
    tap_run("pooled: a taken context keeps no namespace", test_pool_steal);
    tap_run("pooled: pool freed before its parsers", test_pool_freed_first);
    tap_run("pooled: shared dictionary renewal", test_pool_many_names);
    run_pooled("pooled: events", test_events);
    run_pooled("pooled: events are prompt", test_events_are_prompt);
    run_pooled("pooled: namespaces and round trip", test_namespaces);
    run_pooled("pooled: split at every offset", test_split_every_offset);
    run_pooled("pooled: random chunks", test_random_chunks);
    run_pooled("pooled: carriage returns", test_carriage_returns);
    run_pooled("pooled: restart at every offset", test_restart_every_offset);
    run_pooled("pooled: restart anywhere", test_restart_anywhere);
    run_pooled("pooled: restart forgets namespaces", test_restart_forgets_namespaces);
    run_pooled("pooled: stop", test_stop);
    run_pooled("pooled: feed from callback", test_feed_from_callback);
    run_pooled("pooled: reset in error callback", test_reset_in_error_callback);
    run_pooled("pooled: reset between feeds", test_reset_between_feeds);
    run_pooled("pooled: prime", test_prime);
    run_pooled("pooled: stanza size limit is exact", test_stanza_size_exact);
    run_pooled("pooled: white space keepalives", test_whitespace_keepalives);
    run_pooled("pooled: 10 MB stanza", test_big_stanza);
    run_pooled("pooled: depth", test_depth);
    run_pooled("pooled: hostile and restricted XML", test_hostile);
    run_pooled("pooled: UTF-8 across chunks", test_utf8_across_chunks);
    run_pooled("pooled: corpus: inline stream", test_corpus_inline);
    run_pooled("pooled: corpus: test/data", test_corpus);
    return tap_done();
}
