/*
 * SRV lookup for bare XMPP domains (RFC 6120 §3.2.1, XEP-0368, RFC 2782).
 * res_nquery blocks, so both queries run in one uv_queue_work job; the
 * answers are parsed and ordered there too, and the loop thread only gets
 * the finished target list.
 */
#include "resolve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/nameser.h>
#include <netinet/in.h>
#include <resolv.h>

#include "uvxmpp.h"

/* Large enough for any UDP answer and most TCP ones; a longer answer is
 * cut and then fails to parse, which counts as "no records". */
#define RESOLVE_ANSWER_MAX 16384
#define RESOLVE_FALLBACK_PORT 5222

static resolve_query_fn test_query;
static resolve_rng_fn test_rng;
static void *test_rng_ud;

void resolve_set_test_hooks(resolve_query_fn query, resolve_rng_fn rng, void *rng_ud)
{
    test_query = query;
    test_rng = rng;
    test_rng_ud = rng_ud;
}

/* ---- parsing ---- */

void resolve_records_free(srv_record_t *recs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(recs[i].target);
    free(recs);
}

static uint16_t get16(const unsigned char *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

/* Appends one SRV record from its RDATA: priority, weight, port, then the
 * target name, which must end exactly where the RDATA does. */
static int resolve_add_record(const unsigned char *msg, size_t len, const ns_rr *rr, int direct_tls,
                              srv_record_t **recs, size_t *n)
{
    const unsigned char *rd = ns_rr_rdata(*rr);
    size_t rdlen = ns_rr_rdlen(*rr);
    char name[NS_MAXDNAME];
    if (rdlen < 7)
        return UVX_EPARSE;
    int used = dn_expand(msg, msg + len, rd + 6, name, sizeof(name));
    if (used < 0 || (size_t)used != rdlen - 6)
        return UVX_EPARSE;
    srv_record_t *grown = realloc(*recs, (*n + 1) * sizeof(**recs));
    if (grown == NULL)
        return UVX_ENOMEM;
    *recs = grown;
    srv_record_t *r = &grown[*n];
    r->priority = get16(rd);
    r->weight = get16(rd + 2);
    r->port = get16(rd + 4);
    r->direct_tls = direct_tls;
    r->target = strdup(name[0] ? name : "."); /* dn_expand writes the root as "" */
    if (r->target == NULL)
        return UVX_ENOMEM;
    (*n)++;
    return 0;
}

int resolve_parse_srv(const unsigned char *msg, size_t len, int direct_tls, srv_record_t **recs,
                      size_t *n)
{
    ns_msg handle;
    size_t first = *n;
    if (len > 65535 || ns_initparse(msg, (int)len, &handle) < 0)
        return UVX_EPARSE;
    int count = ns_msg_count(handle, ns_s_an);
    int rc = 0;
    for (int i = 0; i < count && rc == 0; i++) {
        ns_rr rr;
        if (ns_parserr(&handle, ns_s_an, i, &rr) < 0)
            rc = UVX_EPARSE;
        else if (ns_rr_type(rr) == ns_t_srv && ns_rr_class(rr) == ns_c_in)
            rc = resolve_add_record(msg, len, &rr, direct_tls, recs, n);
    }
    if (rc != 0) { /* all or nothing */
        for (size_t i = first; i < *n; i++)
            free((*recs)[i].target);
        *n = first;
    }
    return rc;
}

/* ---- ordering (RFC 2782, "Usage rules") ---- */

static uint32_t resolve_default_rng(void *ud)
{
    uint32_t v = 0;
    (void)ud;
    if (uv_random(NULL, NULL, &v, sizeof(v), 0, NULL) != 0)
        v = (uint32_t)uv_hrtime();
    return v;
}

/* Moves recs[from] to recs[to] (to <= from), shifting the ones between up
 * by one: the order of the others is kept. */
static void resolve_move_to(srv_record_t *recs, size_t to, size_t from)
{
    srv_record_t r = recs[from];
    memmove(&recs[to + 1], &recs[to], (from - to) * sizeof(*recs));
    recs[to] = r;
}

/* Stable: records of one priority keep their answer order before the
 * weighted choice, which makes a fixed RNG give a fixed result. */
static void resolve_sort_by_priority(srv_record_t *recs, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        size_t j = i;
        while (j > 0 && recs[j - 1].priority > recs[i].priority)
            j--;
        if (j != i)
            resolve_move_to(recs, j, i);
    }
}

/* One priority group, recs[0..n): zero weights first, then pick each next
 * record with probability weight / (sum of the remaining weights). */
static void resolve_order_group(srv_record_t *recs, size_t n, resolve_rng_fn rng, void *ud)
{
    size_t zeros = 0;
    for (size_t i = 0; i < n; i++)
        if (recs[i].weight == 0)
            resolve_move_to(recs, zeros++, i);
    for (size_t pos = 0; pos + 1 < n; pos++) {
        uint64_t sum = 0;
        for (size_t i = pos; i < n; i++)
            sum += recs[i].weight;
        uint64_t pick = sum ? rng(ud) % (sum + 1) : 0;
        uint64_t running = 0;
        size_t chosen = pos;
        for (size_t i = pos; i < n; i++) {
            running += recs[i].weight;
            if (running >= pick) {
                chosen = i;
                break;
            }
        }
        resolve_move_to(recs, pos, chosen);
    }
}

void resolve_order_srv(srv_record_t *recs, size_t n, resolve_rng_fn rng, void *rng_ud)
{
    if (rng == NULL) {
        rng = test_rng ? test_rng : resolve_default_rng;
        rng_ud = test_rng ? test_rng_ud : NULL;
    }
    resolve_sort_by_priority(recs, n);
    for (size_t start = 0; start < n;) {
        size_t end = start + 1;
        while (end < n && recs[end].priority == recs[start].priority)
            end++;
        resolve_order_group(recs + start, end - start, rng, rng_ud);
        start = end;
    }
}

/* ---- the target list ---- */

void resolve_result_free(resolve_result_t *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->targets[i].host);
    free(r->targets);
    r->targets = NULL;
    r->n = 0;
}

static int resolve_not_offered(const srv_record_t *r)
{
    return strcmp(r->target, ".") == 0;
}

static int resolve_push_target(resolve_result_t *out, const char *host, int port, int direct_tls)
{
    resolve_target_t *t = &out->targets[out->n];
    if ((t->host = strdup(host)) == NULL)
        return UVX_ENOMEM;
    t->port = port;
    t->direct_tls = direct_tls;
    out->n++;
    return 0;
}

int resolve_build_targets(srv_record_t *recs, size_t n, const char *domain, resolve_rng_fn rng,
                          void *rng_ud, resolve_result_t *out)
{
    size_t usable = 0;
    out->targets = NULL;
    out->n = 0;
    /* The "." records go to the end, out of the ordering. */
    for (size_t i = 0; i < n; i++)
        if (!resolve_not_offered(&recs[i]))
            resolve_move_to(recs, usable++, i);
    if (usable == 0 && n > 0)
        return UVX_ENOTFOUND;
    out->targets = calloc(usable ? usable : 1, sizeof(*out->targets));
    if (out->targets == NULL)
        return UVX_ENOMEM;
    if (usable == 0) /* RFC 6120 §3.2.2: no SRV at all, the domain itself */
        return resolve_push_target(out, domain, RESOLVE_FALLBACK_PORT, 0);
    resolve_order_srv(recs, usable, rng, rng_ud);
    for (size_t i = 0; i < usable; i++) {
        if (resolve_push_target(out, recs[i].target, recs[i].port, recs[i].direct_tls) != 0) {
            resolve_result_free(out);
            return UVX_ENOMEM;
        }
    }
    return 0;
}

/* ---- the asynchronous lookup ---- */

struct resolve_req {
    uv_work_t work;
    char *domain;
    resolve_cb cb;
    void *ud;
    int cancelled;
    int status;
    resolve_result_t result;
};

static int resolve_res_query(const char *name, unsigned char *answer, int cap)
{
    struct __res_state st;
    memset(&st, 0, sizeof(st));
    if (res_ninit(&st) != 0)
        return -1;
    int len = res_nquery(&st, name, ns_c_in, ns_t_srv, answer, cap);
    res_nclose(&st);
    return len;
}

/* Runs one query and adds its records; a failed or malformed answer just
 * adds none. */
static int resolve_one(const char *prefix, const char *domain, int direct_tls,
                       unsigned char *answer, srv_record_t **recs, size_t *n)
{
    char name[NS_MAXDNAME + 32];
    if (snprintf(name, sizeof(name), "%s%s", prefix, domain) >= (int)sizeof(name))
        return 0;
    resolve_query_fn query = test_query ? test_query : resolve_res_query;
    int len = query(name, answer, RESOLVE_ANSWER_MAX);
    if (len <= 0)
        return 0;
    if (len > RESOLVE_ANSWER_MAX)
        len = RESOLVE_ANSWER_MAX; /* res_nquery reports the full size of a cut answer */
    int rc = resolve_parse_srv(answer, (size_t)len, direct_tls, recs, n);
    return rc == UVX_ENOMEM ? rc : 0;
}

static void resolve_work(uv_work_t *w)
{
    resolve_req_t *req = w->data;
    srv_record_t *recs = NULL;
    size_t n = 0;
    unsigned char *answer = malloc(RESOLVE_ANSWER_MAX);
    int rc = answer ? 0 : UVX_ENOMEM;
    /* XEP-0368: direct TLS and STARTTLS records form one list */
    if (rc == 0)
        rc = resolve_one("_xmpps-client._tcp.", req->domain, 1, answer, &recs, &n);
    if (rc == 0)
        rc = resolve_one("_xmpp-client._tcp.", req->domain, 0, answer, &recs, &n);
    if (rc == 0)
        rc = resolve_build_targets(recs, n, req->domain, NULL, NULL, &req->result);
    req->status = rc;
    resolve_records_free(recs, n);
    free(answer);
}

static void resolve_req_free(resolve_req_t *req)
{
    resolve_result_free(&req->result);
    free(req->domain);
    free(req);
}

static void resolve_after_work(uv_work_t *w, int status)
{
    resolve_req_t *req = w->data;
    if (req->cancelled || status != 0) {
        resolve_req_free(req);
        return;
    }
    resolve_result_t result = req->result; /* handed over to the callback */
    req->result.targets = NULL;
    req->result.n = 0;
    req->cb(req->ud, req->status, &result);
    resolve_req_free(req);
}

int resolve_srv_start(uv_loop_t *loop, const char *domain, resolve_cb cb, void *ud,
                      resolve_req_t **out)
{
    resolve_req_t *req = calloc(1, sizeof(*req));
    if (req == NULL || (req->domain = strdup(domain)) == NULL) {
        free(req);
        return UVX_ENOMEM;
    }
    req->cb = cb;
    req->ud = ud;
    req->work.data = req;
    int rc = uv_queue_work(loop, &req->work, resolve_work, resolve_after_work);
    if (rc != 0) {
        resolve_req_free(req);
        return rc;
    }
    *out = req;
    return 0;
}

void resolve_srv_cancel(resolve_req_t *req)
{
    if (req == NULL)
        return;
    req->cancelled = 1;
    uv_cancel((uv_req_t *)&req->work); /* if not started; else it finishes and is freed */
}
