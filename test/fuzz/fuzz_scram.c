/*
 * libFuzzer target for the SCRAM message parsers and their base64 use:
 * server-first (as is, and behind a valid nonce prefix so the fuzzer gets
 * past the nonce check quickly) and server-final. Aborts when a parse that
 * claims success breaks what the caller relies on.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sasl.h"

#define CNONCE "fyko+d2lbbFgONRv9qkxdawL"

static void require(int cond, const char *what)
{
    if (cond)
        return;
    fprintf(stderr, "fuzz_scram invariant failed: %s\n", what);
    abort();
}

static void check_first(const char *msg, size_t len)
{
    scram_server_first_t sf;
    const char *cond = NULL;
    int rc = scram_parse_server_first(msg, len, CNONCE, &sf, &cond);
    require(rc == 0 || rc == UVX_EAUTH, "first: 0 or UVX_EAUTH");
    if (rc != 0) {
        require(cond != NULL, "first: a failure names its condition");
        return;
    }
    require(cond == NULL, "first: no condition on success");
    require(sf.nonce >= msg && sf.nonce + sf.nonce_len <= msg + len, "nonce inside the message");
    require(sf.nonce_len > strlen(CNONCE), "server nonce extends ours");
    require(memcmp(sf.nonce, CNONCE, strlen(CNONCE)) == 0, "nonce prefix");
    require(memchr(sf.nonce, ',', sf.nonce_len) == NULL, "no comma in the nonce");
    require(sf.salt_len > 0 && sf.salt_len <= sizeof(sf.salt), "salt length");
    require(sf.iterations >= UVX_SCRAM_MIN_ITERATIONS && sf.iterations <= UVX_SCRAM_MAX_ITERATIONS,
            "iteration bounds");
}

static void check_final(const char *msg, size_t len)
{
    unsigned char v[UVX_SCRAM_MAX_KEY * 2];
    size_t vlen = 0;
    const char *cond = NULL;
    int rc = scram_parse_server_final(msg, len, v, sizeof(v), &vlen, &cond);
    require(rc == 0 || rc == UVX_EAUTH, "final: 0 or UVX_EAUTH");
    require(rc == 0 ? cond == NULL : cond != NULL, "final: condition iff failure");
    if (rc == 0)
        require(vlen > 0 && vlen <= sizeof(v) && len > 2 && msg[0] == 'v', "verifier");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *msg = (const char *)data;
    check_first(msg, size);
    check_final(msg, size);

    /* The same bytes behind a valid nonce prefix. */
    static const char prefix[] = "r=" CNONCE;
    char *withnonce = malloc(sizeof(prefix) + size);
    if (withnonce == NULL)
        return 0;
    memcpy(withnonce, prefix, sizeof(prefix) - 1);
    memcpy(withnonce + sizeof(prefix) - 1, data, size);
    check_first(withnonce, sizeof(prefix) - 1 + size);
    free(withnonce);
    return 0;
}
