/*
 * libFuzzer target for the XML stream parser.
 *
 * Input layout: byte 0 seeds the chunk sizes, byte 1 holds option bits,
 * the rest is the stream. The stream is fed in chunks, then the parser is
 * reset (a stream restart on the same libxml2 context) and fed the same
 * bytes in one piece. Both runs must report the same events up to the
 * first error (one run may stop earlier: libxml2 may not look at malformed
 * input before more data arrives, and a size limit is checked at chunk
 * granularity), and without errors exactly the same events. Along the way:
 *  - the error callback fires at most once per stream, and afterwards every
 *    feed returns that error;
 *  - every stanza serializes and parses back (uvx_stanza_from_string) to
 *    the same names, namespaces, attributes and text.
 */
#include "uvxmpp.h"
#include "buf.h"
#include "fuzz_canon.h"
#include "parser.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    OPT_CLIENT_RESTARTS = 1, /* reset after <proceed/> / <success/>, like a client */
    OPT_RESET_ON_R = 2,      /* reset after any element named "r" */
    OPT_SMALL_LIMITS = 4,    /* max_stanza_size 4096, max_depth 8 */
    OPT_PRIME = 8,           /* parser_prime() with a stream header first */
    OPT_STOP_ON_S = 16,      /* uvx_parser_stop() in the callback of an element "s" */
};

static const char prime_tag[] = "<stream:stream xmlns='jabber:client' "
                                "xmlns:stream='http://etherx.jabber.org/streams'>";

typedef struct run {
    buf_t log;
    uvx_parser_t *p;
    unsigned opts;
    int errors; /* since the last reset */
    int last_err;
} run_t;

static void require(int cond, const char *what)
{
    if (cond)
        return;
    fprintf(stderr, "fuzz_parser invariant failed: %s\n", what);
    abort();
}

static void put(buf_t *b, const char *s, size_t n)
{
    require(buf_append(b, s, n) == 0, "out of memory");
}

static void put_str(buf_t *b, const char *s)
{
    put(b, s, strlen(s));
}

static void check_round_trip(uvx_stanza_t *s)
{
    char *xml = NULL;
    size_t len = 0;
    require(uvx_stanza_serialize(s, NULL, &xml, &len) == 0, "serialize");
    int err = 0;
    uvx_stanza_t *again = uvx_stanza_from_string(xml, len, &err);
    if (again == NULL && err == UVX_ETOOBIG) {
        free(xml); /* escaping can make it bigger than the limit */
        return;
    }
    require(again != NULL, "serialized stanza parses back");
    buf_t a = BUF_INIT, b = BUF_INIT;
    fuzz_canon(&a, s);
    fuzz_canon(&b, again);
    require(a.len == b.len && memcmp(a.data, b.data, a.len) == 0, "round trip keeps the tree");
    buf_free(&a);
    buf_free(&b);
    uvx_stanza_unref(again);
    free(xml);
}

static void on_open(void *ud, uvx_stanza_t *root)
{
    run_t *r = ud;
    require(r->errors == 0, "no event after an error");
    require(uvx_stanza_children(root) == NULL, "root without children");
    put_str(&r->log, "OPEN ");
    fuzz_canon(&r->log, root);
    put_str(&r->log, "\n");
}

static int named(uvx_stanza_t *s, const char *name, const char *ns)
{
    const char *sns = uvx_stanza_ns(s);
    return strcmp(uvx_stanza_name(s), name) == 0 &&
           (ns == NULL || (sns != NULL && strcmp(sns, ns) == 0));
}

static void on_stanza(void *ud, uvx_stanza_t *s)
{
    run_t *r = ud;
    require(r->errors == 0, "no event after an error");
    require(uvx_stanza_parent(s) == NULL, "stanza has no parent");
    fuzz_canon(&r->log, s);
    put_str(&r->log, "\n");
    check_round_trip(s);
    if (((r->opts & OPT_CLIENT_RESTARTS) &&
         (named(s, "proceed", UVX_NS_TLS) || named(s, "success", UVX_NS_SASL))) ||
        ((r->opts & OPT_RESET_ON_R) && named(s, "r", NULL))) {
        put_str(&r->log, "RESET\n");
        r->errors = 0;
        uvx_parser_reset(r->p);
    }
    if ((r->opts & OPT_STOP_ON_S) && named(s, "s", NULL)) {
        put_str(&r->log, "STOP\n");
        uvx_parser_stop(r->p);
    }
}

static void on_close(void *ud)
{
    run_t *r = ud;
    require(r->errors == 0, "no event after an error");
    put_str(&r->log, "CLOSE\n");
}

static void on_error(void *ud, int err, const char *condition)
{
    run_t *r = ud;
    require(r->errors++ == 0, "one error per stream");
    require(err == UVX_EPARSE || err == UVX_ERESTRICTED || err == UVX_ETOOBIG ||
                err == UVX_ETOODEEP,
            "documented error code");
    require(condition != NULL && *condition != '\0', "condition");
    r->last_err = err;
    put_str(&r->log, "ERROR\n");
}

static const uvx_parser_callbacks_t callbacks = {on_open, on_stanza, on_close, on_error};

/* Feeds one chunk and checks the result against what the callbacks saw. */
static int feed(run_t *r, const uint8_t *data, size_t n)
{
    int rc = uvx_parser_feed(r->p, (const char *)data, n);
    if (rc != 0 && rc != UVX_ECLOSED)
        require(r->errors == 1 && rc == r->last_err, "feed returns the reported error");
    if (rc == r->last_err && rc != 0)
        require(uvx_parser_feed(r->p, "<x/>", 4) == rc, "later feeds return the error");
    return rc;
}

/* The log up to its first ERROR line, and whether there was one. */
static size_t events_before_error(const buf_t *log, int *had_error)
{
    const char *e = log->data ? strstr(log->data, "ERROR\n") : NULL;
    *had_error = e != NULL;
    return e ? (size_t)(e - log->data) : log->len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    unsigned chunk_byte = data[0], opts = data[1];
    uint32_t seed = chunk_byte * 2654435761u + 1;
    data += 2;
    size -= 2;

    uvx_parser_limits_t small = {4096, 8};
    run_t r = {.opts = opts};
    r.p = uvx_parser_new(&callbacks, &r, (opts & OPT_SMALL_LIMITS) ? &small : NULL);
    require(r.p != NULL, "parser");

    /* Run 1: in chunks. */
    if (opts & OPT_PRIME)
        require(parser_prime(r.p, prime_tag, sizeof(prime_tag) - 1) == 0, "prime");
    size_t max_chunk = 1 + chunk_byte % 97;
    for (size_t at = 0; at < size;) {
        seed ^= seed << 13, seed ^= seed >> 17, seed ^= seed << 5;
        size_t n = 1 + seed % max_chunk;
        if (n > size - at)
            n = size - at;
        if (feed(&r, data + at, n) != 0)
            break;
        at += n;
    }
    buf_t chunked = r.log;
    r.log = (buf_t)BUF_INIT;

    /* Run 2: restart, then everything at once. */
    r.errors = 0;
    r.last_err = 0;
    require(uvx_parser_reset(r.p) == 0, "reset");
    if (opts & OPT_PRIME)
        require(parser_prime(r.p, prime_tag, sizeof(prime_tag) - 1) == 0, "prime again");
    feed(&r, data, size);

    int err1, err2;
    size_t n1 = events_before_error(&chunked, &err1);
    size_t n2 = events_before_error(&r.log, &err2);
    size_t common = n1 < n2 ? n1 : n2;
    require(common == 0 || memcmp(chunked.data, r.log.data, common) == 0,
            "chunking does not change the events");
    require(err1 || err2 || n1 == n2, "without errors, chunking does not change the events");

    buf_free(&chunked);
    buf_free(&r.log);
    uvx_parser_free(r.p);
    return 0;
}
