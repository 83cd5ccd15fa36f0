/*
 * Private: where to connect for a bare XMPP domain (RFC 6120 §3.2.1 with
 * XEP-0368). Both `_xmpps-client._tcp.DOMAIN` and `_xmpp-client._tcp.DOMAIN`
 * are looked up on the libuv thread pool (res_nquery blocks), their SRV
 * records are mixed into one list ordered as RFC 2782 says (priority
 * ascending, weighted random within a priority), and each target carries
 * whether it speaks TLS from the first byte. No records at all: DOMAIN on
 * port 5222, as RFC 6120 §3.2.2 falls back to.
 *
 * The DNS answer parsing and the ordering are pure functions so that the
 * tests and the fuzzer can feed them packets without a network.
 */
#ifndef UVX_RESOLVE_H
#define UVX_RESOLVE_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

/* One SRV record of an answer. `target` is owned ("." when the service is
 * decidedly not offered). */
typedef struct srv_record {
    uint16_t priority;
    uint16_t weight;
    uint16_t port;
    int direct_tls; /* from _xmpps-client */
    char *target;
} srv_record_t;

/* Where to connect, in the order to try. `host` is owned. */
typedef struct resolve_target {
    char *host;
    int port;
    int direct_tls;
} resolve_target_t;

typedef struct resolve_result {
    resolve_target_t *targets;
    size_t n;
} resolve_result_t;

/* A source of random numbers for the weighted choice. */
typedef uint32_t (*resolve_rng_fn)(void *ud);

/* Parses a DNS response (`msg`, `len` bytes, as res_nquery returns it) and
 * appends its answer section's IN SRV records to *recs (grown with
 * realloc; *n counts them), marked with `direct_tls`. Other record types
 * are skipped. 0, UVX_EPARSE for a malformed or truncated packet (then
 * nothing is appended), or UVX_ENOMEM. */
int resolve_parse_srv(const unsigned char *msg, size_t len, int direct_tls, srv_record_t **recs,
                      size_t *n);

/* Orders records in place as RFC 2782 says: by priority ascending, and
 * within one priority by repeated weighted random choice (records of
 * weight 0 get a small chance). `rng` NULL: uv_random. */
void resolve_order_srv(srv_record_t *recs, size_t n, resolve_rng_fn rng, void *rng_ud);

/* Turns the records of both lookups into the targets to try:
 *   usable records (target not "."): those, ordered (resolve_order_srv);
 *   only "." records: the service is not offered, UVX_ENOTFOUND
 *     (XEP-0368: no A/AAAA fallback once SRV says so);
 *   no records: `domain` on port 5222 without direct TLS.
 * 0, UVX_ENOTFOUND or UVX_ENOMEM. */
int resolve_build_targets(srv_record_t *recs, size_t n, const char *domain, resolve_rng_fn rng,
                          void *rng_ud, resolve_result_t *out);

void resolve_records_free(srv_record_t *recs, size_t n);
void resolve_result_free(resolve_result_t *r);

/* ---- the asynchronous lookup ---- */

typedef struct resolve_req resolve_req_t;

/* `status` 0 with `result` (owned by the callee from then on: free it with
 * resolve_result_free), or UVX_ENOTFOUND (the service is not offered) /
 * UVX_ENOMEM with an empty result. */
typedef void (*resolve_cb)(void *ud, int status, resolve_result_t *result);

/* Starts both SRV lookups for `domain` on the loop's thread pool; `cb`
 * runs on the loop thread, never from inside this call. 0 or a negative
 * error (nothing started). */
int resolve_srv_start(uv_loop_t *loop, const char *domain, resolve_cb cb, void *ud,
                      resolve_req_t **out);

/* The callback will not run; the request frees itself once the thread
 * pool is done with it (the loop must still run for that). */
void resolve_srv_cancel(resolve_req_t *req);

/* Test seams (process-wide; NULL restores the default):
 * `query` replaces res_nquery (same contract: the answer's length, or -1
 * when there is none) so that the asynchronous path can be driven with
 * canned packets; `rng` replaces uv_random for the weighted choice. */
typedef int (*resolve_query_fn)(const char *name, unsigned char *answer, int cap);
void resolve_set_test_hooks(resolve_query_fn query, resolve_rng_fn rng, void *rng_ud);

#endif
