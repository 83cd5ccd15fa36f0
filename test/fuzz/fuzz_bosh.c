/*
 * libFuzzer target for BOSH's receive path: HTTP response bytes through
 * the sans-I/O reader (transports/bosh_http.c), then the body through the
 * stream parser primed as the core primes it for a framed transport.
 *
 * Input layout: byte 0 seeds the chunk sizes, the rest is what a server
 * sends on one connection. The bytes are read in chunks, response after
 * response as a keep-alive connection carries them, then to EOF. Checked:
 *  - the same bytes read in one piece give the same responses (status,
 *    body, keep-alive) up to the first error;
 *  - `used` never exceeds what was fed, a complete response always has a
 *    status, a body never exceeds the limit;
 *  - each 200 body fed to a primed parser yields at most one depth-1
 *    element or one error, and never crashes or leaks.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../transports/bosh_http.h"
#include "buf.h"
#include "parser.h"
#include "uvxmpp.h"

#define MAX_BODY 8192
#define MAX_RESPONSES 16

static const char prime_tag[] = "<stream:stream xmlns='jabber:client' "
                                "xmlns:stream='http://etherx.jabber.org/streams'>";

static void require(int cond, const char *what)
{
    if (cond)
        return;
    fprintf(stderr, "fuzz_bosh invariant failed: %s\n", what);
    abort();
}

typedef struct response {
    int status;
    int keep_alive;
    size_t body_len;
    uint32_t body_hash;
} response_t;

typedef struct run {
    response_t resp[MAX_RESPONSES];
    int n;
    int error;
} run_t;

static uint32_t hash(const char *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 16777619u;
    return h;
}

typedef struct events {
    int elements;
    int errors;
} events_t;

static void ev_open(void *ud, uvx_stanza_t *root)
{
    (void)ud;
    (void)root;
    require(0, "stream_open after priming");
}

static void ev_stanza(void *ud, uvx_stanza_t *s)
{
    events_t *e = ud;
    e->elements++;
    char *xml = uvx_stanza_to_string(s);
    free(xml);
    for (uvx_stanza_t *c = uvx_stanza_children(s); c; c = uvx_stanza_next(c))
        (void)uvx_stanza_name(c);
}

static void ev_close(void *ud)
{
    (void)ud;
}

static void ev_error(void *ud, int err, const char *cond)
{
    events_t *e = ud;
    (void)err;
    require(cond != NULL, "error without a condition");
    e->errors++;
}

static const uvx_parser_callbacks_t callbacks = {ev_open, ev_stanza, ev_close, ev_error};

/* A body as the transport feeds it: one element per response. */
static void parse_body(const char *body, size_t len)
{
    events_t e = {0, 0};
    uvx_parser_limits_t limits = {MAX_BODY, 16};
    uvx_parser_t *p = uvx_parser_new(&callbacks, &e, &limits);
    require(p != NULL, "parser");
    if (parser_prime(p, prime_tag, strlen(prime_tag)) == 0)
        uvx_parser_feed(p, body, len);
    require(e.errors <= 1, "more than one error");
    uvx_parser_free(p);
}

static void record(run_t *r, bosh_http_reader_t *rd, int parse)
{
    require(rd->status >= 0, "negative status");
    require(rd->body.len <= MAX_BODY, "body above the limit");
    if (r->n < MAX_RESPONSES) {
        response_t *x = &r->resp[r->n];
        x->status = rd->status;
        x->keep_alive = rd->keep_alive;
        x->body_len = rd->body.len;
        x->body_hash = hash(rd->body.data ? rd->body.data : "", rd->body.len);
    }
    r->n++;
    if (parse && rd->status == 200 && rd->body.len)
        parse_body(rd->body.data, rd->body.len);
}

/* Reads `data` in chunks of the sizes `seed` picks (0: one piece). */
static void read_all(run_t *r, const char *data, size_t len, unsigned seed, int parse)
{
    bosh_http_reader_t rd;
    memset(&rd, 0, sizeof(rd));
    memset(r, 0, sizeof(*r));
    bosh_http_reader_init(&rd, MAX_BODY);
    size_t off = 0;
    unsigned state = seed | 1;
    while (off < len && !r->error && r->n < MAX_RESPONSES) {
        size_t chunk = len - off;
        if (seed) {
            state = state * 1103515245u + 12345u;
            chunk = 1 + (state >> 16) % 17;
            if (chunk > len - off)
                chunk = len - off;
        }
        size_t used = 0;
        int rc = bosh_http_reader_feed(&rd, data + off, chunk, &used);
        require(used <= chunk, "used more than fed");
        if (rc < 0) {
            r->error = rc;
            break;
        }
        if (rc == 0) {
            require(used == chunk, "needs more but did not take it all");
            off += chunk;
            continue;
        }
        require(rd.complete && rd.status > 0, "complete without a status");
        record(r, &rd, parse);
        off += used;
        if (!rd.keep_alive)
            break; /* the transport drops the connection here */
        bosh_http_reader_next(&rd);
    }
    if (!r->error && off >= len && bosh_http_reader_started(&rd) && !rd.complete &&
        bosh_http_reader_eof(&rd) == 1)
        record(r, &rd, parse);
    bosh_http_reader_free(&rd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned seed = data[0];
    const char *bytes = (const char *)data + 1;
    size_t len = size - 1;
    run_t whole, chunked;
    read_all(&whole, bytes, len, 0, 1);
    read_all(&chunked, bytes, len, seed ? seed : 1, 0);
    /* the same responses up to the first error of either run */
    int n = whole.n < chunked.n ? whole.n : chunked.n;
    if (n > MAX_RESPONSES)
        n = MAX_RESPONSES;
    for (int i = 0; i < n; i++) {
        require(whole.resp[i].status == chunked.resp[i].status, "status differs by chunking");
        require(whole.resp[i].body_len == chunked.resp[i].body_len, "body differs by chunking");
        require(whole.resp[i].body_hash == chunked.resp[i].body_hash, "body differs by chunking");
        require(whole.resp[i].keep_alive == chunked.resp[i].keep_alive,
                "keep-alive differs by chunking");
    }
    if (!whole.error && !chunked.error)
        require(whole.n == chunked.n, "response count differs by chunking");
    return 0;
}
