/*
 * SRV lookup (lib/resolve.c) without a network: DNS answers built here
 * byte by byte, malformed and truncated ones, RFC 2782 ordering with a
 * fixed random source, the XEP-0368 merge and fallback rules, and the
 * asynchronous path with canned answers in place of res_nquery.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "client.h"
#include "fakeserver.h"
#include "resolve.h"
#include "tap.h"
#include "uvxmpp.h"

/* ---- building DNS messages ---- */

typedef struct pkt {
    unsigned char b[4096];
    size_t len;
} pkt_t;

static void put8(pkt_t *p, unsigned v)
{
    p->b[p->len++] = (unsigned char)v;
}

static void put16(pkt_t *p, unsigned v)
{
    put8(p, v >> 8);
    put8(p, v & 0xff);
}

static void put32(pkt_t *p, unsigned long v)
{
    put16(p, (unsigned)(v >> 16));
    put16(p, (unsigned)(v & 0xffff));
}

/* "a.b.c" as length-prefixed labels; "." is the root (one zero byte). */
static void put_name(pkt_t *p, const char *name)
{
    while (*name && strcmp(name, ".") != 0) {
        size_t n = strcspn(name, ".");
        put8(p, (unsigned)n);
        memcpy(p->b + p->len, name, n);
        p->len += n;
        name += n;
        if (*name == '.')
            name++;
    }
    put8(p, 0);
}

/* A response header (id 0x1234, QR, RD, RA, NOERROR) and one question. */
static void pkt_begin(pkt_t *p, const char *qname, unsigned ancount)
{
    p->len = 0;
    put16(p, 0x1234);
    put16(p, 0x8180);
    put16(p, 1);       /* QDCOUNT */
    put16(p, ancount); /* ANCOUNT */
    put16(p, 0);       /* NSCOUNT */
    put16(p, 0);       /* ARCOUNT */
    put_name(p, qname);
    put16(p, 33); /* QTYPE SRV */
    put16(p, 1);  /* QCLASS IN */
}

/* An answer record owned by the question name (pointer to offset 12). */
static void put_rr_head(pkt_t *p, unsigned type, unsigned klass, unsigned rdlen)
{
    put16(p, 0xC00C);
    put16(p, type);
    put16(p, klass);
    put32(p, 300);
    put16(p, rdlen);
}

/* An SRV record of class `klass` up to its target, which the caller writes
 * (RDLENGTH `rdlen` need not fit it: the malformed cases). */
static void put_srv_head(pkt_t *p, unsigned klass, unsigned rdlen, unsigned prio, unsigned weight,
                         unsigned port)
{
    put_rr_head(p, 33, klass, rdlen);
    put16(p, prio);
    put16(p, weight);
    put16(p, port);
}

static void put_srv(pkt_t *p, unsigned prio, unsigned weight, unsigned port, const char *target)
{
    pkt_t name = {.len = 0};
    put_name(&name, target);
    put_srv_head(p, 1, (unsigned)(6 + name.len), prio, weight, port);
    memcpy(p->b + p->len, name.b, name.len);
    p->len += name.len;
}

/* The query hooks' contract: the packet's length, or -1 when it does not
 * fit. */
static int pkt_answer(const pkt_t *p, unsigned char *answer, int cap)
{
    if ((int)p->len > cap)
        return -1;
    memcpy(answer, p->b, p->len);
    return (int)p->len;
}

#define QNAME "_xmpp-client._tcp.example.net"

/* ---- parsing ---- */

/* Parses `p`, appending to *recs: 1 when it succeeded with `total` records
 * in all. */
static int parse_ok(const pkt_t *p, int direct_tls, srv_record_t **recs, size_t *n, size_t total)
{
    CHECK_INT(resolve_parse_srv(p->b, p->len, direct_tls, recs, n), 0);
    CHECK_INT(*n, total);
    return *n == total;
}

static void check_rec(const srv_record_t *r, unsigned prio, unsigned weight, unsigned port,
                      const char *target, int direct_tls)
{
    CHECK_INT(r->priority, prio);
    CHECK_INT(r->weight, weight);
    CHECK_INT(r->port, port);
    CHECK_STR(r->target, target);
    CHECK_INT(r->direct_tls, direct_tls);
}

static void test_parse_answer(void)
{
    pkt_t p;
    pkt_begin(&p, QNAME, 3);
    put_srv(&p, 10, 60, 5222, "xmpp1.example.net");
    put_srv(&p, 20, 0, 5223, "xmpp2.example.net");
    put_srv(&p, 0, 5, 443, "a.b.example.org");
    srv_record_t *recs = NULL;
    size_t n = 0;
    if (parse_ok(&p, 1, &recs, &n, 3)) {
        check_rec(&recs[0], 10, 60, 5222, "xmpp1.example.net", 1);
        check_rec(&recs[1], 20, 0, 5223, "xmpp2.example.net", 1);
        check_rec(&recs[2], 0, 5, 443, "a.b.example.org", 1);
    }
    /* a second answer appends */
    pkt_begin(&p, QNAME, 1);
    put_srv(&p, 1, 1, 5222, ".");
    if (parse_ok(&p, 0, &recs, &n, 4))
        check_rec(&recs[3], 1, 1, 5222, ".", 0);
    resolve_records_free(recs, n);
}

/* CNAME, A and a non-IN SRV in the answer section are skipped; a target
 * compressed into the question name is followed. */
static void test_parse_skips_other_records(void)
{
    pkt_t p;
    pkt_begin(&p, QNAME, 4);
    put_rr_head(&p, 5, 1, 2); /* CNAME pointing at the question name */
    put16(&p, 0xC00C);
    put_rr_head(&p, 1, 1, 4); /* A 192.0.2.1 */
    put32(&p, 0xC0000201UL);
    put_srv_head(&p, 3, 7, 1, 1, 1); /* SRV in class CHAOS */
    put8(&p, 0);
    put_srv_head(&p, 1, 8, 5, 0, 5269);        /* target = pointer to "example.net" */
    put16(&p, 0xC000 | (12 + 1 + 12 + 1 + 4)); /* past "_xmpp-client" and "_tcp" */
    srv_record_t *recs = NULL;
    size_t n = 0;
    if (parse_ok(&p, 0, &recs, &n, 1))
        check_rec(&recs[0], 5, 0, 5269, "example.net", 0);
    resolve_records_free(recs, n);
    /* no answers at all (NODATA) */
    pkt_begin(&p, QNAME, 0);
    recs = NULL;
    n = 0;
    parse_ok(&p, 0, &recs, &n, 0);
    free(recs);
}

/* Every proper prefix of a good answer is refused and appends nothing. */
static void test_parse_truncated(void)
{
    pkt_t p;
    pkt_begin(&p, QNAME, 2);
    put_srv(&p, 10, 60, 5222, "xmpp1.example.net");
    put_srv(&p, 20, 0, 5223, "xmpp2.example.net");
    srv_record_t *recs = NULL;
    size_t n = 0;
    int refused = 0;
    for (size_t len = 0; len < p.len; len++) {
        unsigned char *copy = malloc(len ? len : 1); /* ASan sees any overread */
        memcpy(copy, p.b, len);
        if (resolve_parse_srv(copy, len, 0, &recs, &n) == UVX_EPARSE && n == 0)
            refused++;
        free(copy);
    }
    CHECK_INT(refused, (int)p.len);
    CHECK_INT(n, 0);
    free(recs);
}

static int parse_fails_keeping(const pkt_t *p, size_t keep_n, srv_record_t **recs, size_t *n)
{
    return resolve_parse_srv(p->b, p->len, 0, recs, n) == UVX_EPARSE && *n == keep_n;
}

/* A message whose first answer is an SRV record with priority, weight and
 * port 1 and RDLENGTH `rdlen`, its target left to the case. */
static void begin_bad_srv(pkt_t *p, unsigned ancount, unsigned rdlen)
{
    pkt_begin(p, QNAME, ancount);
    put_srv_head(p, 1, rdlen, 1, 1, 1);
}

static void test_parse_malformed(void)
{
    srv_record_t *recs = NULL;
    size_t n = 0;
    pkt_t p;
    /* one good record first: a failed parse must keep it */
    pkt_begin(&p, QNAME, 1);
    put_srv(&p, 1, 1, 5222, "good.example.net");
    parse_ok(&p, 0, &recs, &n, 1);

    /* RDATA too short for priority, weight, port and a name */
    begin_bad_srv(&p, 1, 6);
    CHECK(parse_fails_keeping(&p, 1, &recs, &n));

    /* the target name ends before the RDATA does */
    begin_bad_srv(&p, 1, 9);
    put8(&p, 0);
    put16(&p, 0xffff);
    CHECK(parse_fails_keeping(&p, 1, &recs, &n));

    /* the target name runs past the RDATA into the next record */
    begin_bad_srv(&p, 2, 8);
    put8(&p, 3);
    put8(&p, 'a');
    put_srv(&p, 1, 1, 1, "x.y");
    CHECK(parse_fails_keeping(&p, 1, &recs, &n));

    /* a compression pointer to itself */
    begin_bad_srv(&p, 1, 8);
    put16(&p, 0xC000 | (unsigned)p.len);
    CHECK(parse_fails_keeping(&p, 1, &recs, &n));

    /* a pointer past the end of the message */
    begin_bad_srv(&p, 1, 8);
    put16(&p, 0xC000 | 0x3ff);
    CHECK(parse_fails_keeping(&p, 1, &recs, &n));

    /* ANCOUNT says two, one is there */
    pkt_begin(&p, QNAME, 2);
    put_srv(&p, 1, 1, 5222, "x.example.net");
    CHECK(parse_fails_keeping(&p, 1, &recs, &n));

    /* RDLENGTH beyond the end of the message */
    pkt_begin(&p, QNAME, 1);
    put_rr_head(&p, 33, 1, 200);
    put16(&p, 1);
    CHECK(parse_fails_keeping(&p, 1, &recs, &n));

    /* bytes after the last record */
    pkt_begin(&p, QNAME, 1);
    put_srv(&p, 1, 1, 5222, "x.example.net");
    put8(&p, 0);
    CHECK(parse_fails_keeping(&p, 1, &recs, &n));

    /* a label longer than 63 bytes (0x40 is neither a length nor a pointer) */
    begin_bad_srv(&p, 1, 8);
    put8(&p, 0x40);
    put8(&p, 0);
    CHECK(parse_fails_keeping(&p, 1, &recs, &n));

    CHECK_STR(recs[0].target, "good.example.net");
    resolve_records_free(recs, n);
}

/* ---- ordering ---- */

typedef struct seq_rng {
    const uint32_t *v;
    size_t n, i;
} seq_rng_t;

/* Returns the values in turn (then zeros). */
static uint32_t seq_next(void *ud)
{
    seq_rng_t *s = ud;
    return s->i < s->n ? s->v[s->i++] : 0;
}

static void set_rec(srv_record_t *r, unsigned prio, unsigned weight, const char *target)
{
    r->priority = (uint16_t)prio;
    r->weight = (uint16_t)weight;
    r->port = 5222;
    r->direct_tls = 0;
    r->target = (char *)target; /* not freed here */
}

static void order_names(srv_record_t *r, size_t n, char *out)
{
    out[0] = '\0';
    for (size_t i = 0; i < n; i++)
        strcat(out, r[i].target);
}

/* Orders r[0..n) with `draws` as the random source and checks the order
 * of the targets; returns how many draws it took. */
static size_t check_order(srv_record_t *r, size_t n, const uint32_t *draws, size_t ndraws,
                          const char *expect)
{
    seq_rng_t rng = {draws, ndraws, 0};
    char got[32];
    resolve_order_srv(r, n, seq_next, &rng);
    order_names(r, n, got);
    CHECK_STR(got, expect);
    return rng.i;
}

static void test_order_fixed_rng(void)
{
    srv_record_t r[6];
    /* answer order: E(20,1) B(10,10) A(10,0) C(10,30) Z(0,7) F(20,1) */
    set_rec(&r[0], 20, 1, "E");
    set_rec(&r[1], 10, 10, "B");
    set_rec(&r[2], 10, 0, "A");
    set_rec(&r[3], 10, 30, "C");
    set_rec(&r[4], 0, 7, "Z");
    set_rec(&r[5], 20, 1, "F");
    /* priority 0: one record, no draw. Priority 10 after zero-first:
     * A(0) B(10) C(30), sum 40: draw 25 -> running 0,10,40 -> C; then A B,
     * sum 10: draw 5 -> B; A last. Priority 20: E F, sum 2: draw 3 % 3 = 0
     * -> E (running 1 >= 0); F last. */
    static const uint32_t draws[] = {25, 5, 3};
    /* one draw per choice among two or more */
    CHECK_INT(check_order(r, 6, draws, 3, "ZCBAEF"), 3);

    /* draws of 0 take the zero-weight record first, then the first ones */
    set_rec(&r[0], 10, 10, "B");
    set_rec(&r[1], 10, 30, "C");
    set_rec(&r[2], 10, 0, "A");
    static const uint32_t zeros[] = {0, 0};
    CHECK_INT(check_order(r, 3, zeros, 2, "ABC"), 2);

    /* the largest draw takes the last record of the running sum */
    set_rec(&r[0], 10, 10, "B");
    set_rec(&r[1], 10, 30, "C");
    static const uint32_t big[] = {40, 0};
    CHECK_INT(check_order(r, 2, big, 2, "CB"), 1);
}

/* Over every draw 0..sum, each record comes first as often as RFC 2782's
 * running-sum rule says: weights 1, 2, 5 (sum 8, 9 draws) -> 2, 2, 5. */
static uint32_t counter_next(void *ud)
{
    return (*(uint32_t *)ud)++;
}

static void test_order_weight_shares(void)
{
    int first[3] = {0, 0, 0};
    const char *names[3] = {"a", "b", "c"};
    for (uint32_t draw = 0; draw <= 8; draw++) {
        srv_record_t r[3];
        set_rec(&r[0], 1, 1, names[0]);
        set_rec(&r[1], 1, 2, names[1]);
        set_rec(&r[2], 1, 5, names[2]);
        uint32_t counter = draw;
        resolve_order_srv(r, 3, counter_next, &counter);
        for (int i = 0; i < 3; i++)
            if (r[0].target == names[i])
                first[i]++;
        /* every record appears once */
        CHECK(r[0].target != r[1].target && r[1].target != r[2].target &&
              r[0].target != r[2].target);
    }
    CHECK_INT(first[0], 2); /* draws 0, 1 */
    CHECK_INT(first[1], 2); /* draws 2, 3 */
    CHECK_INT(first[2], 5); /* draws 4..8 */
}

/* ---- the target list ---- */

static srv_record_t *records(size_t n)
{
    return calloc(n, sizeof(srv_record_t));
}

static void own_rec(srv_record_t *r, unsigned prio, unsigned weight, unsigned port,
                    const char *target, int direct_tls)
{
    set_rec(r, prio, weight, target);
    r->port = (uint16_t)port;
    r->direct_tls = direct_tls;
    r->target = strdup(target);
}

static void check_target(const resolve_target_t *t, const char *host, int port, int direct_tls)
{
    CHECK_STR(t->host, host);
    CHECK_INT(t->port, port);
    CHECK_INT(t->direct_tls, direct_tls);
}

static void test_targets_mixed(void)
{
    /* XEP-0368: both kinds in one list by priority; "." entries dropped */
    srv_record_t *r = records(4);
    own_rec(&r[0], 5, 0, 5223, "tls.example.net", 1);
    own_rec(&r[1], 10, 0, 5222, "plain.example.net", 0);
    own_rec(&r[2], 1, 0, 443, "first.example.net", 1);
    own_rec(&r[3], 0, 0, 0, ".", 0);
    resolve_result_t res;
    CHECK_INT(resolve_build_targets(r, 4, "example.net", seq_next, &(seq_rng_t){0}, &res), 0);
    CHECK_INT(res.n, 3);
    if (res.n == 3) {
        check_target(&res.targets[0], "first.example.net", 443, 1);
        check_target(&res.targets[1], "tls.example.net", 5223, 1);
        check_target(&res.targets[2], "plain.example.net", 5222, 0);
    }
    resolve_result_free(&res);
    resolve_records_free(r, 4);
}

static void test_targets_not_offered(void)
{
    /* only "." records (both lookups said no): no fallback */
    srv_record_t *r = records(2);
    own_rec(&r[0], 0, 0, 0, ".", 1);
    own_rec(&r[1], 0, 0, 0, ".", 0);
    resolve_result_t res;
    CHECK_INT(resolve_build_targets(r, 2, "example.net", NULL, NULL, &res), UVX_ENOTFOUND);
    CHECK_INT(res.n, 0);
    resolve_records_free(r, 2);
}

static void test_targets_fallback(void)
{
    resolve_result_t res;
    CHECK_INT(resolve_build_targets(NULL, 0, "example.net", NULL, NULL, &res), 0);
    CHECK_INT(res.n, 1);
    if (res.n == 1)
        check_target(&res.targets[0], "example.net", 5222, 0);
    resolve_result_free(&res);
}

/* ---- the asynchronous path with canned answers ---- */

static int query_calls;

static int canned_query(const char *name, unsigned char *answer, int cap)
{
    pkt_t p;
    query_calls++;
    if (strcmp(name, "_xmpps-client._tcp.example.net") == 0) {
        pkt_begin(&p, name, 1);
        put_srv(&p, 10, 0, 5223, "tls.example.net");
    } else if (strcmp(name, "_xmpp-client._tcp.example.net") == 0) {
        pkt_begin(&p, name, 2);
        put_srv(&p, 20, 0, 5222, "backup.example.net");
        put_srv(&p, 0, 0, 5222, "main.example.net");
    } else if (strcmp(name, "_xmpps-client._tcp.noservice.example") == 0 ||
               strcmp(name, "_xmpp-client._tcp.noservice.example") == 0) {
        pkt_begin(&p, name, 1);
        put_srv(&p, 0, 0, 0, ".");
    } else if (strcmp(name, "_xmpps-client._tcp.garbage.example") == 0) {
        memcpy(answer, "\x12\x34\x81\x80", 4); /* a header cut short */
        return 4;
    } else {
        return -1; /* NXDOMAIN */
    }
    return pkt_answer(&p, answer, cap);
}

typedef struct lookup {
    int done;
    int status;
    resolve_result_t result;
} lookup_t;

static void on_resolved(void *ud, int status, resolve_result_t *result)
{
    lookup_t *l = ud;
    l->done++;
    l->status = status;
    l->result = *result; /* ours now */
}

/* Runs one lookup of `domain` on a loop of its own to the end; `cancel`
 * cancels it right after the start. */
static void run_lookup(const char *domain, int cancel, lookup_t *l)
{
    uv_loop_t loop;
    resolve_req_t *req = NULL;
    memset(l, 0, sizeof(*l));
    uv_loop_init(&loop);
    CHECK_INT(resolve_srv_start(&loop, domain, on_resolved, l, &req), 0);
    CHECK_INT(l->done, 0); /* never from inside the call */
    if (cancel)
        resolve_srv_cancel(req);
    uv_run(&loop, UV_RUN_DEFAULT); /* a cancelled request frees itself (LSan checks) */
    CHECK_INT(l->done, cancel ? 0 : 1);
    CHECK_INT(uv_loop_close(&loop), 0);
}

/* run_lookup to its end with `status` and `n` targets: 1 when the count
 * matches. */
static int lookup_ends(const char *domain, lookup_t *l, int status, size_t n)
{
    run_lookup(domain, 0, l);
    CHECK_INT(l->status, status);
    CHECK_INT(l->result.n, n);
    return l->result.n == n;
}

static void test_async_lookup(void)
{
    lookup_t l;
    resolve_set_test_hooks(canned_query, NULL, NULL);
    query_calls = 0;
    if (lookup_ends("example.net", &l, 0, 3)) {
        check_target(&l.result.targets[0], "main.example.net", 5222, 0);
        check_target(&l.result.targets[1], "tls.example.net", 5223, 1);
        check_target(&l.result.targets[2], "backup.example.net", 5222, 0);
    }
    CHECK_INT(query_calls, 2);
    resolve_result_free(&l.result);

    /* NXDOMAIN twice: the domain on 5222 */
    if (lookup_ends("nothing.example", &l, 0, 1))
        check_target(&l.result.targets[0], "nothing.example", 5222, 0);
    resolve_result_free(&l.result);

    lookup_ends("garbage.example", &l, 0, 1); /* a broken answer counts as none */
    resolve_result_free(&l.result);

    lookup_ends("noservice.example", &l, UVX_ENOTFOUND, 0);
    resolve_set_test_hooks(NULL, NULL, NULL);
}

static void test_async_cancel(void)
{
    lookup_t l;
    resolve_set_test_hooks(canned_query, NULL, NULL);
    run_lookup("example.net", 1, &l);
    resolve_set_test_hooks(NULL, NULL, NULL);
}

/* ---- the connect path: a bare-domain service tries the SRV targets ---- */

/* Ports of the scripted servers the canned answers point at. */
static int port_tls_target, port_plain_target;

static int connect_query(const char *name, unsigned char *answer, int cap)
{
    pkt_t p;
    if (strcmp(name, "_xmpps-client._tcp.srv.example") == 0) {
        /* priority 0: direct TLS to a peer that is not TLS at all */
        pkt_begin(&p, name, 1);
        put_srv(&p, 0, 0, (unsigned)port_tls_target, "127.0.0.1");
    } else if (strcmp(name, "_xmpp-client._tcp.srv.example") == 0) {
        /* priority 5: nobody listens on port 1; priority 9: the server */
        pkt_begin(&p, name, 2);
        put_srv(&p, 9, 0, (unsigned)port_plain_target, "127.0.0.1");
        put_srv(&p, 5, 0, 1, "127.0.0.1");
    } else if (strstr(name, ".dot.example")) {
        pkt_begin(&p, name, 1);
        put_srv(&p, 0, 0, 0, ".");
    } else {
        return -1;
    }
    return pkt_answer(&p, answer, cap);
}

/* A loop and a context with connect_query in place of DNS, the scripted
 * servers its answers point at, and a client. */
typedef struct srvenv {
    loopenv_t base;
    fake_server_t *fs[2];
    size_t nfs;
    tclient_t c;
} srvenv_t;

static void srvenv_init(srvenv_t *e)
{
    loopenv_init(&e->base);
    e->nfs = 0;
    resolve_set_test_hooks(connect_query, NULL, NULL);
}

/* A scripted server on a free port, written to *port for connect_query. */
static fake_server_t *srvenv_serve(srvenv_t *e, const fake_step_t *steps, int *port)
{
    fake_server_t *fs = fake_server_start(&e->base.loop, steps, port);
    CHECK(fs != NULL);
    if (fs != NULL)
        e->fs[e->nfs++] = fs;
    return fs;
}

/* The client for the bare-domain `service`, connecting as `jid`. */
static void srvenv_connect(srvenv_t *e, const char *service, const char *jid,
                           const uvx_conn_options_t *opts)
{
    CHECK_INT(tclient_init(&e->c, e->base.ctx, service, opts), 0);
    CHECK_INT(tclient_connect(&e->c, jid, "alicepass"), 0);
}

static void srvenv_done(srvenv_t *e)
{
    tclient_close(&e->c, &e->base.loop);
    for (size_t i = 0; i < e->nfs; i++)
        fake_server_stop(e->fs[i]);
    resolve_set_test_hooks(NULL, NULL, NULL);
    loopenv_done(&e->base);
}

static void test_connect_tries_targets(void)
{
    static const fake_step_t not_tls[] = {
        {"\x16\x03", "HTTP/1.1 400 Bad Request\r\n\r\n", 1}, /* after the ClientHello */
        {NULL, NULL, 0},
    };
    static const fake_step_t login[] = {
        {"<stream:stream", FAKE_STREAM_HEADER FAKE_FEATURES_PLAIN, 0},
        {"<auth", FAKE_SUCCESS, 0},
        {"<stream:stream", FAKE_STREAM_HEADER FAKE_FEATURES_BIND, 0},
        {"<bind", FAKE_BIND_RESULT, 0},
        {NULL, NULL, 0},
    };
    srvenv_t e;
    srvenv_init(&e);
    fake_server_t *tls_fs = srvenv_serve(&e, not_tls, &port_tls_target);
    fake_server_t *plain_fs = srvenv_serve(&e, login, &port_plain_target);
    uvx_conn_options_t o;
    uvx_conn_options_init(&o);
    o.allow_plain = 1; /* the scripted server offers no STARTTLS */
    o.tls_insecure = 1;
    srvenv_connect(&e, "srv.example", "alice@localhost", &o);
    CHECK(run_until(&e.base.loop, &e.c.connected, 1, 10000));
    /* the direct-TLS target got a ClientHello (a TLS record: 0x16 0x03) */
    CHECK_INT(fake_server_steps_done(tls_fs), 1);
    CHECK(fake_server_received(tls_fs)[0] == 0x16);
    CHECK_INT(fake_server_steps_done(plain_fs), 4);
    CHECK(!uvx_conn_secure(e.c.conn));
    CHECK(!tclient_saw(&e.c, UVX_STATUS_CONNFAIL));
    srvenv_done(&e);
}

/* Every target fails: CONNFAIL with the last one's condition. */
static void test_connect_all_targets_fail(void)
{
    static const fake_step_t not_tls[] = {
        {NULL, "not TLS", 1},
        {NULL, NULL, 0},
    };
    srvenv_t e;
    srvenv_init(&e);
    srvenv_serve(&e, not_tls, &port_tls_target);
    port_plain_target = 1; /* refused, like the priority 5 target */
    uvx_conn_options_t o;
    uvx_conn_options_init(&o);
    o.allow_plain = 1;
    srvenv_connect(&e, "srv.example", "alice@localhost", &o);
    CHECK(run_until(&e.base.loop, &e.c.disconnected, 1, 10000));
    CHECK_STR(tclient_condition(&e.c, UVX_STATUS_CONNFAIL), "connection-refused");
    CHECK_INT(e.c.nstatus, 3); /* CONNECTING, CONNFAIL, DISCONNECTED: one report */
    srvenv_done(&e);
}

/* "." for both services: not offered, and no fallback to port 5222. */
static void test_connect_not_offered(void)
{
    srvenv_t e;
    srvenv_init(&e);
    srvenv_connect(&e, "nothing.dot.example", "alice@nothing.dot.example", NULL);
    CHECK(run_until(&e.base.loop, &e.c.disconnected, 1, 10000));
    CHECK_STR(tclient_condition(&e.c, UVX_STATUS_CONNFAIL), "host-unresolved");
    srvenv_done(&e);
}

/* Closing while the lookup runs: no callback afterwards, nothing leaked. */
static void test_connect_close_during_lookup(void)
{
    srvenv_t e;
    srvenv_init(&e);
    srvenv_connect(&e, "srv.example", "alice@localhost", NULL);
    tclient_close(&e.c, &e.base.loop);
    CHECK(!tclient_saw(&e.c, UVX_STATUS_CONNFAIL));
    srvenv_done(&e);
}

int main(void)
{
    tap_run("SRV answer parsed; a second answer appends", test_parse_answer);
    tap_run("other record types and classes skipped; compressed target",
            test_parse_skips_other_records);
    tap_run("every truncation of an answer refused", test_parse_truncated);
    tap_run("malformed answers refused, earlier records kept", test_parse_malformed);
    tap_run("RFC 2782 order with a fixed random source", test_order_fixed_rng);
    tap_run("weighted choice: each record's share of the draws", test_order_weight_shares);
    tap_run("xmpps and xmpp records in one list, '.' dropped", test_targets_mixed);
    tap_run("only '.' records: service not offered, no fallback", test_targets_not_offered);
    tap_run("no records: the domain on port 5222", test_targets_fallback);
    tap_run("asynchronous lookup on the thread pool (canned answers)", test_async_lookup);
    tap_run("cancelled lookup: no callback, nothing leaked", test_async_cancel);
    tap_run("bare domain: SRV targets tried in order (TLS fails, refused, then login)",
            test_connect_tries_targets);
    tap_run("bare domain: every target fails -> one CONNFAIL", test_connect_all_targets_fail);
    tap_run("bare domain: '.' records -> CONNFAIL host-unresolved", test_connect_not_offered);
    tap_run("close while the SRV lookup runs", test_connect_close_during_lookup);
    return tap_done();
}
