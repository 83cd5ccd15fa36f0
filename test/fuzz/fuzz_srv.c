/*
 * libFuzzer target for the SRV answer parser (lib/resolve.c): parses the
 * input as a DNS response, then orders the records and builds the target
 * list, and aborts when an invariant breaks: a failed parse appends
 * nothing, every record has a target, the order is by priority, and the
 * target list holds exactly the usable records.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resolve.h"
#include "uvxmpp.h"

static void require(int cond, const char *what)
{
    if (cond)
        return;
    fprintf(stderr, "fuzz_srv invariant failed: %s\n", what);
    abort();
}

/* Deterministic draws, so that a crash reproduces. */
static uint32_t fuzz_rng(void *ud)
{
    uint32_t *state = ud;
    *state = *state * 1103515245u + 12345u;
    return *state >> 8;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    srv_record_t *recs = NULL;
    size_t n = 0;
    int rc = resolve_parse_srv(data, size, (int)(size & 1), &recs, &n);
    require(rc == 0 || rc == UVX_EPARSE || rc == UVX_ENOMEM, "unknown error code");
    require(rc == 0 || n == 0, "a failed parse appended records");
    size_t usable = 0;
    for (size_t i = 0; i < n; i++) {
        require(recs[i].target != NULL && recs[i].target[0] != '\0', "empty target");
        if (strcmp(recs[i].target, ".") != 0)
            usable++;
    }
    uint32_t seed = (uint32_t)size;
    resolve_result_t res;
    rc = resolve_build_targets(recs, n, "example.net", fuzz_rng, &seed, &res);
    if (n == 0)
        require(rc == 0 && res.n == 1 && res.targets[0].port == 5222, "fallback target");
    else if (usable == 0)
        require(rc == UVX_ENOTFOUND && res.n == 0, "'.' only must be not offered");
    else
        require(rc == UVX_ENOMEM || res.n == usable, "target count");
    /* build_targets ordered the usable records in place */
    for (size_t i = 1; i < usable && rc == 0; i++)
        require(recs[i - 1].priority <= recs[i].priority, "priority order");
    resolve_result_free(&res);
    resolve_records_free(recs, n);
    return 0;
}
